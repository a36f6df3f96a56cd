"""The package's surface: version, registry, spectra and methods as the CLI knows them."""
import json

import numpy as np
import pytest

import cesr


def test_version_is_the_cli_version(cli):
    assert cli("--version").stdout.strip() == f"cesr {cesr.__version__}"


def test_methods_is_the_cli_registry(cli):
    assert cesr.methods() == json.loads(cli("methods", "--format", "json").stdout)
    names = [row["name"] for row in cesr.methods()]
    assert names[:4] == ["sgd", "hb", "nag", "asgd"] and "custom" in names


def test_every_registry_row_takes_its_defaults_plus_required_values():
    values = {"lr": 0.1, "momentum": 0.5, "kappa": 100.0, "xi": 5.0, "nu": 0.7}
    for row in cesr.methods():
        if row["name"] == "custom":
            continue
        given = {h["name"]: values[h["name"]] for h in row["hyperparameters"] if h["required"]}
        m = cesr.method(row["name"], **given)
        assert m.name == row["name"] and m.given == given
        assert set(m.params) <= {h["name"] for h in row["hyperparameters"]}
        c = cesr.loss("loguniform:d=10,kappa=10", m, batch=4, steps=20, every=10)
        assert c.diverged_at is None and c.loss[-1] < c.loss[0]


def test_spectrum_generators_equal_the_cli_text_and_their_formulas():
    sp = cesr.Spectrum.powerlaw(d=100, alpha=1.5)
    assert sp.text == "powerlaw:d=100,alpha=1.5" and sp.init_text == "isotropic" and len(sp) == 100
    assert sp == cesr.Spectrum.parse("powerlaw:d=100,alpha=1.5")
    np.testing.assert_allclose(sp.eigenvalues, np.arange(1, 101) ** -1.5, rtol=1e-15)
    lu = cesr.Spectrum.loguniform(d=5, kappa=1e4, scale=2.0)
    assert lu.text == "loguniform:d=5,kappa=10000,scale=2"
    np.testing.assert_allclose(lu.eigenvalues, 2.0 * 1e4 ** (-np.arange(5) / 4), rtol=1e-14)
    assert lu.kappa == pytest.approx(1e4) and lu.lambda_max == 2.0 and lu.trace == pytest.approx(lu.eigenvalues.sum())
    assert lu.initial_loss == pytest.approx(0.5 * lu.eigenvalues.sum())
    beta = cesr.Spectrum.powerlaw(d=10, alpha=1.0, init="powerlaw:beta=1")
    np.testing.assert_allclose(beta.init, np.arange(1, 11) ** -1.0, rtol=1e-15)
    assert beta.with_init("isotropic") == cesr.Spectrum.powerlaw(d=10, alpha=1.0)


def test_own_arrays_are_copied_once_and_read_only():
    lam = np.array([3.0, 1.0, 2.0])
    sp = cesr.Spectrum(lam, init=[1.0, 0.0, 2.0])
    lam[0] = 100.0  # the spectrum keeps its own copy
    assert sp.eigenvalues[0] == 3.0 and not sp.eigenvalues.flags.writeable
    assert sp.text == "array:d=3" and sp.init_text == "array"
    assert sp.initial_loss == pytest.approx(0.5 * (3 + 4))
    # integer and list input is converted
    assert cesr.Spectrum([1, 2, 3]).eigenvalues.dtype == np.float64


def test_method_objects():
    m = cesr.method("hb", lr=0.1, momentum=0.9)
    assert repr(m) == "Method(hb(lr=0.1, momentum=0.9))" and m.describe() == "hb(lr=0.1, momentum=0.9)"
    assert m.params == {"lr": 0.1, "momentum": 0.9} and m.states == 2 and m.constant and m.average is None
    assert m.replace(momentum=0.5) == cesr.method("hb", lr=0.1, momentum=0.5)
    a = cesr.method("sgd", lr=0.5, average="ema:decay=0.9")
    assert a.states == 2 and a.average == "ema:decay=0.9" and a.constant
    assert not cesr.method("sgd", lr=0.5, average="polyak").constant
    t = cesr.method("torch-sgd", lr=0.1, momentum=0.9, nesterov=True)
    assert t.params["nesterov"] is True
    la = cesr.method("lookahead", lr=0.1, inner="torch-sgd", momentum=0.5)
    assert la.params["inner"] == "torch-sgd" and la.params["sync"] == 5
    P, q, r, o, s0 = m.coefficients
    assert P.shape == (2, 2) and q.shape == (2,)
    # a custom method with heavy ball's coefficients has heavy ball's loss
    c = cesr.custom(P, q, r, o, s0)
    sp = cesr.Spectrum.loguniform(d=20, kappa=100)
    np.testing.assert_allclose(cesr.loss(sp, c, batch=2, steps=100).loss, cesr.loss(sp, m, batch=2, steps=100).loss,
                               rtol=1e-13)
    assert cesr.rate(sp, c, batch=2).gap == pytest.approx(cesr.rate(sp, m, batch=2).gap, rel=1e-10)
    with pytest.raises(TypeError):
        cesr.Method()
