"""cesr.loss and cesr.steps against a numpy second-moment recursion written here."""
import numpy as np
import pytest

import cesr
from conftest import hb_moments, sgd_moments

LAM = np.array([1.0, 0.6, 0.3, 0.1, 0.03, 0.01])
M0 = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0])


@pytest.mark.parametrize("batch,kurtosis,noise", [(1, 3.0, 0.0), (4, 3.0, 0.1), (2, 1.0, 0.0), (8, 5.0, 0.5)])
def test_sgd_loss_matches_numpy_recursion(batch, kurtosis, noise):
    sp = cesr.Spectrum(LAM, init=M0)
    c = cesr.loss(sp, cesr.method("sgd", lr=0.4), batch=batch, steps=300, kurtosis=kurtosis, noise=noise)
    ref = sgd_moments(LAM, M0, 0.4, batch, 300, kurtosis, noise)
    assert c.diverged_at is None
    np.testing.assert_array_equal(c.step, np.arange(301))
    np.testing.assert_allclose(c.loss, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("batch,kurtosis,noise", [(1, 3.0, 0.0), (4, 3.0, 0.2), (16, 1.0, 0.0)])
def test_heavy_ball_loss_matches_numpy_recursion(batch, kurtosis, noise):
    sp = cesr.Spectrum(LAM, init=M0)
    m = cesr.method("hb", lr=0.3, momentum=0.7)
    c = cesr.loss(sp, m, batch=batch, steps=400, every=7, kurtosis=kurtosis, noise=noise)
    ref = hb_moments(LAM, M0, 0.3, 0.7, batch, 400, kurtosis, noise)
    expected_steps = np.append(np.arange(0, 400, 7), 400)  # every 7th step and always the last
    np.testing.assert_array_equal(c.step, expected_steps)
    np.testing.assert_allclose(c.loss, ref[expected_steps], rtol=1e-11, atol=0)


def test_loss_of_a_generated_spectrum_and_higher_precision():
    sp = cesr.Spectrum.powerlaw(d=50, alpha=1.5)
    np.testing.assert_allclose(sp.eigenvalues, np.arange(1, 51) ** -1.5, rtol=1e-15)
    m = cesr.method("hb", lr=0.2, momentum=0.8)
    ref = hb_moments(sp.eigenvalues, sp.init, 0.2, 0.8, 4, 200)
    for precision in ("double", "long", "mp50"):
        c = cesr.loss(sp, m, batch=4, steps=200, every=50, precision=precision)
        np.testing.assert_allclose(c.loss, ref[::50], rtol=1e-11)
        assert c.precision == precision


def test_divergence_is_a_result_not_an_exception():
    sp = cesr.Spectrum(LAM, init=M0)
    c = cesr.loss(sp, cesr.method("sgd", lr=3.5), batch=1, steps=100000)
    assert c.diverged_at is not None and 0 < c.diverged_at < 100000
    assert len(c.step) == len(c.loss) and c.step[-1] < c.diverged_at
    assert np.all(np.isfinite(c.loss))
    # The numpy recursion overflows at the same step.
    with np.errstate(over="ignore", invalid="ignore"):
        ref = sgd_moments(LAM, M0, 3.5, 1, c.diverged_at)
    assert np.all(np.isfinite(ref[:-1]))  # finite up to the step before ...
    assert not np.isfinite(ref[-1]) or ref[-1] >= np.finfo(float).max / 2  # ... at the edge of double at it
    n = cesr.steps(sp, cesr.method("sgd", lr=3.5), batch=1, target=1e-3, relative=True)
    assert n.steps is None and not n.reached and n.diverged_at == c.diverged_at


def test_steps_is_the_first_step_below_target():
    sp = cesr.Spectrum(LAM, init=M0)
    ref = sgd_moments(LAM, M0, 0.5, 2, 3000)
    n = cesr.steps(sp, cesr.method("sgd", lr=0.5), batch=2, target=1e-3, relative=True)
    first = int(np.argmax(ref <= 1e-3 * ref[0]))
    assert n.reached and n.steps == first
    assert n.loss == pytest.approx(ref[first], rel=1e-12)
    assert n.initial_loss == pytest.approx(ref[0], rel=1e-15)
    # Absolute target and one that is not reached within max_steps.
    n = cesr.steps(sp, cesr.method("sgd", lr=0.5), batch=2, target=1e-2)
    assert n.steps == int(np.argmax(ref <= 1e-2))
    # max_steps caps time stepping only (as the CLI's --max-steps): the spectral path of horizon="auto" has no cap
    n = cesr.steps(sp, cesr.method("sgd", lr=0.5), batch=2, target=1e-3, relative=True, max_steps=10,
                   horizon="stepping")
    assert n.steps is None and not n.reached and n.diverged_at is None
    n = cesr.steps(sp, cesr.method("sgd", lr=0.5), batch=2, target=1e-3, relative=True, max_steps=10)
    assert n.steps == first and n.horizon == "exact"
