"""cesr.frontier: the CLI's JSON for the same problem, rows consistent with tune and rate."""
import io
import json

import numpy as np
import pytest

import cesr


def test_to_json_is_the_cli_output(cli):
    sp = cesr.Spectrum.powerlaw(d=100, alpha=1.5)
    assert sp.text == "powerlaw:d=100,alpha=1.5"
    f = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 4, 16, 64])
    out = cli("frontier", "--spectrum", "powerlaw:d=100,alpha=1.5", "--methods", "sgd,hb", "--batches", "1,4,16,64",
              "--format", "json").stdout
    assert f.to_json() == out
    # rows and summary are the JSON's, as Python values
    doc = json.loads(out)[0]  # the CLI prints a list, one object per problem
    assert [{k: r[k] for k in ("method", "batch", "gap", "steps", "ce", "params")} for r in f.rows] == doc["rows"]
    assert f.summary == doc["summary"]


def test_steps_objective_and_batches_text_match_the_cli(cli):
    sp = cesr.Spectrum.loguniform(d=50, kappa=1e4, init="powerlaw:beta=1")
    assert sp.text == "loguniform:d=50,kappa=10000" and sp.init_text == "powerlaw:beta=1"
    f = cesr.frontier(sp, methods="sgd,asgd", batches="1:64:x4", objective="steps", target=1e-3, relative=True,
                      kurtosis=2.0)
    out = cli("frontier", "--spectrum", sp.text, "--init", sp.init_text, "--methods", "sgd,asgd", "--batches",
              "1:64:x4", "--objective", "steps", "--target", "1e-3", "--relative", "--kurtosis", "2",
              "--format", "json").stdout
    assert f.to_json() == out
    assert str(f).startswith(f"== {sp.text} ==\nmethod  batch")  # the CLI's table


def test_frontier_of_own_eigenvalues_rows_agree_with_tune_and_rate(tmp_path, cli):
    rng = np.random.default_rng(3)
    lam = np.sort(rng.uniform(0.01, 1.0, size=40))[::-1]
    sp = cesr.Spectrum(lam)
    assert sp.text == "array:d=40"
    f = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 8, 64])
    assert [(r["method"], r["batch"]) for r in f.rows] == [(m, b) for m in ("sgd", "hb") for b in (1, 8, 64)]
    for r in f.rows:
        t = cesr.tune(sp, r["method"], batch=r["batch"])
        assert t.params == r["params"] and t.gap == r["gap"]
        g = cesr.rate(sp, t.tuned_method(), batch=r["batch"]).gap
        assert g == pytest.approx(r["gap"], rel=1e-12)
        assert r["ce"] == pytest.approx(r["gap"] / r["batch"], rel=1e-15)
    # The same eigenvalues through a file give the CLI's JSON with the file's name.
    path = tmp_path / "eig.txt"
    path.write_text("".join(f"{x!r}\n" for x in lam))
    fs = cesr.frontier(cesr.Spectrum.file(path), methods=["sgd", "hb"], batches=[1, 8, 64])
    out = cli("frontier", "--spectrum", f"file:{path}", "--methods", "sgd,hb", "--batches", "1,8,64",
              "--format", "json").stdout
    assert fs.to_json() == out
    assert fs.rows == f.rows


def test_to_pandas():
    pd = pytest.importorskip("pandas")
    f = cesr.frontier(cesr.Spectrum.loguniform(d=20, kappa=100), methods=["sgd", "hb"], batches=[1, 16])
    df = f.to_pandas()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["problem", "spectrum", "init", "method", "batch", "gap", "steps", "ce", "lr",
                                "momentum"]
    assert len(df) == 4 and df["batch"].tolist() == [1, 16, 1, 16]
    assert df["spectrum"].tolist() == ["loguniform:d=20;kappa=100"] * 4  # as the CLI's CSV writes it
    assert np.isnan(df["momentum"][0]) and df["momentum"][2] == f.rows[2]["params"]["momentum"]


def test_progress_callback_and_threads_do_not_change_the_result():
    sp = cesr.Spectrum.loguniform(d=20, kappa=100)
    seen = []
    f1 = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 4, 16], threads=1,
                       progress=lambda done, total: seen.append((done, total)))
    f2 = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 4, 16], threads=2)
    assert seen == [(i, 6) for i in range(1, 7)]
    assert f1 == f2 and f1.to_json() == f2.to_json()


def test_progress_callback_error_is_raised():
    def boom(done, total):
        raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        cesr.frontier(cesr.Spectrum.loguniform(d=10, kappa=10), methods=["sgd"], batches=[1, 2], threads=2,
                      progress=boom)


