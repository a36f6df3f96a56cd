"""Schedules (lr factor, batch size) against the numpy recursion with step-dependent lr and B;
the final objective of tune and frontier against the CLI and the exact loss."""
import numpy as np
import pytest

import cesr

LAM = np.array([1.0, 0.5, 0.2, 0.05, 0.01])
M0 = np.ones(5)


def sgd_scheduled(lam, m0, lr_t, batch_t, steps, kurtosis=3.0):
    """SGD's second moments with the step size and batch size of step t."""
    m = np.array(m0, dtype=float)
    out = [0.5 * lam @ m]
    for t in range(steps):
        lr, b = lr_t(t), batch_t(t)
        m = (1 - lr * lam) ** 2 * m + lr ** 2 / b * ((kurtosis - 2) * lam ** 2 * m + lam * (lam @ m))
        out.append(0.5 * lam @ m)
    return np.array(out)


def cosine(t, T, W, final=0.0):
    # docs/schedules.md: (t + 1)/W during warmup, then F + (1 - F)(1 + cos(pi (t - W)/(T - W)))/2, F after T.
    if t < W:
        return (t + 1) / W
    if t >= T:
        return final
    return final + (1 - final) * (1 + np.cos(np.pi * (t - W) / (T - W))) / 2


def test_cosine_lr_schedule_matches_the_recursion():
    sp = cesr.Spectrum(LAM, init=M0)
    m = cesr.method("sgd", lr=0.8, lr_schedule="cosine:steps=120,warmup=10")
    assert m.lr_schedule == "cosine:steps=120,warmup=10" and not m.constant and not m.has_rate
    ref = sgd_scheduled(LAM, M0, lambda t: 0.8 * cosine(t, 120, 10), lambda t: 2, 150)
    c = cesr.loss(sp, m, batch=2, steps=150)
    np.testing.assert_allclose(c.loss, ref, rtol=1e-12)
    # steps= left out: the run's horizon (loss's steps) is used
    c = cesr.loss(sp, cesr.method("sgd", lr=0.8, lr_schedule="cosine:warmup=10"), batch=2, steps=120)
    np.testing.assert_allclose(c.loss, ref[:121], rtol=1e-12)


def test_batch_ramp_matches_the_recursion_and_counts_samples():
    sp = cesr.Spectrum(LAM, init=M0)
    c = cesr.loss(sp, cesr.method("sgd", lr=0.6), steps=40, every=10, batch_schedule="ramp:start=1,every=10,max=4")
    batch_t = lambda t: min(4, 2 ** (t // 10))  # noqa: E731
    ref = sgd_scheduled(LAM, M0, lambda t: 0.6, batch_t, 40)
    np.testing.assert_allclose(c.loss, ref[::10], rtol=1e-12)
    np.testing.assert_array_equal(c.samples, [0, 10, 30, 70, 110])
    assert cesr.loss(sp, cesr.method("sgd", lr=0.6), steps=5).samples is None


def test_loss_with_schedules_equals_the_cli(cli):
    sp = cesr.Spectrum.powerlaw(d=50, alpha=1.5)
    m = cesr.method("hb", lr=0.3, momentum=0.8, lr_schedule="wsd:decay=30,warmup=5%")
    c = cesr.loss(sp, m, steps=200, every=20, batch_schedule="ramp:start=2,every=50,max=16")
    out = cli("loss", "--spectrum", sp.text, "--method", "hb", "--lr", "0.3", "--momentum", "0.8", "--lr-schedule",
              "wsd:decay=30,warmup=5%", "--batch-schedule", "ramp:start=2,every=50,max=16", "--steps", "200",
              "--every", "20").stdout.split()  # both in automatic precision
    assert out[0] == "step,loss,samples"
    rows = np.array([[float(x) for x in line.split(",")] for line in out[1:]])
    np.testing.assert_array_equal(rows[:, 0], c.step)
    # 17 significant digits of the answering precision: the same numbers to an ulp
    assert c.precision != "double"  # a schedule: no certified double run, the precisions compare
    np.testing.assert_allclose(rows[:, 1], c.loss, rtol=3e-16, atol=0)
    np.testing.assert_array_equal(rows[:, 2], c.samples)


def test_tune_final_objective_is_a_minimum_of_the_exact_loss():
    sp = cesr.Spectrum.loguniform(d=20, kappa=100)
    t = cesr.tune(sp, "sgd", batch=4, objective="final", steps=60, lr_schedule="cosine")
    assert t.objective == "final" and t.steps == 60 and t.lr_schedule == "cosine"
    m = t.tuned_method()
    assert m.lr_schedule == "cosine"
    L = cesr.loss(sp, m, batch=4, steps=60).loss[-1]
    assert L == pytest.approx(t.loss, rel=1e-12)
    for f in (0.9, 1.1):
        assert cesr.loss(sp, m.replace(lr=m.params["lr"] * f), batch=4, steps=60).loss[-1] > L


def test_frontier_final_objective_equals_the_cli(cli):
    sp = cesr.Spectrum.loguniform(d=20, kappa=100)
    f = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 4, 16], objective="final", samples=800)
    out = cli("frontier", "--spectrum", sp.text, "--methods", "sgd,hb", "--batches", "1,4,16", "--objective", "final",
              "--samples", "800", "--format", "json").stdout
    assert f.to_json() == out
    assert [r["steps"] for r in f.rows] == [800, 200, 50] * 2
    assert f.summary["methods"]["hb"]["best_loss"] == min(r["loss"] for r in f.rows if r["method"] == "hb")
    assert list(f.to_pandas().columns) == ["problem", "spectrum", "init", "samples", "method", "batch", "steps", "loss",
                                           "lr", "momentum"]
    # under warmup + cosine, with a search box
    f = cesr.frontier(sp, methods=["sgd", "hb"], batches=[1, 8], objective="final", samples=400,
                      lr_schedule="cosine:warmup=10%", search={"momentum": (0.0, 0.95)})
    out = cli("frontier", "--spectrum", sp.text, "--methods", "sgd,hb", "--batches", "1,8", "--objective", "final",
              "--samples", "400", "--lr-schedule", "cosine:warmup=10%", "--search", "momentum=0:0.95",
              "--format", "json").stdout
    assert f.to_json() == out


