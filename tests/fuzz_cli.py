#!/usr/bin/python3
"""Seeded fuzz test of the cesr command line (registered in CTest as fuzz_cli).

Generates command lines and input files for every command (loss, steps, rate,
stability, tune, frontier, window, simulate, check, methods): generated
spectra, initial moments, custom-method files and CSVs for check, with odd
numbers (0, negative, nan, inf, 1e308, 1e-320, 2^64, huge counts) and junk
sprinkled among ordinary values. Every case must

  - exit with 0, 1, 2, 3 or 5 (README: 4 is an internal failure, a signal a crash);
  - on exit 2 print exactly one line on stderr, nothing on stdout, and write no
    --output / --plot file (files are written atomically, nothing partial);
  - print no nan or inf in its output (stdout and the --output file), except a
    whole CSV field "nan", the documented null of the frontier and window CSVs;
  - use at most --timeout seconds of CPU time (ulimit -t: the machine is shared,
    so CPU time, not wall time, is what a case costs) and finish within 4 times
    that in wall time (a read that blocks); otherwise it is killed and fails.

The cases are a pure function of (seed, case number): `--case N` reruns one.
A failure prints the case number, the command line and the generated files.

Usage: fuzz_cli.py --cesr PATH [--seed S] [--cases N] [--timeout T] [--jobs J] [--case N] [-v]
"""
import argparse
import concurrent.futures
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ALLOWED_EXITS = {0, 1, 2, 3, 5}
NONFINITE = re.compile(r"(?<![A-Za-z_])[-+]?(nan|inf|infinity)(?![A-Za-z_])", re.IGNORECASE)
# A whole CSV field "nan" is the documented null of the frontier and window CSVs
# (numpy's genfromtxt and pandas read it as NaN); anything else non-finite fails.
CSV_NULL = re.compile(r"(?:(?<=^)|(?<=,))nan(?=,|$)", re.MULTILINE)

# Odd values for any numeric flag; ordinary values are drawn per flag.
ODD_NUMBERS = ["0", "-0", "-1", "nan", "NaN", "inf", "-inf", "1e308", "1e309", "1e-320", "4.9e-324", "1e-300",
               "18446744073709551615", "18446744073709551616", "9007199254740993", "1e3", "2.5", "+1", "0x10",
               "", "abc", "1,2", " 1", "1e", "--", "-1e-320"]
ODD_COUNTS = ["0", "-1", "1.5", "1e3", "1e20", "18446744073709551615", "18446744073709551616", "abc", "", "+3",
              "3e0", "nan"]
METHODS = ["sgd", "hb", "nag", "asgd", "torch-sgd", "qhm", "schedule-free", "lookahead", "custom"]


