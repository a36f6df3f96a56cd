"""Weighted spectra, the additive (NQM) noise model and preconditioning from Python:
weighted vs expanded arrays, npy vs text, additive SGD against the d = 1 closed form
and a numpy recursion, the preconditioned problem against a numpy recursion of the
preconditioned update, pickling."""
import pickle

import numpy as np
import pytest

import cesr

LAM = np.array([1.0, 0.3, 0.02])
W = np.array([2.0, 3.0, 1.0])
M0 = np.array([1.0, 0.5, 2.0])


def test_weighted_equals_expanded():
    sp = cesr.Spectrum(LAM, init=M0, weights=W)
    ex = cesr.Spectrum(np.repeat(LAM, W.astype(int)), init=np.repeat(M0, W.astype(int)))
    assert sp.directions == 6 and not sp.fractional and ex.weights is None
    m = cesr.method("hb", lr=0.3, momentum=0.8)
    a = cesr.loss(sp, m, batch=2, steps=200, every=20)
    b = cesr.loss(ex, m, batch=2, steps=200, every=20)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-13)
    assert cesr.rate(sp, m, batch=2).gap == pytest.approx(cesr.rate(ex, m, batch=2).gap, rel=1e-12)
    assert pickle.loads(pickle.dumps(sp)) == sp


def test_weighted_file_and_npy(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("1 2\n0.3 3\n0.02\n")
    sp = cesr.Spectrum.file(str(f))
    np.testing.assert_array_equal(sp.weights, W)
    n = tmp_path / "e.npy"
    np.save(n, np.repeat(LAM, W.astype(int)))
    e = cesr.Spectrum.npy(str(n))
    m = cesr.method("sgd", lr=0.5)
    np.testing.assert_allclose(cesr.loss(sp, m, steps=50).loss, cesr.loss(e, m, steps=50).loss, rtol=1e-13)
    np.save(tmp_path / "i.npy", np.arange(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dtype"):
        cesr.Spectrum.npy(str(tmp_path / "i.npy"))


def test_additive_sgd_closed_form_and_floor():
    lam, eta, c, B, e0 = 0.7, 0.5, 2.0, 4, 3.0
    sp = cesr.Spectrum([lam], init=[e0]).with_noise_model("additive", scale=c)
    curve = cesr.loss(sp, cesr.method("sgd", lr=eta), batch=B, steps=100)
    a, f = (1 - eta * lam) ** 2, eta**2 * c * lam / B
    t = np.arange(101)
    ref = 0.5 * lam * (a**t * e0 + f * (1 - a**t) / (1 - a))
    np.testing.assert_allclose(curve.loss, ref, rtol=1e-13)
    with pytest.raises(ValueError, match="kurtosis"):
        cesr.loss(sp, cesr.method("sgd", lr=eta), batch=B, steps=3, kurtosis=1.0)
    st = cesr.steps(sp, cesr.method("sgd", lr=eta), batch=B, target=0.5 * lam * f / (1 - a) * 0.99)
    assert st.steps is None and st.steps_run == 0
    assert st.loss_floor == pytest.approx(0.5 * lam * f / (1 - a), rel=1e-14)
    # The rate is the noiseless one at every batch size.
    assert cesr.rate(sp, cesr.method("sgd", lr=eta), batch=1).rho == pytest.approx(a, rel=1e-14)
    assert pickle.loads(pickle.dumps(sp)) == sp


def test_preconditioned_update_against_numpy():
    # SGD with the gradient scaled by p = (lambda/lambda_max)^-gamma, second moments of
    # e written here in the original coordinates (Gaussian data, K = 3):
    #   E e_i'^2 = (1 - eta p_i lambda_i)^2 E e_i^2 + eta^2 p_i^2 / B (lambda_i^2 E e_i^2 + lambda_i psi),
    #   psi = sum_j lambda_j E e_j^2.
    gamma, eta, B = 0.5, 0.4, 2
    p = (LAM / LAM.max()) ** -gamma
    sp = cesr.Spectrum(LAM, init=M0).preconditioned(gamma)
    assert sp.precondition == gamma
    m = M0.copy()
    ref = [0.5 * np.sum(LAM * m)]
    for _ in range(100):
        psi = np.sum(LAM * m)
        m = (1 - eta * p * LAM) ** 2 * m + eta**2 * p**2 / B * (LAM**2 * m + LAM * psi)
        ref.append(0.5 * np.sum(LAM * m))
    curve = cesr.loss(sp, cesr.method("sgd", lr=eta), batch=B, steps=100)
    np.testing.assert_allclose(curve.loss, ref, rtol=1e-12)
    assert pickle.loads(pickle.dumps(sp)) == sp
    with pytest.raises(ValueError, match="already preconditioned"):
        sp.preconditioned(0.3)


def test_additive_tune_and_frontier_steps_objective():
    sp = cesr.Spectrum.powerlaw(d=30, alpha=1.0).with_noise_model("additive")
    t = cesr.tune(sp, "sgd", batch=4, objective="steps", target=1e-2, relative=True)
    assert t.steps is not None
    # The tuned point reaches the target and its floor lies below it (checked by steps itself).
    st = cesr.steps(sp, t.tuned_method(), batch=4, target=1e-2 * sp.initial_loss)
    assert st.steps == t.steps and st.loss_floor < 1e-2 * sp.initial_loss
    with pytest.raises(ValueError, match="objective"):
        cesr.frontier(sp, ["sgd"], [1, 4])
    f = cesr.frontier(sp, ["sgd"], [1, 16], objective="steps", target=1e-2, relative=True)
    steps = [r["steps"] for r in f.rows]
    assert steps[0] > 8 * steps[1]  # perfect scaling at small batch under additive noise
