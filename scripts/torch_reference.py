#!/usr/bin/env python3
"""PyTorch reference curves for tests/test_oracle.cpp (run once; CI does not need torch).

    apt-get install -y python3-torch          # Debian's package, no pip
    /usr/bin/python3 scripts/torch_reference.py [--runs 20000] [--out tests/data/torch]

Problem (fixed): d = 20, H = diag(lambda_i = i^-1.5), x ~ N(0, H), w* = 0, labels
y = x^T w* + xi with xi ~ N(0, sigma2), w_0 = 1 in every coordinate (so the error
e_0 = w_0 - w* = 1 deterministically, E[e_{0,i}^2] = 1), batch B = 4 fresh samples
per step, 200 steps, the loss recorded at steps 0, 10, ..., 200.

R independent runs are one float64 parameter tensor W of shape (R, d): row r is
run r. Each step draws x of shape (R, B, d) and xi of shape (R, B), and the
objective handed to backward() is

    F(W) = sum_r (1/B) sum_b 1/2 (x_{rb}^T w_r - y_{rb})^2,

a sum over rows, so dF/dw_r depends on row r only (rows never interact) and is
exactly the mini-batch gradient g(w_r) = (1/B) sum_b x_{rb} (x_{rb}^T w_r - y_{rb})
of the model in docs/theory.md: torch's lr is cesr's lr.

MSELoss factor: torch.nn.MSELoss() (reduction='mean') of one run's batch is
(1/B) sum_b (x_b^T w - y_b)^2 = 2 * (1/B) sum_b 1/2 (x_b^T w - y_b)^2, so its
gradient is 2 g(w): training with MSELoss at learning rate lr is cesr's model at
lr' = 2 lr. Applied to the whole (R, B) prediction tensor, the mean would also
divide by R (gradient 2 g / R per row), which is why the rows are summed here.
The script checks the factor 2 numerically before it starts (check_mse_factor).

The loss logged is the excess population loss 1/2 e^T H e = 1/2 sum_i lambda_i w_i^2
(without sigma2/2), the quantity cesr computes; per recorded step the file holds
the mean over runs and its standard error std(ddof=1)/sqrt(R).

torch.optim.swa_utils.AveragedModel (checked here by check_averaged_model_first_update):
the constructor deep-copies the model and sets n_averaged = 0; the FIRST
update_parameters() call copies the model's current parameters (it does not
average them with the constructor's copy), every later call applies avg_fn
(default: a + (m - a)/(n + 1), a running mean of the updates). Updated after
every optimizer step, the average at step t is mean(w_1..w_t) (w_0 excluded;
before the first update the copy equals w_0): cesr's tail:start=1. With the EMA
avg_fn a + (1 - decay)(m - a) and one update before training, it is
a_0 = w_0, a_{t+1} = decay a_t + (1 - decay) w_{t+1}: cesr's ema:decay=0.9.
torch >= 2.1 spells that AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
(a foreach lerp with weight 1 - decay, same first-update copy); torch 1.13 (Debian
bookworm) has no multi_avg_fn, so the script passes the identical avg_fn when
get_ema_multi_avg_fn is missing.
"""
import argparse
import json
import math
import os
import platform
import time

import torch
from torch.optim.swa_utils import AveragedModel

D = 20
ALPHA = 1.5
BATCH = 4
STEPS = 200
EVERY = 10
SEED = 20240917

CASES = [
    # name, settings
    ("sgd_momentum_dampening", dict(lr=0.05, momentum=0.9, dampening=0.5, nesterov=False, sigma2=0.0)),
    ("sgd_nesterov", dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=True, sigma2=0.0)),
    ("sgd_momentum_noise", dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, sigma2=0.25)),
    ("sgd_swa_tail", dict(lr=0.2, momentum=0.0, dampening=0.0, nesterov=False, sigma2=0.0,
                          average="swa: AveragedModel(model), update_parameters after every step")),
    ("sgd_momentum_ema", dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, sigma2=0.0,
                              average="ema: AveragedModel(model, EMA decay 0.9), update_parameters once "
                                      "before training and after every step")),
    ("sgd_momentum_warmup_cosine", dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, sigma2=0.0,
                                        schedule="SequentialLR([LinearLR(start_factor=0.05, end_factor=1.0, "
                                                 "total_iters=20), CosineAnnealingLR(T_max=180, eta_min=0)], "
                                                 "milestones=[20]), scheduler.step() after every optimizer.step()")),
    # The same with LinearLR(start_factor=1/20, total_iters=19): m_t = (t + 1)/20 for t < 20, exactly cesr's
    # --lr-schedule cosine:steps=200,warmup=20 (LinearLR with total_iters=20 reaches 1 one step later).
    ("sgd_momentum_warmup20_cosine", dict(lr=0.05, momentum=0.9, dampening=0.0, nesterov=False, sigma2=0.0,
                                          warmup_start=0.05, warmup_iters=19,
                                          schedule="SequentialLR([LinearLR(start_factor=0.05, end_factor=1.0, "
                                                   "total_iters=19), CosineAnnealingLR(T_max=180, eta_min=0)], "
                                                   "milestones=[20]), scheduler.step() after every optimizer.step()")),
]


class Runs(torch.nn.Module):
    def __init__(self, runs):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(runs, D, dtype=torch.float64))  # w_0 = 1, w* = 0


