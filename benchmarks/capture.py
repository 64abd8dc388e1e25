"""Time of ``stuck capture`` on one process with many threads (goal: 1,000 threads in 10 s).

Builds ``tests/capture/programs/many_threads.c`` (half its threads wait on a condition
variable nobody signals, half in a read of a pipe only they could write: one stall is the
right verdict, and the finding count is printed for each run), starts it, and times the whole capture (the two /proc
readings, gdb's backtraces and mutex words, the report) several times, then the /proc readings
alone as the baseline measured in the same run. Prints the best and slowest of each, the
ratio of the whole capture to the /proc baseline and to the goal, and the load average before
and after: on a shared machine the spread says how far to trust a figure. The target process
is killed at the end. Run: ``python benchmarks/capture.py [--threads N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stuck.capture import collect, report

GOAL_SECONDS = 10.0
SOURCE = Path(__file__).resolve().parent.parent / "tests" / "capture" / "programs" / "many_threads.c"


def _timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("gcc") is None:
        sys.exit("gcc is needed to build the target")
    work = Path(tempfile.mkdtemp(prefix="stuck-bench-capture-"))
    exe = work / "many_threads"
    subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", str(exe), str(SOURCE)], check=True)
    target = subprocess.Popen([str(exe), str(args.threads)], stdout=subprocess.PIPE,
                              start_new_session=True)
    try:
        assert target.stdout is not None
        pid = int(target.stdout.readline())
        while len(os.listdir(f"/proc/{pid}/task")) < args.threads + 1:
            time.sleep(0.05)
        time.sleep(0.5)
        print(f"target: pid {pid}, {len(os.listdir(f'/proc/{pid}/task'))} threads; "
              f"load average before: {os.getloadavg()[0]:.2f}")
        findings: list[int] = []
        whole = _timed(lambda: findings.append(len(report(collect([pid])).findings)),
                       args.repeat)
        proc_only = _timed(lambda: report(collect([pid], runtime_views=False)), args.repeat)
        print(f"whole capture (with gdb): best {min(whole):.2f} s, slowest {max(whole):.2f} s; "
              f"findings each time: {findings}")
        print(f"/proc readings only:      best {min(proc_only):.2f} s, slowest "
              f"{max(proc_only):.2f} s")
        print(f"whole / /proc only: {min(whole) / min(proc_only):.1f}x; "
              f"whole / goal ({GOAL_SECONDS:.0f} s): {min(whole) / GOAL_SECONDS:.2f} "
              f"({'within' if max(whole) <= GOAL_SECONDS else 'OVER'} the goal at its slowest)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        os.killpg(target.pid, signal.SIGKILL)
        target.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
