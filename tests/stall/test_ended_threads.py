"""Threads that ended, in a live stall report: each listed once under its own ident, with
its name and how it ended, and never under an id made up inside stuck."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stuck.errors import EXIT_ABORT
from stuck.model import Thread

# A feeder that dies of ZeroDivisionError at line 5, leaving the eater on an empty queue.
PROGRAM = (Path(__file__).parent / "programs" / "feeder_died.py").read_text()


def test_a_waker_that_died_is_one_dead_thread(tmp_path: Path) -> None:
    script = tmp_path / "feeder_died.py"
    script.write_text(PROGRAM)
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", "--json",
                           str(report), str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    threads = [t for p in json.loads(report.read_text())["processes"] for t in p["threads"]]
    assert sorted(t["name"] for t in threads) == ["MainThread", "eater", "feeder"]
    feeder = next(t for t in threads if t["name"] == "feeder")
    assert feeder["state"] == "dead" and feeder["id"].startswith("0x")
    assert "Threads (3)" in proc.stderr
    assert "dead: feeder ended (ZeroDivisionError at feeder_died.py:5)\n" in proc.stderr
    assert "ended-" not in proc.stderr


def test_an_ended_thread_whose_ident_is_reused_is_shown_by_name() -> None:
    gone = Thread(id="0x7f00aa-ended-7f11bb", name="feeder", state="dead", ended="returned")
    assert gone.label() == "feeder ended"
    lwp = Thread(id="LWP 12", name="feeder")
    assert lwp.label() == "feeder (LWP 12)"