class Case:
    def __init__(self, number, rng, folder):
        self.number = number
        self.rng = rng
        self.folder = folder
        self.files = {}      # path -> bytes written (for the report)
        self.outputs = []    # --output / --plot paths
        self.args = []

    # -- small helpers -------------------------------------------------------
    def chance(self, p):
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(seq)

    def path(self, name):
        return os.path.join(self.folder, name)

    def write(self, name, data):
        p = self.path(name)
        if isinstance(data, str):
            data = data.encode()
        with open(p, "wb") as f:
            f.write(data)
        self.files[p] = data
        return p

    def number_value(self, lo, hi, log=True, odd=0.03):
        if self.chance(odd):
            return self.pick(ODD_NUMBERS)
        if log:
            v = 10 ** self.rng.uniform(lo, hi)
        else:
            v = self.rng.uniform(lo, hi)
        return self.pick(["{:.3g}", "{:.6g}", "{:.17g}"]).format(v)

    def count(self, lo, hi, odd=0.03):
        if self.chance(odd):
            return self.pick(ODD_COUNTS)
        return str(self.rng.randint(lo, hi))

    # -- generated inputs ----------------------------------------------------
    def number_lines(self, n, lo, hi):
        lines = ["{:.17g}".format(10 ** self.rng.uniform(lo, hi)) for _ in range(n)]
        if lines and self.chance(0.25):  # one odd line
            lines[self.rng.randrange(n)] = self.pick(["0", "-1", "nan", "inf", "1e308", "1e-320", "junk", "",
                                                      "+0.5", "1e400", "0.1 0.2", "# comment", "1,5", "1e-300"])
        return lines

    def text_file(self, name, lines):
        text = "\n".join(lines)
        if self.chance(0.3):
            text += "\n"
        if self.chance(0.1):
            text = text.replace("\n", "\r\n")
        data = text.encode()
        if self.chance(0.1):
            data = b"\xef\xbb\xbf" + data  # UTF-8 BOM
        return self.write(name, data)

    def special_path(self):
        kind = self.pick(["missing", "folder", "devzero", "fifo", "loop", "binary", "empty", "huge-line"])
        if kind == "missing":
            return self.path("does-not-exist.txt")
        if kind == "folder":
            os.makedirs(self.path("a-folder"), exist_ok=True)
            return self.path("a-folder")
        if kind == "devzero":
            return "/dev/zero"
        if kind == "fifo":
            p = self.path("fifo")
            if not os.path.exists(p):
                os.mkfifo(p)
            return p
        if kind == "loop":
            p = self.path("loop")
            if not os.path.lexists(p):
                os.symlink(p, p)
            return p
        if kind == "binary":
            return self.write("binary.dat", bytes(self.rng.randrange(256) for _ in range(4096)))
        if kind == "empty":
            return self.write("empty.txt", b"")
        return self.write("long-line.txt", b"1" * 200000 + b"\n")

    def spectrum(self, dmax=40):
        r = self.rng.random()
        if r < 0.03:
            return self.pick(["", "powerlaw", "powerlaw:d=", "loguniform:d=10", "loguniform:kappa=10",
                              "powerlaw:d=10,alpha=1,alpha=2", "gauss:d=3", "powerlaw:d=10,alpha=1,beta=2",
                              "file:", "powerlaw:d=1e1,alpha=1", "loguniform:d=5,kappa=0.5",
                              "powerlaw:d=20000000000,alpha=1", "powerlaw:d=18446744073709551615,alpha=1"])
        if r < 0.2:
            if self.chance(0.15):
                return "file:" + self.special_path()
            n = self.rng.randint(1, dmax) if not self.chance(0.05) else 0
            return "file:" + self.text_file("spectrum.txt", self.number_lines(n, -4, 0))
        d = self.count(1, dmax, odd=0.05)
        extra = ""
        if self.chance(0.1):
            extra = ",scale=" + self.number_value(-200, 200, odd=0.2)
        if self.chance(0.5):
            return "powerlaw:d={},alpha={}{}".format(d, self.number_value(-0.5, 0.5, odd=0.1), extra)
        return "loguniform:d={},kappa={}{}".format(d, self.number_value(0, 12, odd=0.1), extra)

    def init(self):
        r = self.rng.random()
        if r < 0.75:
            return None
        if r < 0.95:
            return "powerlaw:beta=" + self.number_value(-1, 0.5, odd=0.15)
        if r < 0.97:
            return self.pick(["isotropic", "isotropic", "uniform", "powerlaw", "file:", "powerlaw:beta="])
        if self.chance(0.2):
            return "file:" + self.special_path()
        return "file:" + self.text_file("init.txt", self.number_lines(self.rng.randint(0, 40), -3, 1))

    def method_file(self):
        r = self.rng.random()
        if r < 0.1:
            return self.special_path()
        if r < 0.2:
            return self.write("method.json", self.pick(["", "{", "[]", "null", '{"P": 1}', '{"P": [[1]]}',
                                                         '{"P": [[1]], "q": [0.1], "r": [1], "o": [1], "s0": [1], "x": 2}',
                                                         '{"P": [["a"]], "q": [0.1], "r": [1], "o": [1], "s0": [1]}']))
        k = self.rng.randint(1, 5) if not self.chance(0.05) else self.pick([0, 6, 50])

        def num():
            if self.chance(0.03):
                return self.pick(["NaN", "1e400", '"x"', "null", "-1e308", "1e-320"])
            return "{:.6g}".format(self.rng.uniform(-1.2, 1.2))

        def vec(n):
            return "[" + ", ".join(num() for _ in range(n)) + "]"

        rows = max(k, 0)
        P = "[" + ", ".join(vec(rows) for _ in range(rows)) + "]"
        lr = "{:.4g}".format(10 ** self.rng.uniform(-3, 0))
        q = "[" + ", ".join([lr] + ["{:.4g}".format(self.rng.uniform(0, 0.1)) for _ in range(rows - 1)]) + "]" \
            if rows else "[]"
        parts = ['"P": ' + P, '"q": ' + q, '"r": ' + vec(rows), '"o": ' + vec(rows), '"s0": ' + vec(rows)]
        if self.chance(0.1):
            parts.pop(self.rng.randrange(len(parts)))
        return self.write("method.json", "{" + ", ".join(parts) + "}")

    def method_flags(self, allow_lr=True, tune=False):
        m = self.pick(METHODS) if not self.chance(0.03) else self.pick(["", "SGD", "adam", "sgd,hb", "Hb"])
        args = ["--method", m]
        # Which hyperparameters to give: mostly the ones the method takes.
        wants = {
            "sgd": ["lr"], "hb": ["lr", "momentum"], "nag": ["lr", "momentum"],
            "asgd": ["lr", "kappa", "xi", "small-const"], "torch-sgd": ["lr", "momentum", "dampening", "nesterov"],
            "qhm": ["lr", "momentum", "nu"], "schedule-free": ["lr", "momentum"],
            "lookahead": ["lr", "sync", "slow-step", "inner", "momentum"], "custom": ["method-file"],
        }.get(m, ["lr"])
        for name in wants:
            if name == "lr" and not allow_lr:
                continue
            if tune and name in ("lr", "momentum", "kappa", "xi", "nu", "slow-step") and self.chance(0.7):
                continue  # tuned
            if name in ("small-const", "dampening", "sync", "slow-step", "inner") and self.chance(0.5):
                continue  # defaults
            if self.chance(0.05):
                continue  # a required one missing
            args += self.hyper(name)
        if self.chance(0.05):
            args += self.hyper(self.pick(["lr", "momentum", "nu", "kappa", "sync", "method-file"]))
        if self.chance(0.08):
            args += ["--average", self.pick(["ema:decay=0.9", "polyak", "tail:start=10", "ema:decay=1",
                                             "ema:decay=nan", "tail:start=-1", "tail", "median"])]
        return args

    def hyper(self, name):
        if name == "lr":
            return ["--lr", self.number_value(-3, 0.3)]
        if name == "momentum":
            v = 1 - 10 ** self.rng.uniform(-4, 0) if not self.chance(0.08) else self.pick(ODD_NUMBERS + ["1", "0.9999999999"])
            return ["--momentum", v if isinstance(v, str) else "{:.10g}".format(v)]
        if name == "kappa":
            return ["--kappa", self.number_value(0, 4)]
        if name == "xi":
            return ["--xi", self.number_value(-1, 2)]
        if name == "small-const":
            return ["--small-const", self.number_value(-8, 0)]
        if name == "dampening":
            return ["--dampening", self.number_value(0, 1, log=False)]
        if name == "nesterov":
            return ["--nesterov"] if self.chance(0.5) else []
        if name == "nu":
            return ["--nu", self.number_value(0, 1, log=False)]
        if name == "sync":
            return ["--sync", self.count(1, 10)]
        if name == "slow-step":
            return ["--slow-step", self.number_value(0.01, 1, log=False)]
        if name == "inner":
            return ["--inner", self.pick(["sgd", "torch-sgd", "hb"])]
        if name == "method-file":
            return ["--method-file", self.method_file()]
        return []

    def problem_flags(self, dmax=40, default_ok=True):
        args = []
        if not default_ok or self.chance(0.9):
            args += ["--spectrum", self.spectrum(dmax)]
        i = self.init()
        if i is not None:
            args += ["--init", i]
        if self.chance(0.2):
            args += ["--kurtosis", self.number_value(0, 1)]
        if self.chance(0.2):
            args += ["--noise", self.number_value(-4, 0)]
        return args

    def batch_flag(self, bmax=4096):
        return ["--batch", self.count(1, bmax)] if self.chance(0.8) else []

    def schedules(self, steps_known=True):
        args = []
        if self.chance(0.15):
            args += ["--lr-schedule", self.pick(["cosine:warmup=10%", "cosine:steps=100", "constant", "linear",
                                                 "cosine:warmup=200%", "step:every=10,factor=0.5", "cosine:steps=0",
                                                 "wsd:warmup=5%,decay=20%", "junk", "cosine:warmup=-1"])]
        if self.chance(0.08):
            args += ["--batch-schedule", self.pick(["ramp:start=4,every=10,max=64", "constant", "ramp:start=0",
                                                    "ramp:start=1,every=0,max=2", "file"])]
        if self.chance(0.05):
            args += ["--momentum-schedule", self.pick(["constant", "cosine:steps=10", "junk"])]
        return args

    def output_flag(self, formats):
        args = []
        if self.chance(0.3):
            args += ["--format", self.pick(formats * 4 + ["JSON", "xml", ""])]
        if self.chance(0.15):
            target = self.pick(["out.txt", "out.txt", "out.txt", "missing-folder/out.txt", "/dev/null", "/dev/full",
                                "a-folder"])
            if target == "a-folder":
                os.makedirs(self.path("a-folder"), exist_ok=True)
            p = target if target.startswith("/dev/") else self.path(target)
            if not target.startswith("/dev/") and target != "a-folder":
                self.outputs.append(p)
            args += ["--output", p]
        return args

    def plot_flag(self):
        if self.chance(0.1):
            p = self.path(self.pick(["fig.svg", "fig.tex", "fig.png"]))
            self.outputs.append(p)
            return ["--plot", p]
        return []

    def check_csv(self):
        if self.chance(0.05):
            return self.special_path()
        header = self.pick(["step,loss", "step,loss,stderr", "step,loss,stderr,extra", "loss,step", "step,loss",
                            "step,loss,stderr"]) if not self.chance(0.05) else self.pick(["", "a,b", "step;loss",
                                                                                          "step"])
        cols = header.split(",")
        lines = [header]
        step, loss = 0, 1.0
        for _ in range(self.rng.randint(0, 30)):
            vals = []
            for c in cols:
                if c == "step":
                    vals.append(str(step) if not self.chance(0.01) else self.pick(
                        ["-1", "1.5", "9007199254740992", "9007199254740993", "1000000000", "18446744073709551616",
                         "nan", "x", ""]))
                elif c == "loss":
                    vals.append("{:.17g}".format(loss) if not self.chance(0.01) else self.pick(
                        ["nan", "inf", "-1", "0", "1e308", "1e-320", "", "x"]))
                elif c == "stderr":
                    vals.append("{:.3g}".format(loss * self.rng.uniform(0, 0.05)) if not self.chance(0.02) else
                                self.pick(["0", "-1", "nan", "3.8e-17", "1e308", ""]))
                else:
                    vals.append("7")
            lines.append(",".join(vals))
            step += self.rng.randint(1, 50)
            loss *= self.rng.uniform(0.5, 1.01)
        return self.text_file("run.csv", lines)

    # -- one command ---------------------------------------------------------
    def build(self):
        cmd = self.pick(["loss", "loss", "steps", "rate", "rate", "stability", "tune", "frontier", "window",
                         "simulate", "check", "methods"])
        a = [cmd]
        if cmd == "loss":
            a += self.problem_flags() + self.method_flags() + self.batch_flag() + self.schedules()
            a += ["--steps", self.count(0, 2000)]
            if self.chance(0.5):
                a += ["--every", self.count(1, 500)]
            if self.chance(0.1):
                a += ["--precision", self.pick(["double", "long", "quad", "mp50", "auto", "float"])]
            if self.chance(0.1):
                a += ["--compare", self.pick(["hb:lr=0.1,momentum=0.9", "sgd:lr=0.5", "nag:lr=nan", "foo:lr=1",
                                              "sgd", "sgd:lr=0.1,lr=0.2"])]
            if self.chance(0.08):
                a += ["--compare-batches", self.pick(["1,4,16", "4,4", "0,1", "1:8:x2", "", "1e3"])]
            if self.chance(0.1):
                a += ["--digits", self.count(1, 17)]
            a += self.output_flag(["csv", "json", "table", "markdown", "latex", "pgfplots"]) + self.plot_flag()
        elif cmd == "steps":
            a += self.problem_flags() + self.method_flags() + self.batch_flag() + self.schedules()
            a += ["--target", self.number_value(-8, 0)]
            if self.chance(0.6):
                a += ["--relative"]
            a += ["--max-steps", self.count(1, 200000)]
            a += self.output_flag([])
        elif cmd in ("rate", "stability"):
            a += self.problem_flags() + self.method_flags(allow_lr=(cmd == "rate")) + self.batch_flag()
            if self.chance(0.15):
                a += ["--precision", self.pick(["auto", "double", "long", "quad", "mp50", "single"])]
            if self.chance(0.1):
                # rate refuses --rtol below 1e-32 (exit 2 naming --rtol)
                a += ["--rtol", self.number_value(-40 if cmd == "rate" else -20, -1)]
            a += self.output_flag(["json", "table"])
        elif cmd == "tune":
            a += self.problem_flags(dmax=20) + self.method_flags(tune=True) + self.batch_flag()
            if self.chance(0.3):
                obj = self.pick(["rate", "steps", "final", "loss"])
                a += ["--objective", obj]
                if obj == "steps":
                    a += ["--target", self.number_value(-6, -1), "--max-steps", self.count(1, 20000)]
                    if self.chance(0.5):
                        a += ["--relative"]
                if obj == "final":
                    a += ["--steps", self.count(1, 300)]
            if self.chance(0.08):
                a += ["--search", self.pick(["lr=1e-3:1", "momentum=0:0.99", "xi=1:1e4", "lr=1:0", "foo=1:2",
                                             "lr=nan:1"])]
            a += self.output_flag(["json", "table"])
        elif cmd == "frontier":
            a += self.problem_flags(dmax=15)
            if "--spectrum" not in a:
                a += ["--spectrum", "powerlaw:d=10,alpha=1.5"]
            a += ["--methods", self.pick(["sgd", "hb", "sgd,hb", "asgd", "nag,sgd", "torch-sgd", "qhm",
                                          "schedule-free", "lookahead", "sgd,hb,asgd"] * 3 +
                                         ["sgd,sgd", "custom", "", "sgd,foo"])]
            a += ["--batches", self.pick(["1,4", "1:16:x4", "4,4", "1:2:x1.0000000000000002", "0", "1:1e3:x10",
                                          "8:1:x2", "18446744073709551615", "1:18446744073709551615:x4096",
                                          "1.5", "16"])]
            if self.chance(0.25):
                obj = self.pick(["rate", "steps", "final"])
                a += ["--objective", obj]
                if obj == "final":
                    a += ["--samples", self.pick(["1000", "1e3", "0", "-5", "1e30", "abc", "500"])]
                if obj == "steps":
                    a += ["--target", self.number_value(-4, -1), "--max-steps", self.count(1, 5000)]
            a += ["--threads", self.pick(["1", "2"])]
            if self.chance(0.1):
                a += ["--digits", self.pick(["0", "1", "3", "17", "18", "-1", "30"])]
            a += self.output_flag(["table", "csv", "json", "markdown", "latex", "pgfplots"]) + self.plot_flag()
        elif cmd == "window":
            a += ["--kappas", self.pick(["1e2", "1e2,1e3", "0", "1", "-1", "nan", "1e2,1e2", "", "1e400", "abc",
                                         "10"])]
            a += ["--d", self.pick(["10", "20", "5", "1", "2", "1e1", "0", "-3", "abc"])]
            a += ["--threads", self.pick(["1", "2"])]
            a += self.output_flag(["table", "csv", "json", "markdown", "latex"])
        elif cmd == "simulate":
            a += self.problem_flags(dmax=20, default_ok=False) + self.method_flags() + self.batch_flag(64)
            a += ["--steps", self.count(0, 200) if not self.chance(0.05) else self.pick(["1e9", "1e12"])]
            a += ["--runs", self.count(2, 50) if not self.chance(0.05) else
                  self.pick(["18446744073709551615", "1", "0", "1e15"])]
            a += ["--seed", self.count(0, 10 ** 6)]
            if self.chance(0.5):
                a += ["--every", self.count(1, 50)]
            if self.chance(0.15):
                a += ["--covariates", self.pick(["gaussian", "rademacher", "uniform", "cauchy"])]
            a += ["--threads", self.pick(["1", "2"])]
            a += self.output_flag(["csv", "json", "table", "pgfplots"]) + self.plot_flag()
        elif cmd == "check":
            a += ["--input", self.check_csv()]
            a += self.problem_flags(dmax=20, default_ok=False) + self.method_flags() + self.batch_flag()
            if self.chance(0.15):
                a += ["--rtol", self.number_value(-4, 0)]
            if self.chance(0.1):
                a += ["--alpha", self.number_value(-6, 0)]
            if self.chance(0.1):
                a += ["--zmax", self.number_value(-1, 2)]
            a += self.output_flag(["csv", "json", "table"])
        else:
            a += self.output_flag(["table", "json"])
        if self.chance(0.03):
            a += [self.pick(["--bogus", "--lr", "--steps", "-x", "extra-positional", "--spectrum="])]
        self.args = a
        return a


