"""How soon ``stuck run`` names a stall after it forms: the goal is 5 s.

    python benchmarks/stall_report_latency.py [--runs N]

Runs ``examples/store_stall.py`` (a writer waiting on a condition that only a job queued for a
pool without workers would notify; its main thread waits with a timeout, so the stall is
probable and the program is not ended by stuck) under ``stuck run --json`` N times (default
10), reads the report as soon as it names the stall, and ends the program. Printed: the median
and longest ``waiting_seconds`` of the stall, which the watchdog measures on the program's own
clock from the moment the writer began its wait to the report, against the goal. Exits 1 when
a run gave no stall report within the program's time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

GOAL = 5.0
LIMIT = 60.0  # seconds the example waits before it gives up, and this script with it
EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples",
                       "store_stall.py")


def one_run(report: str) -> float | None:
    """The stall's ``waiting_seconds`` in the first report that names it, or None."""
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", "--json", report, EXAMPLE,
                             str(LIMIT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + LIMIT
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with open(report, encoding="utf-8") as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                doc = None  # not written yet, or being written
            for finding in (doc or {}).get("findings", []):
                if finding["kind"] == "stall":
                    return float(finding["details"]["waiting_seconds"])
            time.sleep(0.02)
        return None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    seconds: list[float] = []
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            found = one_run(os.path.join(tmp, f"report{i}.json"))
            if found is None:
                missed += 1
            else:
                seconds.append(found)
    if seconds:
        verdict = "ok" if max(seconds) <= GOAL else "over the goal"
        print(f"store_stall: {len(seconds)} of {args.runs} runs reported the stall; median "
              f"{statistics.median(seconds):.2f} s, longest {max(seconds):.2f} s after the "
              f"writer began waiting (goal {GOAL:.0f} s: {verdict})")
    else:
        print(f"store_stall: no stall reported in {args.runs} runs")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
