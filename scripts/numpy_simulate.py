#!/usr/bin/env python3
"""numpy baseline for `cesr simulate` (speed comparison only; not run by CI).

The same Monte Carlo as cesr simulate, heavy ball on a power-law spectrum with
Gaussian covariates, vectorized over runs: every step draws an (R, B, d) array
of whitened covariates and applies the update to all R runs at once.

    /usr/bin/python3 scripts/numpy_simulate.py --d 1000 --batch 32 --steps 200 --runs 200

prints the wall-clock and CPU seconds of the simulation loop and the mean loss
at the last step (to eyeball against cesr's curve).
"""
import argparse
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=1.0, help="lambda_i = i^-alpha")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    lam = np.arange(1, a.d + 1, dtype=float) ** -a.alpha
    sqrt_lam = np.sqrt(lam)
    rng = np.random.default_rng(a.seed)
    e = np.ones((a.runs, a.d))  # e_0 = sqrt(E[e_0^2]) = 1 (isotropic)
    e_prev = e.copy()
    losses = np.empty((a.steps + 1, a.runs))

    wall0, cpu0 = time.perf_counter(), time.process_time()
    losses[0] = 0.5 * (e * e) @ lam
    for t in range(a.steps):
        x = rng.standard_normal((a.runs, a.batch, a.d))      # whitened covariates xi
        u = e * sqrt_lam                                      # H^{1/2} z, z = e for heavy ball
        xu = np.matmul(x, u[:, :, None])                      # (R, B, 1): xi_b^T u
        g = np.matmul(xu.transpose(0, 2, 1), x)[:, 0, :]      # (R, d): sum_b xi_b (xi_b^T u)
        g *= sqrt_lam / a.batch                               # H^{1/2} (1/B) sum_b ...
        e_next = e - a.lr * g + a.momentum * (e - e_prev)
        e_prev, e = e, e_next
        losses[t + 1] = 0.5 * (e * e) @ lam
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0

    mean = losses.mean(axis=1)
    se = losses.std(axis=1, ddof=1) / np.sqrt(a.runs)
    print(f"numpy {np.__version__}: d={a.d} B={a.batch} T={a.steps} R={a.runs} heavy ball: "
          f"{wall:.3f} s wall, {cpu:.3f} s CPU; mean loss at T = {mean[-1]:.6g} +- {se[-1]:.2g}")


if __name__ == "__main__":
    main()
