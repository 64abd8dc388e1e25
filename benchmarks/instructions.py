"""What the live instrumentation costs, in instructions: the single-threaded workloads of
``overhead.py`` counted under valgrind, which a loaded machine does not disturb.

    python benchmarks/instructions.py [--ops N] [--workloads lock,rlock,...] [--jobs J]
                                      [--against SRC ...]

Each workload runs in a fresh interpreter under ``valgrind --tool=cachegrind``, once with 0
and once with N operations (after a short warm-up, so the interpreter's specialisation is
done); the difference over N is the instructions per operation, the start-up and the install
cancelling out. Plain (no stuck) and ``live`` (``stuck.install()`` without the watchdog
thread) are counted for this checkout's ``src`` and for every ``--against`` source directory
(another commit's ``src``: ``git archive COMMIT src | tar -x -C /tmp/base``), so a change can
be judged on a machine that five people share, where wall-clock ratios move by 2x between runs.
Counts are not times (a cache miss costs more than an add), but for Python code paths that
differ by a few bytecodes they are the steadier measure. The pool workload is left out: its
cost is in how the threads hand the GIL to each other, which valgrind serialises.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WORKLOADS = {"lock": "lock_with", "rlock": "rlock_with", "nested": "nested_two_locks",
             "queue": "queue_put_get", "alock": "asyncio_lock_with"}

# Run inside valgrind: python -c PROGRAM WORKLOAD CONFIG OPS
PROGRAM = """
import sys
sys.path.insert(0, {bench!r})
import overhead
run = getattr(overhead, sys.argv[1])
if sys.argv[2] == "live":
    overhead._install_live_without_watchdog()
run(1000)
run(int(sys.argv[3]))
"""


def count(src: Path, workload: str, config: str, ops: int) -> int:
    """Instructions valgrind counts for one run."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, "-c", PROGRAM.format(bench=str(HERE)), WORKLOADS[workload], config,
         str(ops)], capture_output=True, text=True, env=env, check=False)
    m = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"{workload} {config} ({src}) failed:\n{proc.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200_000)
    parser.add_argument("--workloads", default="lock,rlock,nested")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--against", action="append", default=[], type=Path,
                        help="another checkout's src directory, counted the same way")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count (apt-get install valgrind)")
        return 2
    workloads = args.workloads.split(",")
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    sources = [SRC, *args.against]
    runs = [(SRC, w, "plain", n) for w in workloads for n in (0, args.ops)]
    runs += [(s, w, "live", n) for s in sources for w in workloads for n in (0, args.ops)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        counted = dict(zip(runs, pool.map(lambda r: count(*r), runs), strict=True))

    def per_op(src: Path, w: str, config: str) -> float:
        return (counted[(src, w, config, args.ops)] - counted[(src, w, config, 0)]) / args.ops

    print("sources: " + ", ".join(f"{i}: {s}" for i, s in enumerate(sources)))
    print(f"{'workload':9} {'plain':>8}  " + "  ".join(f"{f'live ({i})':>24}"
                                                       for i in range(len(sources))))
    for w in workloads:
        plain = per_op(SRC, w, "plain")
        cells = [f"{per_op(s, w, 'live'):>8.0f} instr/op {per_op(s, w, 'live') / plain:5.2f}x"
                 for s in sources]
        print(f"{w:9} {plain:>8.0f}  " + "  ".join(f"{c:>24}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
