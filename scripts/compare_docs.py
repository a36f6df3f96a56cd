#!/usr/bin/python3
"""Compares two docs trees as scripts/regen_docs.sh --check does.

Usage: compare_docs.py [--rtol R] [--atol A] EXPECTED_DIR ACTUAL_DIR

Every file must exist in both trees. Two files agree when, split into numbers
and the text between them, the text is identical up to the length of runs of
blanks (a table's column widths follow the widest number) and each pair of
numbers a, b agrees to

    |a - b| <= max(R * max(|a|, |b|), A, u(a), u(b))

with R the relative tolerance (--rtol, default 1e-9), A = 1e-12 (--atol: a
number that small in the docs is rounding noise, such as the relative error of
a row that matches to the last bit; no page shows a meaningful number below
it) and u(x) one unit in the last digit x is printed with (a number shown to 3
digits can round either way when its 16th digit moves; 0 for an integer, which
is a count and compared exactly). So the last bits of a
double, which differ between the portable and the -march=native build (fused
multiply-adds, vector reductions, and a tuner that stops a few ulps
elsewhere), do not matter, while any change in a shown digit beyond rounding
does.

Prints a unified diff of the first files that disagree (at most 80 lines) to
stderr and exits 1; exits 0 when everything agrees, 2 on a usage error.
"""
import difflib
import math
import os
import re
import sys

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|nan)\b")


def tokens(text):
    """The text split into alternating [text, number, text, number, ..., text]."""
    out, last = [], 0
    for m in NUMBER.finditer(text):
        out.append(text[last:m.start()])
        out.append(m.group(0))
        last = m.end()
    out.append(text[last:])
    return out


BLANKS = re.compile(r"[ \t]+")


def last_digit_unit(text):
    """One unit in the last printed digit: 6.66e-04 -> 1e-06, 0.25 -> 0.01; 0 for an
    integer (2000: a count such as steps or a batch size is exact, not rounded)."""
    m = re.fullmatch(r"[-+]?(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?", text)
    if not m or (m.group(2) is None and m.group(3) is None):
        return 0.0
    decimals = len(m.group(2) or "")
    exponent = int(m.group(3) or 0)
    return 10.0 ** (exponent - decimals)


def numbers_agree(a, b, rtol, atol):
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
        return x == y
    bound = max(rtol * max(abs(x), abs(y)), atol, last_digit_unit(a), last_digit_unit(b))
    return abs(x - y) <= bound + 4 * sys.float_info.epsilon * max(abs(x), abs(y))  # + the subtraction's rounding


def texts_agree(a, b, rtol, atol):
    if a == b:
        return True
    ta, tb = tokens(a), tokens(b)
    if len(ta) != len(tb):
        return False
    for i, (u, v) in enumerate(zip(ta, tb)):
        if i % 2 == 0:
            if u != v and BLANKS.sub(" ", u) != BLANKS.sub(" ", v):
                return False
        elif not numbers_agree(u, v, rtol, atol):
            return False
    return True


def files(root):
    out = set()
    for folder, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(folder, n), root))
    return out


def main(argv):
    tol = {"--rtol": 1e-9, "--atol": 1e-12}
    args = list(argv)
    while len(args) >= 2 and args[0] in tol:
        try:
            tol[args[0]] = float(args[1])
        except ValueError:
            print(f"compare_docs: {args[0]} must be a number, got '{args[1]}'", file=sys.stderr)
            return 2
        args = args[2:]
    rtol, atol = tol["--rtol"], tol["--atol"]
    if len(args) != 2 or not all(os.path.isdir(a) for a in args):
        print("compare_docs: usage: compare_docs.py [--rtol R] [--atol A] EXPECTED_DIR ACTUAL_DIR", file=sys.stderr)
        return 2
    expected, actual = args
    fe, fa = files(expected), files(actual)
    report = []
    for name in sorted(fe - fa):
        report.append(f"only in docs/: {name} (no command makes it)\n")
    for name in sorted(fa - fe):
        report.append(f"not in docs/: {name} (a command makes it)\n")
    for name in sorted(fe & fa):
        with open(os.path.join(expected, name), "rb") as f:
            a = f.read()
        with open(os.path.join(actual, name), "rb") as f:
            b = f.read()
        if a == b:
            continue
        ta, tb = a.decode("utf-8", "replace"), b.decode("utf-8", "replace")
        if texts_agree(ta, tb, rtol, atol):
            continue
        # Show only the lines that really differ (not those within the tolerance).
        la, lb = ta.splitlines(keepends=True), tb.splitlines(keepends=True)
        if len(la) == len(lb):
            pairs = [(u, v) for u, v in zip(la, lb) if not texts_agree(u, v, rtol, atol)]
            la, lb = [u for u, _ in pairs], [v for _, v in pairs]
        report.extend(difflib.unified_diff(la, lb, "docs/" + name, "regenerated/" + name, n=0))
    if report:
        lines = "".join(report).splitlines(keepends=True)
        sys.stderr.write("".join(lines[:80]))
        if len(lines) > 80:
            sys.stderr.write(f"... ({len(lines) - 80} more lines)\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
