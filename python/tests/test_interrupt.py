"""Ctrl-C (KeyboardInterrupt) stops a long frontier, tune, steps, loss or simulate within about a second."""
import os
import signal
import threading
import time

import pytest

import cesr

# Its default sweep took 24 s on 2 Zen 5 cores (2026-12-02); d = 3000 had
# come down to 0.25 s as the tuner got faster, and ended before the interrupt.
BIG = cesr.Spectrum.loguniform(d=300_000, kappa=1e6)


def interrupted_after(call, seconds=0.3):
    """Runs call(), sends SIGINT to this process after `seconds`; expects
    KeyboardInterrupt and returns the time the call took."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
    return time.perf_counter() - t0


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_long_frontier(threads):
    elapsed = interrupted_after(lambda: cesr.frontier(BIG, methods=["sgd", "hb", "asgd"], threads=threads))
    assert elapsed < 0.3 + 1.0, elapsed


def test_a_frontier_after_an_interrupt_still_works():
    f = cesr.frontier(cesr.Spectrum.loguniform(d=10, kappa=10), methods=["sgd"], batches=[1, 2])
    assert len(f.rows) == 2


# Each of these runs for more than 8 s uninterrupted (measured with a timeout on
# this 2-core machine; loss about 34 s); the library polls the stop flag every
# 1024 steps, at every tuning point and every 16 simulation steps.
_LONG = cesr.Spectrum.loguniform(d=20_000, kappa=1e4)
_SLOW = {
    "tune": lambda: cesr.tune(_LONG, "hb", batch=1, objective="final", steps=100_000),
    "steps": lambda: cesr.steps(_LONG, cesr.method("sgd", lr=1e-4), batch=1, target=1e-12, relative=True,
                                max_steps=10**9),
    "loss": lambda: cesr.loss(_LONG, cesr.method("hb", lr=1e-3, momentum=0.5), batch=1, steps=10**8, every=10**7),
    "simulate": lambda: cesr.simulate(_LONG, cesr.method("sgd", lr=1e-3), batch=64, steps=2000, runs=64, seed=1),
}


@pytest.mark.parametrize("name", sorted(_SLOW))
def test_ctrl_c_stops_tune_steps_loss_and_simulate(name):
    elapsed = interrupted_after(_SLOW[name])
    assert elapsed < 0.3 + 1.0, (name, elapsed)
