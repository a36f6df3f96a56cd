"""Bad input raises ValueError with a one-line message naming the Python argument (never a CLI flag)."""
import re

import numpy as np
import pytest

import cesr

SP = cesr.Spectrum.loguniform(d=10, kappa=100)
HB = cesr.method("hb", lr=0.1, momentum=0.9)

CASES = [
    # (call, regular expression the message must match)
    (lambda: cesr.method("hb", lr=-1, momentum=0.9), r"^lr must be > 0, got -1$"),
    (lambda: cesr.method("hb", lr=0.1, momentum=1.0), r"^momentum must be in \[0, 1\), got 1$"),
    (lambda: cesr.method("hb", lr=0.1), r"^momentum is required for method hb$"),
    (lambda: cesr.method("sgd", lr=0.1, momentum=0.5), r"^momentum 0.5 does not apply to method sgd$"),
    (lambda: cesr.method("hb", lr="fast", momentum=0.9), r"^lr must be a number, got 'fast'$"),
    (lambda: cesr.method("hb", lr=float("nan"), momentum=0.9), r"^lr must be a finite number"),
    (lambda: cesr.method("adam", lr=0.1), r"^method: unknown method 'adam' \(expected one of sgd, hb, nag, asgd"),
    (lambda: cesr.method("sgd", lr=0.1, average="ema"), r"^average: "),
    (lambda: cesr.method("lookahead", lr=0.1, inner="adam"), r"^inner must be one of sgd, torch-sgd, got 'adam'$"),
    (lambda: cesr.method("custom"), r"^method: give a custom method as cesr.custom"),
    (lambda: cesr.custom(np.eye(5), np.ones(5), np.ones(5), np.ones(5)), r"^P must be a k x k matrix"),
    (lambda: cesr.custom(np.eye(2), [1.0], [1.0, 0], [1.0, 0]), r"^q must have 2 entries"),
    (lambda: cesr.custom([[np.inf]], [1.0], [1.0], [1.0]), r"^P\[0\]\[0\] must be finite"),
    (lambda: cesr.custom([[1.0]], [1.0], [1.0], [1.0], s0=[1.0, 2.0]), r"^s0 must have 1 entries"),
    (lambda: cesr.Spectrum([1.0, -2.0]), r"^eigenvalues must be finite and > 0, got -2 at index 1$"),
    (lambda: cesr.Spectrum([]), r"^eigenvalues must not be empty$"),
    (lambda: cesr.Spectrum(np.ones((2, 2))), r"^eigenvalues must be a 1-D array"),
    (lambda: cesr.Spectrum([1.0, 2.0], init=[1.0]), r"^init must have 2 entries"),
    (lambda: cesr.Spectrum([1.0, 2.0], init=[1.0, -1.0]), r"^init must be finite and >= 0"),
    (lambda: cesr.Spectrum([1.0, 2.0], init="gaussian"), r"^init: "),
    (lambda: cesr.Spectrum.powerlaw(d=0, alpha=1), r"^d must be >= 1, got 0$"),
    (lambda: cesr.Spectrum.powerlaw(d=2.5, alpha=1), r"^d must be a whole number >= 1"),
    (lambda: cesr.Spectrum.loguniform(d=10, kappa=0.5), r"^spectrum: .*kappa must be >= 1"),
    (lambda: cesr.Spectrum.parse("gaussian:d=3"), r"^spectrum: "),
    (lambda: cesr.loss(SP, HB, batch=0, steps=10), r"^batch must be >= 1, got 0$"),
    (lambda: cesr.loss(SP, HB, batch=1, steps=-1), r"^steps must be >= 0, got -1$"),
    (lambda: cesr.loss(SP, HB, batch=1, steps=10, every=0), r"^every must be >= 1, got 0$"),
    (lambda: cesr.loss(SP, HB, batch=1, steps=10, kurtosis=0.5), r"^kurtosis must be a finite number >= 1"),
    (lambda: cesr.loss(SP, HB, batch=1, steps=10, noise=-1), r"^noise must be a finite number >= 0"),
    (lambda: cesr.loss(SP, HB, batch=1, steps=10, precision="single"), r"^precision must be one of auto, double"),
    (lambda: cesr.steps(SP, HB, batch=1, target=0), r"^target must be a finite number > 0, got 0$"),
    (lambda: cesr.steps(SP, HB, batch=1, target=1e-3, max_steps=-1), r"^max_steps must be >= 0"),
    (lambda: cesr.rate(SP, HB, batch=1, rtol=2), r"^rtol must be in \(0, 1\), got 2$"),
    (lambda: cesr.rate(SP, HB, batch=1, precision="single"), r"^precision must be one of auto, double"),
    (lambda: cesr.rate(SP, cesr.method("schedule-free", lr=0.1, momentum=0.9), batch=1),
     r"^method: the coefficients of schedule-free.* change with the step"),
    (lambda: cesr.tune(SP, "hb", batch=1, objective="loss"), r"^objective must be 'rate' or 'steps', got 'loss'$"),
    (lambda: cesr.tune(SP, "hb", batch=1, target=2, relative=True), r"^target 2 with relative must be < 1"),
    (lambda: cesr.tune(SP, "hb", batch=1, max_steps=0), r"^max_steps must be >= 1, got 0$"),
    (lambda: cesr.tune(SP, "hb", batch=1, xi=2), r"^xi 2 does not apply to method hb$"),
    (lambda: cesr.tune(SP, "hb", batch=1, search={"kappa": (1, 2)}), r"^search: method hb does not tune kappa$"),
    (lambda: cesr.tune(SP, "adam", batch=1), r"^method: unknown method 'adam'"),
    (lambda: cesr.frontier(SP, methods=["sgd", "adam"]), r"^methods: unknown method 'adam'"),
    (lambda: cesr.frontier(SP, methods=["sgd", "sgd"]), r"^methods: 'sgd' is listed twice$"),
    (lambda: cesr.frontier(SP, methods=["sgd"], batches=[1, 0]), r"^batches must hold whole numbers >= 1, got 0$"),
    (lambda: cesr.frontier(SP, methods=["sgd"], batches="1:8:2"), r"^batches '1:8:2': the factor must be written xF"),
    (lambda: cesr.frontier(SP, methods=["sgd"], batches=[1], xi=3), r"^xi 3 does not apply to any of the methods$"),
    (lambda: cesr.frontier(SP, methods=["sgd"], batches=[1], threads=-1), r"^threads must be in 0..4096"),
    (lambda: cesr.simulate(SP, HB, batch=1, steps=10, runs=1), r"^runs must be >= 2, got 1$"),
    (lambda: cesr.simulate(SP, HB, batch=1, steps=10, runs=10, seed=-1), r"^seed must be >= 0"),
    (lambda: cesr.simulate(SP, HB, batch=1, steps=10, runs=10, covariates="cauchy"), r"^covariates must be"),
    (lambda: cesr.check([0, 1], [1.0], spectrum=SP, method=HB), r"^loss must have one entry per step \(2\), got 1$"),
    (lambda: cesr.check([0, 0], [1.0, 1.0], spectrum=SP, method=HB), r"^step 0 is listed twice$"),
    (lambda: cesr.check([0, 1.5], [1.0, 1.0], spectrum=SP, method=HB), r"^step must hold whole numbers >= 0"),
    (lambda: cesr.check([0, 1], [1.0, -1.0], spectrum=SP, method=HB), r"^loss must be finite and >= 0"),
    (lambda: cesr.check([0, 1], [1.0, 1.0], [0.1], spectrum=SP, method=HB), r"^stderr must have one entry per step"),
    (lambda: cesr.check([0, 1], [1.0, 1.0], spectrum=SP, method=HB, alpha=2), r"^alpha must lie in \(0, 1\)"),
    (lambda: cesr.check([0, 1], [1.0, 1.0], spectrum=SP, method=HB, rtol=0), r"^rtol must be a finite number > 0"),
    (lambda: cesr.stability(SP, "hb", batch=1, lr=0.1, momentum=0.9), r"^lr is what stability finds"),
]


@pytest.mark.parametrize("call,pattern", CASES, ids=[p for _, p in CASES])
def test_bad_input_names_the_argument(call, pattern):
    with pytest.raises(ValueError) as e:
        call()
    message = str(e.value)
    assert re.search(pattern, message), message
    assert "--" not in message and "\n" not in message


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="spectrum must be a cesr.Spectrum"):
        cesr.loss([1.0, 2.0], HB, steps=1)
    with pytest.raises(TypeError, match="method must be a cesr.Method"):
        cesr.loss(SP, "hb", steps=1)
    with pytest.raises(TypeError, match="tune takes a registry name"):
        cesr.tune(SP, HB)


def test_spectrum_text_is_accepted_where_a_spectrum_is():
    c = cesr.rate("loguniform:d=10,kappa=100", HB, batch=2)
    assert c.gap == cesr.rate(SP, HB, batch=2).gap
