"""Shared helpers for the tests of the Python package (run by scripts/test.sh)."""
import os
import pathlib
import subprocess

import numpy as np
import pytest

import cesr

REPO = pathlib.Path(__file__).resolve().parents[2]


def cli_binary():
    """build/cesr next to the package's build folder (the package lives in BUILD/python/cesr)."""
    if os.environ.get("CESR_BINARY"):
        return pathlib.Path(os.environ["CESR_BINARY"])
    return pathlib.Path(cesr.__file__).resolve().parents[2] / "cesr"


@pytest.fixture(scope="session")
def cli():
    binary = cli_binary()
    if not binary.exists():
        pytest.fail(f"the CLI {binary} is missing (build it with scripts/setup.sh)")

    def run(*args, check=True):
        r = subprocess.run([str(binary), *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"cesr {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r
    return run


# --- independent references -------------------------------------------------
# Second moments per eigendirection, derived in the test from the update rules
# (g = (1/B) sum_b x_b (x_b^T e - eps_b), x = H^(1/2) xi, E[xi^4] = K):
#   E[g_i | e] = lambda_i e_i,
#   E[g_i^2 | e] = lambda_i^2 e_i^2 + (1/B) [(K - 2) lambda_i^2 e_i^2 + lambda_i (sum_j lambda_j e_j^2 + sigma^2)].


def sgd_moments(lam, m0, lr, batch, steps, kurtosis=3.0, noise=0.0):
    """Expected loss of SGD e' = e - lr g(e) at t = 0..steps."""
    m = np.array(m0, dtype=float)
    out = [0.5 * lam @ m]
    for _ in range(steps):
        psi = lam @ m
        m = ((1 - lr * lam) ** 2 * m
             + lr ** 2 / batch * ((kurtosis - 2) * lam ** 2 * m + lam * (psi + noise)))
        out.append(0.5 * lam @ m)
    return np.array(out)


def hb_moments(lam, m0, lr, beta, batch, steps, kurtosis=3.0, noise=0.0):
    """Expected loss of heavy ball e' = e - lr g(e) + beta (e - e_prev), e_prev(0) = e_0."""
    a = np.array(m0, dtype=float)  # E[e_t^2]
    b = a.copy()                   # E[e_t e_{t-1}]
    c = a.copy()                   # E[e_{t-1}^2]
    out = [0.5 * lam @ a]
    for _ in range(steps):
        psi = lam @ a
        u = 1 + beta - lr * lam
        a_new = (u ** 2 * a - 2 * beta * u * b + beta ** 2 * c
                 + lr ** 2 / batch * ((kurtosis - 2) * lam ** 2 * a + lam * (psi + noise)))
        b_new = u * a - beta * b
        a, b, c = a_new, b_new, a
        out.append(0.5 * lam @ a)
    return np.array(out)


def sgd_operator(lam, lr, batch, kurtosis=3.0):
    """The d x d linear map m -> m' of SGD's second moments (noise-free)."""
    T = np.diag((1 - lr * lam) ** 2 + lr ** 2 / batch * (kurtosis - 2) * lam ** 2)
    return T + lr ** 2 / batch * np.outer(lam, lam)


def hb_operator(lam, lr, beta, batch, kurtosis=3.0):
    """The 3d x 3d linear map (a, b, c) -> (a', b', c') of heavy ball's second moments."""
    d = len(lam)
    u = 1 + beta - lr * lam
    T = np.zeros((3 * d, 3 * d))
    A, Bk, C = slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d)
    T[A, A] = np.diag(u ** 2 + lr ** 2 / batch * (kurtosis - 2) * lam ** 2) + lr ** 2 / batch * np.outer(lam, lam)
    T[A, Bk] = np.diag(-2 * beta * u)
    T[A, C] = np.diag(np.full(d, beta ** 2))
    T[Bk, A] = np.diag(u)
    T[Bk, Bk] = np.diag(np.full(d, -beta))
    T[C, A] = np.eye(d)
    return T


def monte_carlo(lam, m0, lr, beta, batch, steps, runs, seed, noise=0.0):
    """Mean and standard error over runs of the loss of heavy ball (beta = 0: SGD),
    run on real Gaussian samples, all runs at once as an (R, d) array."""
    rng = np.random.default_rng(seed)
    d = len(lam)
    e = np.tile(np.sqrt(np.asarray(m0, dtype=float)), (runs, 1))
    e_prev = e.copy()
    root = np.sqrt(lam)
    losses = [0.5 * (e ** 2) @ lam]
    for _ in range(steps):
        x = rng.standard_normal((runs, batch, d)) * root          # x = H^(1/2) xi
        eps = rng.standard_normal((runs, batch)) * np.sqrt(noise)
        resid = np.einsum("rbd,rd->rb", x, e) - eps                # x^T e - eps
        g = np.einsum("rbd,rb->rd", x, resid) / batch
        e, e_prev = e - lr * g + beta * (e - e_prev), e
        losses.append(0.5 * (e ** 2) @ lam)
    L = np.array(losses)                                            # (steps + 1, R)
    return L.mean(axis=1), L.std(axis=1, ddof=1) / np.sqrt(runs)
