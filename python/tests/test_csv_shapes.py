"""Every CSV the CLI writes loads as is, with numpy's genfromtxt and pandas' read_csv
without options, into the same typed columns: no quoted commas, no empty field where
a number is expected, an absent hyperparameter NaN (never a fill value such as -1),
and the numbers themselves checked against independent numpy references."""
import io
import json

import numpy as np
import pandas as pd
import pytest

from conftest import sgd_moments, hb_moments

SPECTRUM = "loguniform:d=5,kappa=10"
LAM = 10.0 ** (-np.arange(5) / 4)  # loguniform d = 5, kappa = 10


def load_both(text):
    """The CSV through numpy and pandas, both with default options; they must agree."""
    assert '"' not in text, "a quoted cell: " + text[:200]
    a = np.genfromtxt(io.StringIO(text), delimiter=",", names=True, dtype=None, encoding=None)
    a = np.atleast_1d(a)
    f = pd.read_csv(io.StringIO(text))
    assert list(a.dtype.names) == list(f.columns)
    assert len(a) == len(f)
    for name in f.columns:
        if f[name].dtype.kind in "if":
            assert a.dtype[name].kind in "if", f"{name}: numpy reads {a.dtype[name]}, pandas {f[name].dtype}"
            # (pandas' default float parser may differ from the round trip by one unit in the last place)
            np.testing.assert_allclose(np.asarray(a[name], dtype=float), f[name].to_numpy(dtype=float),
                                       rtol=5e-16, atol=0, equal_nan=True)
        else:
            assert a.dtype[name].kind == "U", f"{name}: numpy reads {a.dtype[name]}"
            assert list(a[name]) == list(f[name].fillna(""))
    return a, f


def no_nan(frame, allowed=()):
    for name in frame.columns:
        if frame[name].dtype.kind == "f" and name not in allowed:
            assert not frame[name].isna().any(), f"empty field in column {name}"


