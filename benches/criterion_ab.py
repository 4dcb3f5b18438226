#!/usr/bin/env python3
"""Two builds of the kernels' criterion bench, alternated round by round (A B, B A, …),
so that a host whose speed drifts by 10–20 % within minutes (every VM this project has
run on) affects both alike: a `--baseline` comparison minutes apart cannot tell a 10 %
change from drift there.

Build each side's bench binary first (`cargo bench -p teacher-kernels --bench kernels
--no-run` prints its path; copy it away before building the other side), then:

  python3 benches/criterion_ab.py A_BENCH B_BENCH FILTER [ROUNDS]

FILTER is criterion's (a regular expression over bench names); ROUNDS defaults to 6.
Prints, per bench, the median of each side's per-round estimates (µs), B/A, and every
round's figure.
"""
import re, statistics, subprocess, sys
from collections import defaultdict

UNITS = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def run(binary, filt):
    """One short criterion run: {bench name: point estimate in µs}."""
    out = subprocess.run(
        [binary, "--bench", "--warm-up-time", "1", "--measurement-time", "2", "--noplot", filt],
        capture_output=True, text=True, check=True,
    ).stdout
    got, name = {}, None
    for line in out.splitlines():
        # A bench's name starts a line; its `time:` follows on the same line or the next.
        m = re.match(r"^(\S+/\S+)", line)
        if m:
            name = m.group(1)
        t = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+)", line)
        if t and name:
            got[name] = float(t.group(1)) * UNITS[t.group(2)]
            name = None
    return got


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    a, b, filt = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    times = defaultdict(lambda: {"A": [], "B": []})
    for r in range(rounds):
        order = (("A", a), ("B", b)) if r % 2 == 0 else (("B", b), ("A", a))
        for side, binary in order:
            for name, t in run(binary, filt).items():
                times[name][side].append(t)
    for name, t in times.items():
        ma, mb = statistics.median(t["A"]), statistics.median(t["B"])
        fmt = lambda xs: " ".join(f"{x:.1f}" for x in xs)
        print(f"{name}: A {ma:.2f} µs, B {mb:.2f} µs, B/A {mb / ma:.3f}  (A: {fmt(t['A'])}; B: {fmt(t['B'])})")


if __name__ == "__main__":
    main()