def ema_averaged_model(model, decay):
    try:
        from torch.optim.swa_utils import get_ema_multi_avg_fn  # torch >= 2.1
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    except ImportError:
        return AveragedModel(model, avg_fn=lambda a, m, n: a + (1.0 - decay) * (m - a))


def check_mse_factor():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, D, generator=g, dtype=torch.float64)
    y = torch.randn(BATCH, generator=g, dtype=torch.float64)
    w = torch.randn(D, generator=g, dtype=torch.float64, requires_grad=True)
    torch.nn.MSELoss()(x @ w, y).backward()
    g_mse = w.grad.clone()
    g_model = x.T @ (x @ w.detach() - y) / BATCH  # (1/B) sum_b x_b (x_b^T w - y_b)
    assert torch.allclose(g_mse, 2 * g_model, rtol=1e-14, atol=0), "MSELoss gradient is not 2 g"


def check_averaged_model_first_update():
    m = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        m.weight.fill_(1.0)
    avg = AveragedModel(m)
    with torch.no_grad():
        m.weight.fill_(5.0)
    avg.update_parameters(m)  # first update: a copy, not (1 + 5)/2
    assert torch.all(avg.module.weight == 5.0), "AveragedModel's first update is not a copy"
    with torch.no_grad():
        m.weight.fill_(7.0)
    avg.update_parameters(m)  # second: running mean of the updates (5 + 7)/2
    assert torch.all(avg.module.weight == 6.0), "AveragedModel's second update is not the mean"


def run_case(index, name, s, runs):
    torch.manual_seed(SEED + index)
    lam = torch.arange(1, D + 1, dtype=torch.float64) ** (-ALPHA)
    sqrt_lam = lam.sqrt()
    model = Runs(runs)
    opt = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                          dampening=s["dampening"], nesterov=s["nesterov"])
    sched = None
    if "schedule" in s:
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=s.get("warmup_start", 0.05), end_factor=1.0,
                                                 total_iters=s.get("warmup_iters", 20))
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS - 20, eta_min=0.0)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[20])
    avg = None
    if name == "sgd_swa_tail":
        avg = AveragedModel(model)  # deep copy holds w_0 until the first update
    elif name == "sgd_momentum_ema":
        avg = ema_averaged_model(model, 0.9)
        avg.update_parameters(model)  # once before training: a_0 = w_0 (a copy)

    def reported():
        return (avg.module.w if avg is not None else model.w).detach()

    rows, lrs = [], []

    def record(t):
        w = reported()
        loss = 0.5 * (w * w) @ lam  # 1/2 e^T H e per run, e = w - w* = w
        rows.append((t, loss.mean().item(), (loss.std(unbiased=True) / math.sqrt(runs)).item()))

    sigma = math.sqrt(s["sigma2"])
    record(0)
    for t in range(STEPS):
        x = torch.randn(runs, BATCH, D, dtype=torch.float64) * sqrt_lam
        y = torch.zeros(runs, BATCH, dtype=torch.float64)  # x^T w* with w* = 0
        if sigma > 0:
            y = y + sigma * torch.randn(runs, BATCH, dtype=torch.float64)
        opt.zero_grad(set_to_none=True)
        pred = torch.einsum("rbd,rd->rb", x, model.w)
        objective = 0.5 * ((pred - y) ** 2).sum() / BATCH  # summed over runs: rows never interact
        objective.backward()
        lrs.append((t, opt.param_groups[0]["lr"]))
        opt.step()
        if sched is not None:
            sched.step()
        if avg is not None:
            avg.update_parameters(model)
        if (t + 1) % EVERY == 0:
            record(t + 1)
    return rows, lrs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20000)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "torch"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    check_mse_factor()
    check_averaged_model_first_update()
    os.makedirs(a.out, exist_ok=True)
    meta = dict(torch_version=torch.__version__, python=platform.python_version(), runs=a.runs, d=D,
                spectrum=f"lambda_i = i^-{ALPHA}, i = 1..{D}", init="w_0 = 1, w* = 0 (e_0 = 1 in every direction)",
                covariates="x = sqrt(lambda) * N(0, I), float64", batch=BATCH, steps=STEPS, every=EVERY,
                loss="mean over runs of 1/2 sum_i lambda_i e_i^2 (no sigma2), stderr = std(ddof=1)/sqrt(R)",
                objective="sum over runs of (1/B) sum_b 1/2 (x^T w - y)^2", cases={})
    for i, (name, s) in enumerate(CASES):
        t0 = time.perf_counter()
        rows, lrs = run_case(i, name, s, a.runs)
        with open(os.path.join(a.out, name + ".csv"), "w") as f:
            f.write("step,loss,stderr\n")
            for t, m, se in rows:
                f.write(f"{t},{m:.17g},{se:.17g}\n")
        if "schedule" in s:
            with open(os.path.join(a.out, name + "_lr.csv"), "w") as f:
                f.write("step,lr\n")
                for t, lr in lrs:
                    f.write(f"{t},{lr:.17g}\n")
        meta["cases"][name] = dict(s, seed=SEED + i, optimizer="torch.optim.SGD", weight_decay=0.0)
        print(f"{name}: {time.perf_counter() - t0:.1f} s, final loss {rows[-1][1]:.6g} +- {rows[-1][2]:.2g}")
    with open(os.path.join(a.out, "settings.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
