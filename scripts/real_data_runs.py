#!/usr/bin/python3
"""SGD or heavy ball on the real rows of a data set, many independent runs:
the mean excess loss and its standard error per step, as a CSV that
`cesr check` reads (docs/data.md holds it against the exact recursion).

Each step draws a mini-batch of B rows uniformly with replacement from the n
rows (centred with --center, as `cesr problem --center` does: the columns and
the labels lose their means), so the data distribution is the rows
themselves: H = X^T X / n and w* = the least-squares fit are exact, the
excess loss of an iterate is 1/2 (w - w*)^T H (w - w*), and the label noise
is the residual of each row (variance RSS / n, `noise_rows` in PREFIX.json).
The updates are the ones cesr models, from w_0 = 0:
  sgd: w <- w - lr g
  hb:  w <- w - lr g + momentum (w - w_prev)   (w_prev = w_0 at the start)
with g = (1/B) sum_b x_b (x_b . w - y_b). Only numpy is needed.

Usage: scripts/real_data_runs.py --data X.csv --labels y.csv [--center]
         --method sgd|hb --lr LR [--momentum M] --batch B --steps T [--every K]
         --runs R [--seed S] [--no-label-noise] --output OUT.csv
"""
import argparse
import sys

import numpy as np


def read_csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--center", action="store_true")
    ap.add_argument("--no-label-noise", action="store_true",
                    help="replace the labels by the fitted values X w* (residuals 0: only the covariates are real)")
    ap.add_argument("--method", choices=["sgd", "hb"], required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=2000, help="runs advanced together (memory: chunk * batch * d)")
    ap.add_argument("--output", required=True)
    a = ap.parse_args(argv)
    if a.method == "sgd" and a.momentum != 0:
        ap.error("--momentum applies to --method hb")
    if a.batch < 1 or a.steps < 0 or a.every < 1 or a.runs < 2 or not a.lr > 0:
        ap.error("--batch, --every >= 1, --steps >= 0, --runs >= 2, --lr > 0")

    X = read_csv(a.data)
    y = read_csv(a.labels)[:, 0]
    if len(y) != len(X):
        sys.exit(f"real_data_runs: {len(y)} labels for {len(X)} rows")
    if a.center:
        X = X - X.mean(axis=0)
        y = y - y.mean()
    n, d = X.shape
    H = X.T @ X / n
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    if a.no_label_noise:
        y = X @ w_star

    rows = list(range(0, a.steps + 1, a.every))
    total = np.zeros(len(rows))
    total_sq = np.zeros(len(rows))
    rng = np.random.default_rng(a.seed)
    for start in range(0, a.runs, a.chunk):
        m = min(a.chunk, a.runs - start)
        w = np.zeros((m, d))
        w_prev = w.copy()
        k = 0
        for t in range(a.steps + 1):
            if t == rows[k] if k < len(rows) else False:
                e = w - w_star
                loss = 0.5 * np.einsum("ri,ij,rj->r", e, H, e)
                total[k] += loss.sum()
                total_sq[k] += (loss ** 2).sum()
                k += 1
            if t == a.steps:
                break
            idx = rng.integers(0, n, size=(m, a.batch))
            xb = X[idx]                                   # (m, B, d)
            resid = np.einsum("rbi,ri->rb", xb, w) - y[idx]
            g = np.einsum("rbi,rb->ri", xb, resid) / a.batch
            w_next = w - a.lr * g
            if a.method == "hb":
                w_next += a.momentum * (w - w_prev)
            w_prev, w = w, w_next
    mean = total / a.runs
    var = np.maximum(total_sq / a.runs - mean ** 2, 0) * a.runs / (a.runs - 1)
    stderr = np.sqrt(var / a.runs)
    with open(a.output, "w") as f:
        f.write(f"# {a.method} lr={a.lr!r}" + (f" momentum={a.momentum!r}" if a.method == "hb" else "")
                + f" batch={a.batch} on the rows of {a.data}{' (centred)' if a.center else ''}"
                + (", labels X w* (no label noise)" if a.no_label_noise else "") + ":"
                f" {a.runs} runs, seed {a.seed} (scripts/real_data_runs.py)\n")
        f.write("step,loss,stderr\n")
        for t, l, s in zip(rows, mean, stderr):
            f.write(f"{t},{l!r},{s!r}\n")


if __name__ == "__main__":
    main()
