"""The busy-program stress test in full: correct programs must never get a finding.

    python benchmarks/busy.py [--runs N] [--workloads queue,pingpong,...] [--quick]

Runs each workload of ``tests/stall/programs/busy.py`` (a queue of one slot passing 300,000
items, a 200,000-round Condition ping-pong, 50 ping-pong pairs, a Lock opened by a sleeping
thread, 200 threads x 20,000 operations on one Lock), and ``aio-executor``, the ``busy``
program of ``tests/stall/programs/aio_executor.py`` (asyncio tasks awaiting thousands of
``run_in_executor`` calls that take a Lock inside), plainly and under ``stuck run``,
``--policy raise`` and ``--hang-after 1s --hang-policy raise``, N times each (default 100).
A run fails when its output or exit code differs from the plain run's or when it writes a
report. Prints, per workload and configuration, the failures and the time against the plain
run measured in the same session; exits 1 if any run failed. Progress goes to stderr after
every run. ``--plain-runs K`` times only the first K plain runs (the baseline), which saves a
quarter of the time of a long stress.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAMS = Path(__file__).resolve().parents[1] / "tests" / "stall" / "programs"
BUSY = PROGRAMS / "busy.py"
AIO = PROGRAMS / "aio_executor.py"
MODES: dict[str, list[str]] = {
    "run": [],
    "raise": ["--policy", "raise"],
    "hang-raise": ["--hang-after", "1s", "--hang-policy", "raise"],
}
FULL = {"queue": "300000", "pingpong": "200000", "pairs": "4000", "gate": "", "many": "20000",
        "aio-executor": "20000"}
QUICK = {"queue": "30000", "pingpong": "20000", "pairs": "400", "gate": "", "many": "500",
         "aio-executor": "2000"}


def once(argv: list[str]) -> tuple[tuple[int, str, str], float]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return (proc.returncode, proc.stdout, proc.stderr), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workloads", default=",".join(FULL))
    parser.add_argument("--quick", action="store_true", help="reduced scales (as in CI)")
    parser.add_argument("--plain-runs", type=int, default=None,
                        help="plain runs timed for the baseline (default: one per run); the "
                             "output every run is compared with is always a plain run's")
    args = parser.parse_args()
    scales = QUICK if args.quick else FULL
    if args.plain_runs is None:
        args.plain_runs = args.runs
    failed = 0
    print(f"{'workload':10} {'config':11} {'runs':>5} {'failed':>7} {'mean':>8} {'vs plain':>9}")
    with tempfile.TemporaryDirectory(prefix="stuck-busy-") as tmp:
        report = Path(tmp) / "report.json"
        for workload in args.workloads.split(","):
            program = [str(AIO), "busy", scales[workload]] if workload == "aio-executor" \
                else [str(BUSY), workload, *([scales[workload]] if scales[workload] else [])]
            expected, _ = once([sys.executable, *program])
            plain_times: list[float] = []
            times: dict[str, list[float]] = {mode: [] for mode in MODES}
            failures: dict[str, int] = dict.fromkeys(MODES, 0)
            for run in range(args.runs):
                if run < args.plain_runs:
                    got, seconds = once([sys.executable, *program])
                    plain_times.append(seconds)
                for mode, options in MODES.items():
                    report.unlink(missing_ok=True)
                    got, seconds = once([sys.executable, "-m", "stuck", "run", "--json",
                                         str(report), *options, *program])
                    times[mode].append(seconds)
                    if got != expected or report.exists():
                        failures[mode] += 1
                        sys.stderr.write(f"{workload} {mode}: differs\n{got[2][-2000:]}\n")
                done = ", ".join(f"{mode} {failures[mode]}" for mode in MODES)
                sys.stderr.write(f"{workload}: {run + 1}/{args.runs} runs, failed: {done}\n")
                sys.stderr.flush()
            base = sum(plain_times) / len(plain_times)
            print(f"{workload:10} {'plain':11} {len(plain_times):5} {'-':>7} {base:7.2f}s {1:8.2f}x")
            for mode in MODES:
                mean = sum(times[mode]) / len(times[mode])
                failed += failures[mode]
                print(f"{workload:10} {mode:11} {args.runs:5} {failures[mode]:7} {mean:7.2f}s "
                      f"{mean / base:8.2f}x", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
