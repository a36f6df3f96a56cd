"""cesr.problem and cesr problem against numpy's eigh/lstsq and against the
known truth of generated data (Gaussian and Rademacher rows, known w*, sigma^2
and fourth moment)."""
import json
import subprocess

import numpy as np
import pytest

import cesr
import conftest


def numpy_reference(X, y, center=False):
    """The same quantities from numpy alone: eigh of X^T X / n, lstsq, direct fourth moments."""
    n, d = X.shape
    if center:
        X = X - X.mean(axis=0)
        y = y - y.mean()
    lam, U = np.linalg.eigh(X.T @ X / n)
    lam, U = lam[::-1], U[:, ::-1]
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    rss = float(np.sum((y - X @ w) ** 2))
    z = (X @ U) / np.sqrt(lam)
    r2 = (y - X @ w) ** 2
    return dict(eigenvalues=lam, init=(U.T @ w) ** 2, w=w, rss=rss, noise=rss / (n - d - (1 if center else 0)),
                kurtosis=np.mean(z ** 4, axis=0), coupling=np.mean(r2[:, None] * z ** 2, axis=0) / np.mean(r2))


def gaussian_rows(rng, n, lam, rotate=True):
    d = len(lam)
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0] if rotate else np.eye(d)
    return (rng.standard_normal((n, d)) * np.sqrt(lam)) @ Q.T


