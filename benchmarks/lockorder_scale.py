"""The lock-order checker at scale: many locks, each nested with the next, with and without
``stuck.order_by``, against the same program without stuck, in the same run.

    python benchmarks/lockorder_scale.py [--locks N[,N...]] [--classes N[,N...]]
                                         (defaults 40000,1000000 and 50000,300000)

Each configuration runs in its own process (``python prog.py`` or ``stuck run --lock-order
prog.py``) and prints its time and peak RSS; the table shows the ratio to plain. Goal: the cost
per lock stays constant as the number of locks grows (``order_by`` used to cost O(n) per call
once the checker's caches had grown: 40,000 locks took 15.6 s and 1,000,000 did not finish),
and memory stays bounded (the checker's bounds are written to stderr when reached).

``--classes``: each lock of its own class (made by ``self.lock = Lock()`` in a class made per
lock, as code generated per request or plugin does), each nested with the next, then a
reversed pair of two new classes at the end. Past the checker's class bound (100,000) the
least recently used classes are forgotten: memory stays flat and the final reversed pair is
still found (``found`` column: the report names it), where it used to go unchecked.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent("""
    import resource, sys, threading, time
    n, keyed = int(sys.argv[1]), sys.argv[2] == "order_by"
    if keyed:
        import stuck
    t = time.perf_counter()
    prev = threading.Lock()
    if keyed:
        stuck.order_by(prev, 0)
    for i in range(1, n):
        lk = threading.Lock()
        if keyed:
            stuck.order_by(lk, i)
        with prev, lk:
            pass
        prev = lk
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"RESULT {time.perf_counter() - t:.3f} {rss}", file=sys.stderr)
""")


CLASSES_PROGRAM = textwrap.dedent("""
    import resource, sys, threading, time

    class Owner:
        def __init__(self):
            self.lock = threading.Lock()

    n = int(sys.argv[1])
    t = time.perf_counter()
    prev = Owner().lock
    for i in range(1, n):
        lk = type(f"Owner{i}", (Owner,), {})().lock  # a class of its own (its owner's class)
        with prev, lk:
            pass
        prev = lk
    x, y = type("LateX", (Owner,), {})().lock, type("LateY", (Owner,), {})().lock
    with x, y:
        pass
    with y, x:  # the reverse order, long after the bound was passed
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"RESULT {time.perf_counter() - t:.3f} {rss}", file=sys.stderr)
""")


def run(cmd: list[str], timeout: float) -> tuple[float, int] | None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    for line in done.stderr.splitlines():
        if line.startswith("RESULT "):
            _, secs, rss = line.split()
            return float(secs), int(rss)
    print(done.stderr[-2000:], file=sys.stderr)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--locks", default="40000,1000000")
    ap.add_argument("--classes", default="50000,300000")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prog = os.path.join(tmp, "chain.py")
        with open(prog, "w") as f:
            f.write(PROGRAM)
        stuck_run = [sys.executable, "-m", "stuck", "run", "--lock-order", prog]
        print(f"{'locks':>9} {'configuration':28} {'seconds':>9} {'peak MB':>8} {'vs plain':>9}")
        for n in (int(x) for x in args.locks.split(",")):
            plain = run([sys.executable, prog, str(n), "plain"], args.timeout)
            rows = [("plain (no stuck)", plain)]
            rows.append(("stuck --lock-order", run([*stuck_run, str(n), "plain"], args.timeout)))
            rows.append(("stuck --lock-order, order_by",
                         run([*stuck_run, str(n), "order_by"], args.timeout)))
            for name, res in rows:
                if res is None:
                    print(f"{n:>9} {name:28} {'timeout':>9}", flush=True)
                    continue
                ratio = f"{res[0] / plain[0]:.1f}x" if plain and plain[0] > 0 else "?"
                print(f"{n:>9} {name:28} {res[0]:>9.2f} {res[1]:>8} {ratio:>9}", flush=True)
        classes_prog = os.path.join(tmp, "classes.py")
        with open(classes_prog, "w") as f:
            f.write(CLASSES_PROGRAM)
        print(f"\n{'classes':>9} {'configuration':28} {'seconds':>9} {'peak MB':>8} "
              f"{'vs plain':>9} {'found':>6}")
        for n in (int(x) for x in args.classes.split(",") if x):
            plain = run([sys.executable, classes_prog, str(n)], args.timeout)
            report = os.path.join(tmp, f"classes-{n}.json")
            checked = run([sys.executable, "-m", "stuck", "run", "--lock-order", "--json",
                           report, classes_prog, str(n)], args.timeout)
            found = os.path.exists(report) and "LateX" in Path(report).read_text()
            for name, res, mark in (("plain (no stuck)", plain, ""),
                                    ("stuck --lock-order", checked, "yes" if found else "no")):
                if res is None:
                    print(f"{n:>9} {name:28} {'timeout':>9}", flush=True)
                    continue
                ratio = f"{res[0] / plain[0]:.1f}x" if plain and plain[0] > 0 else "?"
                print(f"{n:>9} {name:28} {res[0]:>9.2f} {res[1]:>8} {ratio:>9} {mark:>6}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