def run_case(cesr, seed, number, timeout, keep):
    folder = tempfile.mkdtemp(prefix="cesr_fuzz_{}_".format(number))
    try:
        rng = random.Random(seed * 1_000_003 + number)
        case = Case(number, rng, folder)
        args = case.build()
        started = time.monotonic()
        cpu = max(1, int(round(timeout)))
        proc = subprocess.Popen(["/bin/sh", "-c", 'ulimit -t {}; exec "$0" "$@"'.format(cpu), cesr] + args,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=folder, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=4 * timeout)
            timed_out = proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            timed_out = True
        elapsed = time.monotonic() - started
        problems = []
        code = proc.returncode
        text_out = out.decode("utf-8", "replace")
        text_err = err.decode("utf-8", "replace")
        if timed_out:
            problems.append("used more than {} s of CPU or {} s of wall time (killed)".format(cpu, 4 * timeout))
        elif code not in ALLOWED_EXITS:
            problems.append("exit {} (allowed: 0, 1, 2, 3, 5)".format(code if code >= 0 else "signal %d" % -code))
        if not timed_out and code == 2:
            lines = text_err.splitlines()
            if len(lines) != 1 or not lines[0].strip():
                problems.append("exit 2 with {} stderr lines (one expected)".format(len(lines)))
            if out:
                problems.append("exit 2 but {} bytes on stdout".format(len(out)))
            for p in case.outputs:
                if os.path.lexists(p):
                    problems.append("exit 2 but {} was written".format(os.path.basename(p)))
        outputs = [("stdout", text_out)]
        for p in case.outputs:
            if os.path.isfile(p) and not p.endswith((".svg", ".tex", ".png")):
                with open(p, "rb") as f:
                    outputs.append((os.path.basename(p), f.read(1 << 22).decode("utf-8", "replace")))
        if not timed_out and code in (0, 1, 3):
            for name, text in outputs:
                m = NONFINITE.search(CSV_NULL.sub("", text))
                if m:
                    shown = CSV_NULL.sub("", text)
                    line = shown[:m.start()].count("\n")
                    problems.append("'{}' in {} line {}: {}".format(m.group(0), name, line + 1,
                                                                   text.splitlines()[line][:200]))
        report = None
        if problems:
            lines = ["case {} (rerun: fuzz_cli.py --cesr {} --seed {} --case {}):".format(
                number, shlex.quote(cesr), seed, number),
                "  $ cd {} && cesr {}".format(folder, " ".join(shlex.quote(x) for x in args))]
            lines += ["  " + p for p in problems]
            lines.append("  exit {}, {:.2f} s; stderr: {}".format(code, elapsed, text_err.strip()[:600]))
            if text_out:
                lines.append("  stdout (start): " + text_out[:300].replace("\n", "\\n"))
            for p, data in case.files.items():
                shown = data[:400]
                lines.append("  file {} ({} bytes): {!r}{}".format(os.path.basename(p), len(data), shown,
                                                                  "..." if len(data) > 400 else ""))
            report = "\n".join(lines)
        return number, args[0], code, elapsed, report
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cesr", required=True)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=10.0, help="CPU seconds per case (wall: 4 times that)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--case", type=int, default=None, help="run only this case")
    ap.add_argument("--keep", action="store_true", help="keep the case folders")
    ap.add_argument("-v", "--verbose", action="store_true")
    o = ap.parse_args()
    cesr = os.path.abspath(o.cesr)
    if not os.access(cesr, os.X_OK):
        print("fuzz_cli: no cesr binary at " + cesr, file=sys.stderr)
        return 2
    numbers = [o.case] if o.case is not None else list(range(o.cases))
    started = time.monotonic()
    failures, codes, slowest = [], {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, o.jobs)) as pool:
        futures = [pool.submit(run_case, cesr, o.seed, n, o.timeout, o.keep or o.case is not None) for n in numbers]
        for fut in concurrent.futures.as_completed(futures):
            number, cmd, code, elapsed, report = fut.result()
            codes[code] = codes.get(code, 0) + 1
            slowest.append((elapsed, number, cmd))
            if report:
                failures.append((number, report))
            if o.verbose:
                print("case {:4d} {:10s} exit {} {:.2f} s".format(number, cmd, code, elapsed))
    for _, report in sorted(failures):
        print(report)
    slowest.sort(reverse=True)
    total = time.monotonic() - started
    print("fuzz_cli: seed {}, {} cases in {:.1f} s, exits {}, slowest {}; {} failed".format(
        o.seed, len(numbers), total, dict(sorted(codes.items())),
        ", ".join("#{} {} {:.1f} s".format(n, c, e) for e, n, c in slowest[:3]), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
