"""cesr.rate, cesr.tune and cesr.stability against closed forms and numpy eigenvalues."""
import numpy as np
import pytest

import cesr
from conftest import hb_operator, sgd_operator


@pytest.mark.parametrize("lam,lr,batch,kurtosis", [(1.0, 0.3, 1, 3.0), (2.0, 0.1, 8, 3.0), (0.5, 1.5, 4, 1.0),
                                                  (1.0, 0.01, 1, 3.0), (3.0, 0.2, 64, 9.0)])
def test_d1_sgd_rate_closed_form(lam, lr, batch, kurtosis):
    # d = 1: m' = [(1 - lr lam)^2 + lr^2 lam^2 (K - 1) / B] m, so rho is that factor.
    rho = (1 - lr * lam) ** 2 + lr ** 2 * lam ** 2 * (kurtosis - 1) / batch
    gap = lr * lam * (2 - lr * lam) - lr ** 2 * lam ** 2 * (kurtosis - 1) / batch  # 1 - rho without cancellation
    r = cesr.rate(cesr.Spectrum([lam]), cesr.method("sgd", lr=lr), batch=batch, kurtosis=kurtosis)
    assert r.stable
    assert r.rho == pytest.approx(rho, rel=1e-14)
    assert r.gap == pytest.approx(gap, rel=1e-12)
    assert r.precision in ("double", "long", "quad", "mp50")
    assert float(r.gap_text) == pytest.approx(r.gap, rel=1e-15)


def test_d1_sgd_unstable_is_a_result():
    r = cesr.rate(cesr.Spectrum([1.0]), cesr.method("sgd", lr=1.9), batch=1)  # rho = 0.81 + 7.22 > 1
    assert not r.stable and r.rho == pytest.approx(0.81 + 2 * 1.9 ** 2, rel=1e-13) and r.gap < 0


def test_sgd_rate_is_the_spectral_radius_of_the_moment_operator():
    lam = cesr.Spectrum.loguniform(d=12, kappa=100).eigenvalues
    for lr, batch in [(0.5, 1), (1.0, 8), (1.6, 64)]:
        rho = max(abs(np.linalg.eigvals(sgd_operator(lam, lr, batch))))
        r = cesr.rate(cesr.Spectrum(lam), cesr.method("sgd", lr=lr), batch=batch)
        assert r.rho == pytest.approx(rho, abs=1e-13)


def test_heavy_ball_rate_is_the_spectral_radius_of_the_moment_operator():
    lam = cesr.Spectrum.powerlaw(d=8, alpha=1.0).eigenvalues
    for lr, beta, batch in [(0.3, 0.5, 1), (0.5, 0.9, 16), (1.0, 0.8, 4)]:
        rho = max(abs(np.linalg.eigvals(hb_operator(lam, lr, beta, batch))))
        r = cesr.rate(cesr.Spectrum(lam), cesr.method("hb", lr=lr, momentum=beta), batch=batch)
        assert r.rho == pytest.approx(rho, abs=1e-12)


def test_fixed_precisions_agree():
    sp = cesr.Spectrum.loguniform(d=100, kappa=1e4)
    m = cesr.method("hb", lr=0.5, momentum=0.9)
    gaps = {p: cesr.rate(sp, m, batch=64, precision=p).gap for p in ("double", "long", "quad", "mp50")}
    assert cesr.rate(sp, m, batch=64).gap == pytest.approx(gaps["mp50"], rel=1e-10)  # automatic precision
    for p, g in gaps.items():
        assert g == pytest.approx(gaps["mp50"], rel=1e-9), p


def test_tune_sgd_d1_closed_form():
    # d = 1, SGD: rho(lr) = (1 - lr lam)^2 + lr^2 lam^2 (K - 1)/B is least at
    # lr* = B / (lam (B + K - 1)), where the gap is B / (B + K - 1).
    lam = 2.0
    for batch in (1, 4, 32):
        t = cesr.tune(cesr.Spectrum([lam]), "sgd", batch=batch)
        assert t.stable and t.method == "sgd" and t.batch == batch and t.objective == "rate"
        assert t.gap == pytest.approx(batch / (batch + 2), rel=1e-7)
        assert t.params["lr"] == pytest.approx(batch / (lam * (batch + 2)), rel=1e-3)
        # The tuned point, as a method, has that rate.
        r = cesr.rate(cesr.Spectrum([lam]), t.tuned_method(), batch=batch)
        assert r.gap == pytest.approx(t.gap, rel=1e-12)


def test_tune_heavy_ball_fixed_momentum_and_steps_objective():
    sp = cesr.Spectrum.loguniform(d=30, kappa=1e3)
    free = cesr.tune(sp, "hb", batch=8)
    fixed = cesr.tune(sp, "hb", batch=8, momentum=0.5)
    sgd = cesr.tune(sp, "sgd", batch=8)
    assert fixed.params["momentum"] == 0.5 and set(free.params) == {"lr", "momentum"}
    assert free.gap >= fixed.gap * (1 - 1e-9) and free.gap >= sgd.gap * (1 - 1e-9)
    t = cesr.tune(sp, "sgd", batch=8, objective="steps", target=1e-3, relative=True)
    assert t.objective == "steps" and t.steps is not None
    n = cesr.steps(sp, t.tuned_method(), batch=8, target=1e-3, relative=True)
    assert n.steps == t.steps


def test_stability_limit_of_sgd_d1():
    # d = 1, K = 3, B = 1: rho(lr) = (1 - lr lam)^2 + 2 lr^2 lam^2 = 1 at lr = 2 / (3 lam).
    s = cesr.stability(cesr.Spectrum([1.0]), "sgd", batch=1)
    assert s.lr_max == pytest.approx(2 / 3, rel=1e-10)
    assert s.lr_best == pytest.approx(1 / 3, rel=1e-6)
    assert s.gap_best == pytest.approx(1 / 3, rel=1e-9)


def test_forced_precision_refuses_a_gap_it_cannot_resolve():
    # lambda = (1, 1e-300): gap 2 lr lambda_min / (1 - beta) = 2e-309, subnormal in double.
    sp = cesr.Spectrum.loguniform(d=2, kappa=1e300)
    m = cesr.method("hb", lr=1e-10, momentum=0.9)
    with pytest.raises(ValueError, match=r"^precision double cannot"):
        cesr.rate(sp, m, batch=1, precision="double")
    r = cesr.rate(sp, m, batch=1, precision="long")
    assert r.stable and float(r.gap_text) == pytest.approx(2e-309, rel=1e-6)
    with pytest.raises(ValueError, match=r"^rtol"):
        cesr.rate(sp, m, batch=1, rtol=1e-40)