def test_several_spectra_are_the_cli_run_with_repeated_spectrum(cli):
    a, b = "loguniform:d=30,kappa=1000", "powerlaw:d=30,alpha=1.5"
    f = cesr.frontier([a, cesr.Spectrum.parse(b)], methods=["sgd", "hb"], batches=[1, 16, 256],
                      init=["isotropic", "powerlaw:beta=1"], objective="steps", target=1e-4, relative=True)
    out = cli("frontier", "--spectrum", a, "--spectrum", b, "--init", "isotropic", "--init", "powerlaw:beta=1",
              "--methods", "sgd,hb", "--batches", "1,16,256", "--objective", "steps", "--target", "1e-4",
              "--relative", "--format", "json").stdout
    assert f.to_json() == out
    assert f.problems == json.loads(out)
    # Each problem is its own single-problem run.
    only_b = cesr.frontier(b, methods=["sgd", "hb"], batches=[1, 16, 256], init="powerlaw:beta=1", objective="steps",
                           target=1e-4, relative=True)
    assert f.problems[1] == only_b.problems[0] and only_b.rows == f.problems[1]["rows"]
    with pytest.raises(ValueError, match=r"2 problems: use \.problems\[i\]"):
        f.rows
    with pytest.raises(ValueError, match="^init: a list of 3 for 2 spectra"):
        cesr.frontier([a, b], methods=["sgd"], batches=[1], init=["isotropic"] * 3)
    # One count over the whole run.
    seen = []
    cesr.frontier([a, b], methods=["sgd"], batches=[1, 4], progress=lambda d, t: seen.append((d, t)), threads=1)
    assert seen == [(i, 4) for i in range(1, 5)]


def test_dataframes_are_the_cli_csv_as_pandas_reads_it(cli):
    pd = pytest.importorskip("pandas")
    a, b = "loguniform:d=30,kappa=1000", "powerlaw:d=30,alpha=1.5"
    args = ["--methods", "sgd,hb,asgd", "--batches", "1,16,256"]
    f = cesr.frontier([a, b], methods=["sgd", "hb", "asgd"], batches=[1, 16, 256])
    rows = pd.read_csv(io.StringIO(cli("frontier", "--spectrum", a, "--spectrum", b, *args, "--format", "csv").stdout))
    pd.testing.assert_frame_equal(f.to_pandas(), rows, check_dtype=False)
    summary = pd.read_csv(io.StringIO(cli("frontier", "--spectrum", a, "--spectrum", b, *args, "--format", "csv",
                                          "--table", "summary").stdout))
    pd.testing.assert_frame_equal(f.summary_pandas(), summary, check_dtype=False)
    assert summary["critical_batch"].dtype == float and rows["gap"].dtype == float


def test_every_frontier_and_window_csv_loads_in_numpy_and_pandas_without_options(cli):
    pd = pytest.importorskip("pandas")
    outputs = {
        "rows": cli("frontier", "--spectrum", "loguniform:d=30,kappa=1e3", "--spectrum", "powerlaw:d=30,alpha=1",
                    "--methods", "sgd,hb,asgd", "--batches", "1,64", "--format", "csv").stdout,
        "summary": cli("frontier", "--spectrum", "loguniform:d=30,kappa=1e3", "--methods", "sgd,hb", "--batches",
                       "1,64,4096", "--format", "csv", "--table", "summary").stdout,
        "final": cli("frontier", "--spectrum", "loguniform:d=30,kappa=1e3", "--methods", "sgd,hb", "--batches", "1,64",
                     "--objective", "final", "--samples", "1000,10000", "--format", "csv").stdout,
        "window": cli("window", "--kappas", "1e2,1e4", "--d", "30", "--format", "csv").stdout,
        # Columns with no value at all (no window without hb, CE never halves on two batches).
        "nulls": cli("frontier", "--spectrum", "loguniform:d=30,kappa=1e3", "--methods", "sgd", "--batches", "1,2",
                     "--format", "csv", "--table", "summary").stdout,
    }
    for name, text in outputs.items():
        header = text.splitlines()[0].split(",")
        arr = np.genfromtxt(io.StringIO(text), delimiter=",", names=True, dtype=None, encoding=None)
        df = pd.read_csv(io.StringIO(text))
        assert list(arr.dtype.names) == header, name
        assert list(df.columns) == header, name
        assert len(df) == len(np.atleast_1d(arr)) == len(text.splitlines()) - 1, name
        for col in header:  # every number column is numeric in both readers
            if col in ("spectrum", "init", "method"):
                continue
            assert np.issubdtype(arr.dtype[col], np.number), (name, col)
            assert pd.api.types.is_numeric_dtype(df[col]), (name, col)
    nulls = np.genfromtxt(io.StringIO(outputs["nulls"]), delimiter=",", names=True, dtype=None, encoding=None)
    assert np.isnan(nulls["window_ratio"]) and np.isnan(nulls["critical_batch"])  # null, never False or 0
    final = pd.read_csv(io.StringIO(outputs["final"]))
    assert sorted(set(final["samples"])) == [1000, 10000]


def test_fixed_momentum_applies_to_the_methods_that_have_it():
    sp = cesr.Spectrum.loguniform(d=30, kappa=1000)
    f = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 16], momentum=0.9)
    free = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 16])
    for r, g in zip(f.rows, free.rows):
        if r["method"] == "hb":
            assert r["params"]["momentum"] == 0.9
            t = cesr.tune(sp, "hb", batch=r["batch"], momentum=0.9)
            assert t.gap == r["gap"] and t.params == r["params"]
        else:
            assert r == g
    with pytest.raises(ValueError, match="momentum 0.9 does not apply to any of the methods"):
        cesr.frontier(sp, methods=["sgd"], batches=[1], momentum=0.9)