@pytest.mark.parametrize("rows", ["gaussian", "rademacher"])
def test_problem_against_numpy_and_truth(rows):
    rng = np.random.default_rng(13 if rows == "gaussian" else 14)
    n, lam = 40_000, np.array([4.0, 2.0, 1.0, 0.5, 0.25, 0.125])
    if rows == "gaussian":
        X = gaussian_rows(rng, n, lam)
        true_kurtosis = 3.0
    else:
        # Independent +-1 coordinates scaled per axis: H = diag(lam), K = 1.
        X = rng.choice([-1.0, 1.0], size=(n, len(lam))) * np.sqrt(lam)
        true_kurtosis = 1.0
    w_true = rng.standard_normal(len(lam))
    sigma = 0.7
    y = X @ w_true + sigma * rng.standard_normal(n)
    r = cesr.problem(X, y)
    ref = numpy_reference(X, y)
    np.testing.assert_allclose(r.eigenvalues, ref["eigenvalues"], rtol=1e-12)
    np.testing.assert_allclose(r.w_star, ref["w"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.init, ref["init"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(r.kurtosis, ref["kurtosis"], rtol=1e-10)
    np.testing.assert_allclose(r.summary["noise_coupling"], ref["coupling"], rtol=1e-10)
    s = r.summary
    assert s["rss"] == pytest.approx(ref["rss"], rel=1e-10)
    assert s["noise"] == pytest.approx(ref["noise"], rel=1e-10)
    assert s["d"] == 6 and s["n"] == n and s["null_directions"] == 0 and s["rank"] == 6
    assert s["kappa"] == pytest.approx(ref["eigenvalues"][0] / ref["eigenvalues"][-1], rel=1e-12)
    assert s["trace"] == pytest.approx(np.trace(X.T @ X / n), rel=1e-12)
    assert s["kurtosis_mean"] == pytest.approx(np.mean(ref["kurtosis"]), rel=1e-12)
    assert s["kurtosis_min"] == pytest.approx(np.min(ref["kurtosis"]), rel=1e-12)
    assert s["kurtosis_max"] == pytest.approx(np.max(ref["kurtosis"]), rel=1e-12)
    # The truth, to sampling accuracy (n = 40000): sigma^2 has standard error
    # sigma^2 sqrt(2/n) = 0.0035; w* has sigma / sqrt(n lambda) <= 0.01;
    # the sample eigenvalues lambda (1 +- 2 sqrt(2/n)); E[z^4] within 0.15 (its
    # standard error is sqrt(96/n) = 0.05 for Gaussian rows, less for +-1).
    assert s["noise"] == pytest.approx(sigma ** 2, abs=5 * sigma ** 2 * np.sqrt(2 / n))
    np.testing.assert_allclose(r.w_star, w_true, atol=0.05)
    np.testing.assert_allclose(r.eigenvalues, lam, rtol=0.05)
    np.testing.assert_allclose(r.kurtosis, true_kurtosis, atol=0.15)
    np.testing.assert_allclose(s["noise_coupling"], 1.0, atol=0.06)  # noise independent of x
    assert r.summary["initial_loss"] == pytest.approx(0.5 * r.w_star @ (X.T @ X / n) @ r.w_star, rel=1e-10)


def test_centered_fit_is_lstsq_with_an_intercept():
    rng = np.random.default_rng(5)
    n = 3000
    X = gaussian_rows(rng, n, np.array([3.0, 1.0, 0.1])) + np.array([10.0, -5.0, 2.0])
    y = X @ np.array([1.0, -2.0, 0.5]) + 7.0 + 0.3 * rng.standard_normal(n)
    r = cesr.problem(X, y, center=True)
    A = np.column_stack([X, np.ones(n)])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(r.w_star, coef[:3], rtol=1e-9)
    assert r.intercept == pytest.approx(coef[3], rel=1e-9)
    Xc = X - X.mean(axis=0)
    np.testing.assert_allclose(r.eigenvalues, np.linalg.eigvalsh(Xc.T @ Xc / n)[::-1], rtol=1e-12)
    rss = np.sum((y - A @ coef) ** 2)
    assert r.noise == pytest.approx(rss / (n - 4), rel=1e-9)  # three slopes and the intercept
    assert r.summary["centered"] is True
    # Uncentred, H holds the means: its largest eigenvalue is about |mean|^2.
    assert cesr.problem(X, y).eigenvalues[0] > 100


def test_noise_coupling_sees_heteroscedastic_noise():
    # Noise whose size grows with |x_1|: more gradient noise along x_1 than sigma^2 lambda_1.
    rng = np.random.default_rng(9)
    n = 50_000
    X = rng.standard_normal((n, 2)) * np.array([2.0, 0.5])
    y = X @ np.array([1.0, 1.0]) + np.abs(X[:, 0]) * rng.standard_normal(n)
    c = cesr.problem(X, y).summary["noise_coupling"]
    # E[x1^2 x1^2] / (E[x1^2] E[x1^2]) = 3 along x_1, 1 along x_2 (independent coordinates).
    assert c[0] == pytest.approx(3.0, rel=0.05) and c[1] == pytest.approx(1.0, rel=0.05)


def test_null_direction_left_out_and_counted():
    rng = np.random.default_rng(6)
    n = 500
    X = rng.standard_normal((n, 3))
    X = np.column_stack([X, X[:, 0] - 2 * X[:, 1]])  # rank 3
    y = X[:, :3] @ np.array([1.0, 2.0, 3.0]) + 0.1 * rng.standard_normal(n)
    r = cesr.problem(X, y)
    assert r.summary["null_directions"] == 1 and r.summary["rank"] == 3 and len(r.eigenvalues) == 3
    np.testing.assert_allclose(r.w_star, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-8, atol=1e-10)  # minimum norm
    res = y - X @ r.w_star
    assert r.noise == pytest.approx(res @ res / (n - 3), rel=1e-9)


def test_equal_eigenvalues_share_a_line():
    # All 2^4 sign patterns, scaled by (2, 1, 1, 0.5): H = diag(4, 1, 1, 0.25)
    # exactly, every whitened coordinate is +-1 (K = 1 exactly), and w* = w.
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * 4)).reshape(4, -1).T
    X = signs * np.array([2.0, 1.0, 1.0, 0.5])
    w = np.array([0.5, -1.0, 3.0, 2.0])
    y = X @ w + 0.25 * signs.prod(axis=1)  # orthogonal to every column: RSS = 16 / 16
    r = cesr.problem(X, y)
    np.testing.assert_array_equal(r.line_eigenvalues, [4.0, 1.0, 0.25])
    np.testing.assert_array_equal(r.line_weights, [1.0, 2.0, 1.0])
    np.testing.assert_allclose(r.line_init, [0.25, (1.0 + 9.0) / 2, 4.0], rtol=1e-14)
    np.testing.assert_allclose(r.kurtosis, 1.0, rtol=1e-14)
    np.testing.assert_allclose(r.w_star, w, rtol=1e-14)
    assert r.summary["rss"] == pytest.approx(16 * 0.0625, rel=1e-13)
    assert r.noise == pytest.approx(1.0 / 12, rel=1e-13)


def test_errors_name_the_argument():
    X = np.ones((10, 2))
    with pytest.raises(ValueError, match="^X must be a 2-D array"):
        cesr.problem(np.ones(10), np.ones(10))
    with pytest.raises(ValueError, match="^y: 9 values, the data has 10 rows"):
        cesr.problem(np.random.default_rng(1).standard_normal((10, 2)), np.ones(9))
    with pytest.raises(ValueError, match="^X: row 2 column 1 is nan"):
        Z = np.random.default_rng(1).standard_normal((10, 2))
        Z[1, 0] = np.nan
        cesr.problem(Z, np.ones(10))
    with pytest.raises(ValueError, match="^X: 1 row, at least 2"):
        cesr.problem(np.ones((1, 2)), np.ones(1))
    with pytest.raises(ValueError, match="^X: H = X\\^T X / n is zero"):
        cesr.problem(np.zeros((10, 2)), np.ones(10))
    with pytest.raises(ValueError, match="^X: d = 5000 columns exceeds the limit of 4096"):
        cesr.problem(np.zeros((2, 5000)), np.ones(2))
    with pytest.raises(TypeError):
        cesr.problem(X, np.ones(10), center="yes")


def test_cli_writes_what_python_computes(cli, tmp_path):
    rng = np.random.default_rng(8)
    X = gaussian_rows(rng, 800, np.array([2.0, 1.0, 0.3, 0.05]))
    y = X @ np.array([1.0, 0.0, -1.0, 2.0]) + 0.2 * rng.standard_normal(800)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    header = "a,b,c,d"
    np.savetxt(tmp_path / "X.csv", X, delimiter=",", header=header, comments="", fmt="%.17g")
    np.savetxt(tmp_path / "y.csv", y, header="y", comments="", fmt="%.17g")
    out = cli("problem", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"), "--center",
              "--output", str(tmp_path / "p"))
    report = json.loads(out.stdout)
    assert json.loads((tmp_path / "p.json").read_text()) == report
    for key in ("d", "n", "kappa", "trace", "noise", "kurtosis_mean", "kurtosis_min", "kurtosis_max",
                "null_directions"):
        assert key in report
    assert report["spectrum"] == "file:p.spectrum" and report["init"] == "file:p.init"
    r = cesr.problem(X, y, center=True)
    lines = [l.split() for l in (tmp_path / "p.spectrum").read_text().splitlines() if not l.startswith("#")]
    np.testing.assert_array_equal([float(l[0]) for l in lines], r.line_eigenvalues)
    np.testing.assert_array_equal([float(l[1]) for l in lines], r.line_weights)
    init = [float(l) for l in (tmp_path / "p.init").read_text().splitlines() if not l.startswith("#")]
    np.testing.assert_array_equal(init, r.line_init)
    for key in ("noise", "kappa", "kurtosis_mean", "rss"):
        assert report[key] == r.summary[key]
    # The CSV reads to the same numbers (17 digits round-trip).
    cli("problem", "--data", str(tmp_path / "X.csv"), "--labels", str(tmp_path / "y.csv"), "--center",
        "--output", str(tmp_path / "q"))
    assert (tmp_path / "q.spectrum").read_text() == (tmp_path / "p.spectrum").read_text()
    assert (tmp_path / "q.init").read_text() == (tmp_path / "p.init").read_text()
    # Every command takes the files: the loss at step 0 is 1/2 w*^T H w* of the centred rows.
    Xc = X - X.mean(axis=0)
    L0 = 0.5 * r.w_star @ (Xc.T @ Xc / 800) @ r.w_star
    loss = cli("loss", "--spectrum", f"file:{tmp_path / 'p.spectrum'}", "--init", f"file:{tmp_path / 'p.init'}",
               "--method", "sgd", "--lr", "0.1", "--steps", "0", "--noise", repr(report["noise"]),
               "--kurtosis", repr(report["kurtosis_mean"]))
    assert float(loss.stdout.splitlines()[1].split(",")[1]) == pytest.approx(L0, rel=1e-12)


def test_cli_npy_float32_and_refusals(cli, tmp_path):
    rng = np.random.default_rng(10)
    X = gaussian_rows(rng, 300, np.array([1.0, 0.5, 0.2]))
    y = X @ np.array([1.0, 2.0, 3.0]) + 0.1 * rng.standard_normal(300)
    np.save(tmp_path / "X32.npy", X.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    out = json.loads(cli("problem", "--data", str(tmp_path / "X32.npy"), "--labels", str(tmp_path / "y.npy"),
                         "--output", str(tmp_path / "p")).stdout)
    ref = cesr.problem(X.astype(np.float32).astype(np.float64), y)
    assert out["kappa"] == ref.summary["kappa"] and out["noise"] == ref.summary["noise"]
    np.save(tmp_path / "X3.npy", np.ones((2, 2, 2)))
    np.save(tmp_path / "Xf.npy", np.asfortranarray(X))
    np.save(tmp_path / "y2.npy", np.ones((300, 2)))
    for data, labels, message in [
        ("X3.npy", "y.npy", "--data: 'X3.npy': shape (2, 2, 2) is not one-dimensional (expected (n,)) nor two-dimensional"),
        ("Xf.npy", "y.npy", "--data: 'Xf.npy': Fortran-order arrays are not read"),
        ("y.npy", "y.npy", "--data: 'y.npy': shape (300,) is one-dimensional, the data need (n, d)"),
        ("X32.npy", "y2.npy", "--labels: 'y2.npy': shape (300, 2), labels need (n,) or (n, 1)"),
    ]:
        r = subprocess.run([str(conftest.cli_binary()), "problem", "--data", data, "--labels", labels, "--output", "q"],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("cesr problem: error: " + message), r.stderr
        assert r.stderr.count("\n") == 1
    assert not list(tmp_path.glob("q.*"))
