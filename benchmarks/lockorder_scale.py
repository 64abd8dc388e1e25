"""The lock-order checker at scale: many locks, each nested with the next, with and without
``stuck.order_by``, against the same program without stuck, in the same run.

    python benchmarks/lockorder_scale.py [--locks N[,N...]]   (default 40000,1000000)

Each configuration runs in its own process (``python prog.py`` or ``stuck run --lock-order
prog.py``) and prints its time and peak RSS; the table shows the ratio to plain. Goal: the cost
per lock stays constant as the number of locks grows (``order_by`` used to cost O(n) per call
once the checker's caches had grown: 40,000 locks took 15.6 s and 1,000,000 did not finish),
and memory stays bounded (the checker's bounds are written to stderr when reached).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

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
                ratio = f"{res[0] / plain[0]:.1f}x" if plain else "?"
                print(f"{n:>9} {name:28} {res[0]:>9.2f} {res[1]:>8} {ratio:>9}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