@pytest.mark.parametrize("call,pattern", [
    (lambda: cesr.steps(cesr.Spectrum(LAM), cesr.method("sgd", lr=0.5, lr_schedule="cosine"), target=1e-3),
     r"^lr_schedule 'cosine' needs the run's horizon \(steps=\)$"),
    (lambda: cesr.method("sgd", lr=0.5, lr_schedule="cosine:steps=0"), r"^lr_schedule 'cosine:steps=0': steps must"),
    (lambda: cesr.method("sgd", lr=0.5, lr_schedule="triangle"), r"^lr_schedule"),
    (lambda: cesr.method("sgd", lr=0.5, momentum_schedule="constant"), None),
    (lambda: cesr.loss(cesr.Spectrum(LAM), cesr.method("sgd", lr=0.5), batch=2, steps=5, batch_schedule="ramp:start=1,every=2,max=4"),
     r"^batch_schedule replaces batch: give one of them$"),
    (lambda: cesr.loss(cesr.Spectrum(LAM), cesr.method("sgd", lr=0.5), steps=5, batch_schedule="ramp:every=2"),
     r"^batch_schedule"),
    (lambda: cesr.rate(cesr.Spectrum(LAM), cesr.method("sgd", lr=0.5, lr_schedule="cosine:steps=9")),
     r"^method: a method with a schedule has no contraction rate"),
    (lambda: cesr.tune(cesr.Spectrum(LAM), "sgd", objective="final"), r"^steps: objective='final' needs steps=T"),
    (lambda: cesr.tune(cesr.Spectrum(LAM), "sgd", steps=10), r"^steps applies only to objective='final'"),
    (lambda: cesr.frontier(cesr.Spectrum(LAM), methods=["sgd"], objective="final"), r"^samples: objective='final'"),
    (lambda: cesr.frontier(cesr.Spectrum(LAM), methods=["sgd"], samples=10), r"^samples applies only"),
])
def test_schedule_errors_name_the_argument(call, pattern):
    if pattern is None:
        call()  # a constant schedule is no schedule
        return
    with pytest.raises(ValueError) as e:
        call()
    import re
    assert re.search(pattern, str(e.value)), str(e.value)
    assert "--" not in str(e.value)
