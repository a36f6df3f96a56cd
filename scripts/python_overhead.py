#!/usr/bin/env python3
"""Python overhead against the CLI: a d = 1e6 rate and the default frontier.

Run with .venv/bin/python scripts/python_overhead.py from the repository root
(after scripts/setup.sh). Prints CPU and wall seconds, best of a few runs; CPU
time is the comparison that survives other work on the machine.
"""
import resource
import subprocess
import time

import cesr


def cli_run(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), time.perf_counter() - wall


def python_run(f):
    cpu, wall = time.process_time(), time.perf_counter()
    f()
    return time.process_time() - cpu, time.perf_counter() - wall


def best(run, n):
    return min((run() for _ in range(n)), key=lambda x: x[0])


hb = cesr.method("hb", lr=0.1, momentum=0.9)
rate_cli = best(lambda: cli_run(["build/cesr", "rate", "--spectrum", "powerlaw:d=1000000,alpha=1", "--method", "hb",
                                 "--lr", "0.1", "--momentum", "0.9", "--batch", "8"]), 5)
rate_py = best(lambda: python_run(lambda: cesr.rate(cesr.Spectrum.powerlaw(d=1_000_000, alpha=1), hb, batch=8)), 5)
problems = ["loguniform:d=1000,kappa=1e4", "powerlaw:d=1000,alpha=2", "powerlaw:d=1000,alpha=0.5"]
front_cli = best(lambda: cli_run(["build/cesr", "frontier"]), 3)
front_py = best(lambda: python_run(lambda: [cesr.frontier(p) for p in problems]), 3)
for name, c, p in [("rate, d = 1e6 (spectrum + rate)", rate_cli, rate_py),
                   ("default frontier (3 problems)", front_cli, front_py)]:
    print(f"{name:34s} CLI {c[0]:6.3f} s CPU {c[1]:6.3f} s wall | Python {p[0]:6.3f} s CPU {p[1]:6.3f} s wall "
          f"| CPU ratio {p[0] / c[0]:.3f}")
