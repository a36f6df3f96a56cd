"""cesr.loss / cesr.steps default to the CLI's automatic precision and horizon,
and say which precision and path answered. References: the CLI's JSON for the
same case (a separate front end over the same library) and a forced 50-digit
run (37 more digits than double)."""
import json

import numpy as np
import pytest

import cesr

SP = "loguniform:d=50,kappa=1e4"


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a / b - 1)))


def test_defaults_are_the_cli_ones():
    import inspect
    for f in (cesr.loss, cesr.steps):
        p = inspect.signature(f).parameters
        assert p["precision"].default == "auto"
        assert p["rtol"].default == 1e-10
        assert p["horizon"].default == "auto"
        assert p["horizon_rtol"].default == 1e-10


@pytest.mark.parametrize("beta, certified", [(0.5, True), (0.999, False)])
def test_loss_auto_matches_the_cli_and_50_digits(cli, beta, certified):
    # beta 0.999 over 2e4 steps: double alone is 1.1e-7 off, auto must escalate
    lr, batch, steps, every = (0.5, 100, 200, 50) if beta == 0.5 else (5e-4, 100, 20000, 5000)
    method = "hb" if beta == 0.5 else "nag"
    m = cesr.method(method, lr=lr, momentum=beta)
    # time stepping itself (NAG over 2e4 steps would take the k = 2 spectral path under auto)
    c = cesr.loss(SP, m, batch=batch, steps=steps, every=every, horizon="stepping")
    ref = cesr.loss(SP, m, batch=batch, steps=steps, every=every, precision="mp50", horizon="stepping")
    dbl = cesr.loss(SP, m, batch=batch, steps=steps, every=every, precision="double", horizon="stepping")
    assert ref.precision == "mp50" and dbl.precision == "double"
    assert c.horizon == "stepping"
    assert c.certified is certified
    assert (c.precision == "double") is certified
    assert rel(c.loss, ref.loss) <= 1e-10
    if not certified:
        assert rel(dbl.loss, ref.loss) > 1e-8  # the case is hard: double alone is far off
    out = cli("loss", "--spectrum", SP, "--method", method, "--lr", str(lr), "--momentum", str(beta), "--batch",
              str(batch), "--steps", str(steps), "--every", str(every), "--format", "json",
              "--horizon", "stepping").stdout
    rows = json.loads(out)
    assert [r["step"] for r in rows] == list(c.step)
    # the same numbers (the CLI prints 17 digits of the answering precision: one ulp apart at most)
    np.testing.assert_allclose([r["loss"] for r in rows], c.loss, rtol=3e-16, atol=0)


def test_steps_auto_matches_the_cli_and_50_digits(cli):
    sp = "powerlaw:d=300,alpha=1.5"
    m = cesr.method("hb", lr=0.3, momentum=0.5)
    n = cesr.steps(sp, m, batch=8, target=0.1, relative=True)
    ref = cesr.steps(sp, m, batch=8, target=0.1, relative=True, precision="mp50", horizon="stepping")
    assert n.precision == "double" and n.certified and n.horizon == "stepping"
    assert n.steps == ref.steps == 122
    assert abs(n.loss / ref.loss - 1) <= 1e-10
    doc = json.loads(cli("steps", "--spectrum", sp, "--method", "hb", "--lr", "0.3", "--momentum", "0.5", "--batch",
                         "8", "--target", "0.1", "--relative").stdout)
    assert doc["steps"] == n.steps
    assert abs(doc["loss"] / n.loss - 1) <= 3e-16
    assert doc["horizon"] == n.horizon


def test_horizon_exact_and_stepping_agree_and_say_so(cli):
    # SGD (k = 1) far beyond 32 d steps: the spectral path answers under auto.
    sp = "loguniform:d=20,kappa=1e3"
    m = cesr.method("sgd", lr=0.5)
    far = cesr.loss(sp, m, batch=4, steps=5000, every=1000)
    assert far.horizon == "exact"
    stepped = cesr.loss(sp, m, batch=4, steps=5000, every=1000, horizon="stepping", precision="mp50")
    assert stepped.horizon == "stepping"
    assert rel(far.loss, stepped.loss) <= 1e-10
    rows = json.loads(cli("loss", "--spectrum", sp, "--method", "sgd", "--lr", "0.5", "--batch", "4", "--steps",
                          "5000", "--every", "1000", "--format", "json").stdout)
    np.testing.assert_allclose([r["loss"] for r in rows], far.loss, rtol=3e-16, atol=0)
    n = cesr.steps(sp, m, batch=4, target=1e-9, relative=True, horizon="exact")
    want = cesr.steps(sp, m, batch=4, target=1e-9, relative=True, horizon="stepping", precision="mp50")
    assert n.horizon == "exact" and want.horizon == "stepping"
    assert n.steps == want.steps


def test_momentum_far_steps_take_the_same_exact_path_as_the_cli(cli):
    # Heavy ball (k = 2) far beyond 32 d steps: the spectral path with the
    # bounded remainder answers under auto, in Python as in the CLI, and
    # equals 50-digit time stepping.
    sp = "loguniform:d=20,kappa=1e3"
    m = cesr.method("hb", lr=0.1, momentum=0.9)
    far = cesr.loss(sp, m, batch=4, steps=6000, every=1000)
    assert far.horizon == "exact"
    stepped = cesr.loss(sp, m, batch=4, steps=6000, every=1000, horizon="stepping", precision="mp50")
    assert rel(far.loss, stepped.loss) <= 1e-10
    rows = json.loads(cli("loss", "--spectrum", sp, "--method", "hb", "--lr", "0.1", "--momentum", "0.9", "--batch",
                          "4", "--steps", "6000", "--every", "1000", "--format", "json").stdout)
    np.testing.assert_allclose([r["loss"] for r in rows], far.loss, rtol=3e-16, atol=0)
    n = cesr.steps(sp, m, batch=4, target=1e-12, relative=True)
    want = cesr.steps(sp, m, batch=4, target=1e-12, relative=True, horizon="stepping", precision="mp50")
    assert n.horizon == "exact" and want.horizon == "stepping"
    assert n.steps == want.steps
    doc = json.loads(cli("steps", "--spectrum", sp, "--method", "hb", "--lr", "0.1", "--momentum", "0.9", "--batch",
                         "4", "--target", "1e-12", "--relative").stdout)
    assert doc["horizon"] == "exact" and doc["steps"] == n.steps


def test_bad_rtol_and_horizon_name_the_argument():
    m = cesr.method("sgd", lr=0.5)
    with pytest.raises(ValueError, match=r"^rtol must be in \(0, 1\), got 0$"):
        cesr.loss(SP, m, steps=3, rtol=0)
    with pytest.raises(ValueError, match=r"^horizon_rtol must be in \(0, 1\), got 2$"):
        cesr.steps(SP, m, target=1e-3, horizon_rtol=2)
    with pytest.raises(ValueError, match=r"^horizon"):
        cesr.loss(SP, m, steps=3, horizon="fast")
    with pytest.raises(RuntimeError, match=r"horizon='exact' cannot answer"):
        cesr.loss(SP, cesr.method("hb", lr=0.5, momentum=0.5), steps=3, horizon="exact")
