"""cesr.simulate and cesr.check against a numpy Monte Carlo and the numpy recursion written here."""
import numpy as np
import pytest

import cesr
from conftest import hb_moments, monte_carlo

LAM = np.array([1.0, 0.5, 0.2, 0.05])
M0 = np.array([1.0, 1.0, 2.0, 1.0])
Z = 5.0  # |z| bound per point; a correct pair of estimates passes with overwhelming probability


@pytest.mark.parametrize("beta,lr,batch,noise", [(0.0, 0.4, 2, 0.0), (0.6, 0.3, 4, 0.1)])
def test_simulate_against_numpy_monte_carlo_and_recursion(beta, lr, batch, noise):
    sp = cesr.Spectrum(LAM, init=M0)
    m = cesr.method("sgd", lr=lr) if beta == 0 else cesr.method("hb", lr=lr, momentum=beta)
    steps, runs = 60, 4000
    s = cesr.simulate(sp, m, batch=batch, steps=steps, runs=runs, seed=11, noise=noise)
    np.testing.assert_array_equal(s.step, np.arange(steps + 1))
    assert s.runs == runs and s.covariates == "gaussian" and s.kurtosis == 3 and s.diverged_at is None
    # theory: the numpy recursion
    ref = hb_moments(LAM, M0, lr, beta, batch, steps, 3.0, noise)
    np.testing.assert_allclose(s.theory, ref, rtol=1e-12)
    # cesr's Monte Carlo mean within z-bounds of the exact loss (step 0 is exact: stderr 0)
    assert s.stderr[0] == 0 and s.mean[0] == pytest.approx(ref[0], rel=1e-14)
    assert np.all(np.abs(s.mean[1:] - ref[1:]) <= Z * s.stderr[1:])
    # an independent numpy Monte Carlo of the same update, within z-bounds of both
    mean, se = monte_carlo(LAM, M0, lr, beta, batch, steps, runs, seed=5, noise=noise)
    assert np.all(np.abs(mean[1:] - ref[1:]) <= Z * se[1:])
    both = np.sqrt(se[1:] ** 2 + s.stderr[1:] ** 2)
    assert np.all(np.abs(mean[1:] - s.mean[1:]) <= Z * both)
    np.testing.assert_allclose(s.z[1:], (s.mean[1:] - s.theory[1:]) / s.stderr[1:], rtol=1e-12)


def test_simulate_depends_on_seed_not_threads():
    sp = cesr.Spectrum.powerlaw(d=20, alpha=1.0)
    m = cesr.method("hb", lr=0.3, momentum=0.5)
    a = cesr.simulate(sp, m, batch=2, steps=30, runs=200, seed=3, every=5, threads=1)
    b = cesr.simulate(sp, m, batch=2, steps=30, runs=200, seed=3, every=5, threads=2)
    c = cesr.simulate(sp, m, batch=2, steps=30, runs=200, seed=4, every=5)
    assert a == b and not np.array_equal(a.mean, c.mean)
    np.testing.assert_array_equal(a.step, [0, 5, 10, 15, 20, 25, 30])


def test_rademacher_covariates_set_the_theory_kurtosis():
    sp = cesr.Spectrum(LAM, init=M0)
    m = cesr.method("sgd", lr=0.4)
    s = cesr.simulate(sp, m, batch=1, steps=20, runs=500, covariates="rademacher")
    assert s.kurtosis == 1
    np.testing.assert_allclose(s.theory, cesr.loss(sp, m, batch=1, steps=20, kurtosis=1).loss, rtol=1e-15)


def test_check_a_simulation_and_a_wrong_model():
    sp = cesr.Spectrum.powerlaw(d=30, alpha=1.5)
    m = cesr.method("hb", lr=0.5, momentum=0.6)
    s = cesr.simulate(sp, m, batch=4, steps=100, runs=2000, seed=7, every=10)
    v = cesr.check(s.step, s.mean, s.stderr, spectrum=sp, method=m, batch=4)
    assert v.agree and v.failed == 0 and v.z_rows == 10 and v.rtol_rows == 1  # step 0 has stderr 0
    np.testing.assert_allclose(v.theory, s.theory, rtol=1e-15)
    assert 1 <= len(v.worst) <= 5 and v.worst[0]["score"] == max(r["score"] for r in v.rows)
    # the same curve held against another momentum disagrees
    w = cesr.check(s.step, s.mean, s.stderr, spectrum=sp, method=m.replace(momentum=0.3), batch=4)
    assert not w.agree and w.failed > 0 and not w.worst[0]["pass"]


def test_check_without_stderr_uses_the_relative_tolerance():
    sp = cesr.Spectrum(LAM, init=M0)
    m = cesr.method("sgd", lr=0.4)
    c = cesr.loss(sp, m, batch=2, steps=50, every=10)
    order = np.array([3, 0, 5, 1, 4, 2])  # any order
    v = cesr.check(c.step[order], c.loss[order] * 1.01, spectrum=sp, method=m, batch=2)
    assert v.agree and v.rtol_rows == 6 and v.max_abs_rel_error == pytest.approx(0.01, rel=1e-9)
    assert [r["step"] for r in v.rows] == c.step[order].tolist()
    v = cesr.check(c.step, c.loss * 1.2, spectrum=sp, method=m, batch=2, rtol=0.1)
    assert not v.agree and v.failed == 6
    # NaN stderr means "none for this row"
    se = np.full(len(c.step), np.nan)
    v = cesr.check(c.step, c.loss, se, spectrum=sp, method=m, batch=2)
    assert v.agree and v.z_rows == 0


def test_check_of_a_diverging_method_is_a_result():
    v = cesr.check([0, 10, 100000], [1.0, 1.0, 1.0], spectrum=cesr.Spectrum(LAM, init=M0),
                   method=cesr.method("sgd", lr=3.5), batch=1)
    assert not v.agree and v.diverged_at is not None
