"""Correct, busy programs get no finding: the stress test of "findings only from a true state".

Each program in ``programs/busy.py`` blocks and wakes thousands of times a second (a queue of
one slot, Condition ping-pong, 50 ping-pong pairs, a Lock opened by a sleeping thread, 200
threads on one Lock). Under ``stuck run``, ``--policy raise`` and ``--hang-after 1s
--hang-policy raise`` each must print exactly what a plain run prints, exit the same way, and
write no report. Here each runs once, at a reduced scale; ``benchmarks/busy.py`` runs them in
full, 100 times each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BUSY = Path(__file__).resolve().parent / "programs" / "busy.py"
MODES: dict[str, list[str]] = {
    "report": [],
    "raise": ["--policy", "raise"],
    "hang-raise": ["--hang-after", "1s", "--hang-policy", "raise"],
}
# Reduced scales: long enough for the watchdog to look several times (it samples every
# 0.5 s), short enough for the suite.
WORKLOADS = {"queue": "30000", "pingpong": "20000", "pairs": "400", "gate": "", "many": "300"}


def run(argv: list[str], json_path: Path | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_busy_program_gets_no_finding_and_the_same_output(workload: str,
                                                         tmp_path: Path) -> None:
    args = [str(BUSY), workload, *([WORKLOADS[workload]] if WORKLOADS[workload] else [])]
    plain = run([sys.executable, *args])
    assert plain[0] == 0 and plain[2] == "", plain
    for mode, options in MODES.items():
        report = tmp_path / f"{mode}.json"
        got = run([sys.executable, "-m", "stuck", "run", "--json", str(report), *options,
                   *args])
        assert got == plain, f"{workload} under {mode}: {got[2][-3000:]}"
        assert not report.exists(), f"{workload} under {mode} wrote a report"
