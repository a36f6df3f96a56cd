"""search_mode and threads as on the CLI (cesr tune/frontier --search-mode, rate/tune --threads)."""
import json

import pytest

import cesr

SP = "loguniform:d=60,kappa=1e4"
LONG = cesr.Spectrum.powerlaw(d=100_000, alpha=1.5)  # several 32768-direction chunks: the kernels use 2 threads


@pytest.mark.parametrize("method", ["sgd", "hb", "asgd"])
def test_fast_search_is_the_cli_default_and_not_below_the_global_search(cli, method):
    fast = cesr.tune(SP, method, batch=16)
    glob = cesr.tune(SP, method, batch=16, search_mode="global")
    assert fast.gap >= glob.gap * (1 - 1e-6)
    out = json.loads(cli("tune", "--spectrum", SP, "--method", method, "--batch", "16").stdout)
    assert out["params"] == fast.params and out["gap"] == fast.gap and out["evaluations"] == fast.evaluations
    out = json.loads(cli("tune", "--spectrum", SP, "--method", method, "--batch", "16", "--search-mode",
                         "global").stdout)
    assert out["params"] == glob.params and out["gap"] == glob.gap and out["evaluations"] == glob.evaluations


def test_frontier_search_mode_matches_the_cli():
    for mode in ("fast", "global"):
        f = cesr.frontier(SP, methods=["sgd", "hb"], batches=[1, 16, 256], search_mode=mode)
        # Either way, every row is the lone tune at its batch (the fast search's
        # answer does not depend on its route).
        for r in f.rows:
            t = cesr.tune(SP, r["method"], batch=r["batch"], search_mode=mode)
            assert t.params == r["params"] and t.gap == r["gap"]


def test_threads_do_not_change_rate_tune_or_frontier():
    hb = cesr.method("hb", lr=0.004, momentum=0.9995)
    assert cesr.rate(LONG, hb, batch=16, threads=1) == cesr.rate(LONG, hb, batch=16, threads=2)
    one = cesr.tune(LONG, "sgd", batch=16, threads=1)
    two = cesr.tune(LONG, "sgd", batch=16, threads=2)
    assert one.params == two.params and one.gap == two.gap and one.evaluations == two.evaluations
    f1 = cesr.frontier(LONG, methods=["sgd"], batches=[1, 64], threads=1)
    f2 = cesr.frontier(LONG, methods=["sgd"], batches=[1, 64], threads=2)
    assert f1.to_json() == f2.to_json()


@pytest.mark.parametrize("call", [
    lambda: cesr.tune(SP, "sgd", batch=4, search_mode="dense"),
    lambda: cesr.frontier(SP, methods=["sgd"], batches=[1], search_mode="dense"),
])
def test_unknown_search_mode_names_it(call):
    with pytest.raises(ValueError, match=r"^search_mode: unknown search mode 'dense' \(expected fast or global\)"):
        call()


@pytest.mark.parametrize("call", [
    lambda: cesr.tune(SP, "sgd", batch=4, threads=-1),
    lambda: cesr.rate(SP, cesr.method("sgd", lr=0.1), threads=5000),
    lambda: cesr.frontier(SP, methods=["sgd"], batches=[1], threads=-2),
])
def test_bad_threads_names_it(call):
    with pytest.raises(ValueError, match=r"^threads must be in 0\.\.4096"):
        call()
