"""Ctrl-C (KeyboardInterrupt) stops a long frontier within about a second."""
import os
import signal
import threading
import time

import pytest

import cesr

BIG = cesr.Spectrum.loguniform(d=3_000, kappa=1e6)  # its default sweep takes ~5 s on 2 cores, a row < 0.4 s


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_long_frontier(threads):
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cesr.frontier(BIG, methods=["sgd", "hb", "asgd"], threads=threads)
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.3 + 1.0, elapsed  # the rows in progress finish, no others start


def test_a_frontier_after_an_interrupt_still_works():
    f = cesr.frontier(cesr.Spectrum.loguniform(d=10, kappa=10), methods=["sgd"], batches=[1, 2])
    assert len(f.rows) == 2