def test_loss_single_curve(cli):
    out = cli("loss", "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "0.5", "--batch", "2", "--steps", "20").stdout
    a, f = load_both(out)
    assert list(f.columns) == ["step", "loss"]
    no_nan(f)
    ref = sgd_moments(LAM, np.ones(5), 0.5, 2, 20)
    np.testing.assert_allclose(a["loss"], ref, rtol=1e-12)


def test_loss_compare_methods_and_batches(cli):
    # lr = 1 is an integer-looking value: its column must still read as floats, and
    # sgd's missing momentum as NaN in numpy too (an integer column fills it with -1).
    out = cli("loss", "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "1",
              "--compare", "hb:lr=0.5,momentum=0.5", "--compare-batches", "2,4", "--steps", "15").stdout
    a, f = load_both(out)
    assert list(f.columns) == ["method", "batch", "step", "loss", "lr", "momentum"]
    no_nan(f, allowed=("momentum",))
    assert a.dtype["lr"].kind == "f" and a.dtype["momentum"].kind == "f"
    sgd = a[a["method"] == "sgd"]
    assert np.all(np.isnan(sgd["momentum"])) and np.all(sgd["lr"] == 1.0)
    hb = a[a["method"] == "hb"]
    assert np.all(hb["momentum"] == 0.5) and np.all(hb["lr"] == 0.5)
    for b in (2, 4):
        rows = sgd[sgd["batch"] == b]
        np.testing.assert_allclose(rows["loss"], sgd_moments(LAM, np.ones(5), 1.0, b, 15), rtol=1e-12)
        rows = hb[hb["batch"] == b]
        np.testing.assert_allclose(rows["loss"], hb_moments(LAM, np.ones(5), 0.5, 0.5, b, 15), rtol=1e-12)


def test_loss_compare_with_average_and_batch_schedule(cli):
    out = cli("loss", "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "0.5",
              "--compare", "sgd:lr=0.5,average=ema:decay=0.9", "--batch-schedule", "ramp:start=1,every=4,max=8",
              "--steps", "12").stdout
    a, f = load_both(out)
    assert list(f.columns) == ["method", "batch", "step", "loss", "samples", "lr", "average"]
    no_nan(f)
    assert set(f["average"]) == {"none", "ema:decay=0.9"}
    # samples consumed before step t: the ramp 1,1,1,1,2,2,2,2,4,...
    plain = f[f["average"] == "none"]
    batches = [1] * 4 + [2] * 4 + [4] * 4
    np.testing.assert_array_equal(plain["samples"], np.concatenate([[0], np.cumsum(batches)]))


def test_simulate_csv_has_a_number_in_every_field(cli, tmp_path):
    path = tmp_path / "sim.csv"
    cli("simulate", "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "0.5", "--batch", "2", "--steps", "10",
        "--runs", "200", "--seed", "3", "--output", str(path))
    a, f = load_both(path.read_text())
    assert list(f.columns) == ["step", "theory", "mean", "stderr", "z", "judged_by"]
    no_nan(f)
    # step 0: every run starts alike, so stderr = 0, z undefined (0), judged by the relative error
    assert f["stderr"][0] == 0 and f["z"][0] == 0 and f["judged_by"][0] == "rel_error"
    # equal up to rounding: the run's loss and the exact curve sum their terms in
    # different orders (bit for bit equal in the native build, not the portable one)
    assert abs(f["mean"][0] - f["theory"][0]) <= 1e-15 * f["theory"][0]
    later = f[f["step"] > 0]
    assert (later["judged_by"] == "z").all() and (later["stderr"] > 0).all()
    np.testing.assert_allclose(later["z"], (later["mean"] - later["theory"]) / later["stderr"], rtol=1e-5)
    np.testing.assert_allclose(f["theory"], sgd_moments(LAM, np.ones(5), 0.5, 2, 10), rtol=1e-12)
    # check reads simulate's CSV (mean as loss, the extra column ignored)
    r = cli("check", "--input", str(path), "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "0.5",
            "--batch", "2", "--format", "csv")
    a, f = load_both(r.stdout)
    assert list(f.columns) == ["step", "loss", "stderr", "theory", "rel_error", "z", "judged_by", "verdict"]
    no_nan(f)
    assert (f["verdict"] == "ok").all()


def test_simulate_json_carries_its_metadata(cli):
    r = cli("simulate", "--spectrum", SPECTRUM, "--method", "hb", "--lr", "0.3", "--momentum", "0.5",
            "--batch", "3", "--steps", "8", "--every", "4", "--runs", "300", "--seed", "11",
            "--covariates", "rademacher", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["command"] == "simulate"
    assert (doc["runs"], doc["seed"], doc["steps"], doc["every"], doc["batch"]) == (300, 11, 8, 4, 3)
    assert doc["covariates"] == "rademacher" and doc["kurtosis"] == 1
    assert doc["spectrum"] == SPECTRUM and doc["method"].startswith("hb")
    assert doc["verdict"] == "agree" and "agrees" in r.stderr
    assert [row["step"] for row in doc["rows"]] == [0, 4, 8]
    assert doc["rows"][0]["judged_by"] == "rel_error" and doc["rows"][0]["z"] == 0
    assert doc["z_points"] == 2 and doc["zmax"] > 3
    theory = hb_moments(LAM, np.ones(5), 0.3, 0.5, 3, 8, kurtosis=1.0)[[0, 4, 8]]
    np.testing.assert_allclose([row["theory"] for row in doc["rows"]], theory, rtol=1e-12)


def test_check_csv_with_partial_stderr_and_json_verdict(cli, tmp_path):
    ref = sgd_moments(LAM, np.ones(5), 0.5, 1, 6)
    path = tmp_path / "curve.csv"
    # rows 0-2 without a standard error (empty field), rows 3-6 with one; row 5 is 40% off.
    lines = ["step,loss,stderr"]
    for t, value in enumerate(ref):
        loss = value * (1.4 if t == 5 else 1.0)
        lines.append(f"{t},{loss!r}," + ("" if t < 3 else f"{0.01 * value!r}"))
    path.write_text("\n".join(lines) + "\n")
    args = ("check", "--input", str(path), "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "0.5")
    r = cli(*args, "--format", "csv", check=False)
    assert r.returncode == 1
    a, f = load_both(r.stdout)
    assert a.dtype["stderr"].kind == "f"
    np.testing.assert_array_equal(np.isnan(a["stderr"]), [True] * 3 + [False] * 4)
    no_nan(f, allowed=("stderr",))
    assert list(f["judged_by"]) == ["rel_error"] * 3 + ["z"] * 4
    assert list(f["verdict"]) == ["ok"] * 5 + ["FAIL", "ok"]
    np.testing.assert_allclose(f["theory"], ref, rtol=1e-12)
    r = cli(*args, "--format", "json", check=False)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "disagree" and doc["failed"] == 1 and doc["rows_total"] == 7
    assert (doc["z_rows"], doc["rtol_rows"], doc["weak"]) == (4, 3, False)
    assert doc["worst_steps"][0] == 5 and doc["zmax_rule"] == "sidak"
    assert [row["verdict"] for row in doc["rows"]] == list(f["verdict"])


def test_check_without_stderr_is_marked_weak(cli, tmp_path):
    ref = sgd_moments(LAM, np.ones(5), 0.5, 1, 4)
    path = tmp_path / "curve.csv"
    path.write_text("step,loss\n" + "".join(f"{t},{v!r}\n" for t, v in enumerate(ref)))
    r = cli("check", "--input", str(path), "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "0.5",
            "--format", "csv")
    a, f = load_both(r.stdout)
    assert list(f.columns) == ["step", "loss", "theory", "rel_error", "z", "judged_by", "verdict"]
    no_nan(f)
    assert "warning" in r.stderr
    doc = json.loads(cli("check", "--input", str(path), "--spectrum", SPECTRUM, "--method", "sgd", "--lr", "0.5",
                         "--format", "json").stdout)
    assert doc["weak"] is True and doc["verdict"] == "agree" and doc["z_rows"] == 0
