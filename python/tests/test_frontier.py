"""cesr.frontier: the CLI's JSON for the same problem, rows consistent with tune and rate."""
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
    doc = json.loads(out)
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
    assert list(df.columns) == ["method", "batch", "gap", "steps", "ce", "lr", "momentum"]
    assert len(df) == 4 and df["batch"].tolist() == [1, 16, 1, 16]
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
