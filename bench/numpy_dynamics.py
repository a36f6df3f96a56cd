#!/usr/bin/env python3
"""numpy baseline for bench_dynamics (speed comparison only; not run by CI).

The exact heavy-ball second-moment recursion of src/dynamics.cpp, vectorized
over eigendirections with numpy, on the problem of bench_dynamics.cpp
(lambda log-uniform in [1e-4, 1], lr 0.1, momentum 0.9, B = d, K = 3,
label noise 0.01). Prints ns per direction-step (CPU time) for each d.

    /usr/bin/python3 bench/numpy_dynamics.py
"""
import time

import numpy as np


def run(d, steps):
    lam = np.logspace(0.0, -4.0, d)
    eta, beta, B, K, s2 = 0.1, 0.9, float(d), 3.0, 0.01
    a = np.ones(d); b = np.ones(d); c = np.ones(d)
    psi = float(lam @ a)
    m = 1.0 + beta - eta * lam
    mm, mb, bb, ekb = m * m, 2.0 * m * beta, beta * beta, (K - 2.0) / B
    t0 = time.process_time()
    for _ in range(steps):
        n = eta * eta * lam * (ekb * lam * a + (psi + s2) / B)
        an = mm * a - mb * b + bb * c + n
        bn = m * a - beta * b
        c = a
        a, b = an, bn
        psi = float(lam @ a)
        loss = 0.5 * psi
    dt = time.process_time() - t0
    return 1e9 * dt / (steps * d), loss


if __name__ == "__main__":
    for d, steps in [(1000, 20000), (10000, 4000), (100000, 400), (1000000, 40)]:
        ns, loss = run(d, steps)
        print(f"d = {d:>7}: {ns:6.2f} ns per direction-step (loss {loss:.6e})")
