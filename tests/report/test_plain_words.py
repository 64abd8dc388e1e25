"""Small things a reader trips over: the report printed once under ``--policy raise``, no
"for 0.0 s", no "barrier barrier", and the errors importable from ``stuck`` as the help says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stuck.model import Finding, Process, Report, Resource, Snapshot, Source, Thread, Wait
from stuck.report import text as text_report

MISSING_SENTINEL = """
import queue, threading
q = queue.Queue()
def consumer():
    while q.get() is not None:
        pass
c = threading.Thread(target=consumer, name="consumer")
c.start()
try:
    c.join()
except Exception as exc:
    print(type(exc).__name__, flush=True)
    raise SystemExit(3)
"""


def test_policy_raise_writes_the_report_once(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(MISSING_SENTINEL)
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "raise",
                           "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout == "StallError\n", done.stderr
    assert done.stderr.count("STALL (certain)") == 1, done.stderr
    assert done.stderr.count("Threads (") == 1, done.stderr


def test_a_wait_that_has_just_begun_has_no_duration() -> None:
    snap = Snapshot(source=Source(kind="live"), processes=[Process(threads=[
        Thread(id="0x1", name="a", state="blocked", waits=Wait("r", duration=0.01)),
        Thread(id="0x2", name="b", state="blocked", waits=Wait("r", duration=2.0))])],
        resources=[Resource("r", "event", "ev")])
    out = text_report.render(Report(snapshot=snap, findings=[
        Finding("stall", "certain", "s", threads=["0x1", "0x2"])]))
    assert "for 0.0 s" not in out
    assert "b waits for event ev for 2.0 s" in out


BARRIER = """
import threading
barrier = threading.Barrier(3)
w = threading.Thread(target=barrier.wait, name="w0")
w.start(); w.join()
"""


def test_a_barrier_named_barrier_is_not_barrier_barrier(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(BARRIER)
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                           "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 86, done.stderr
    assert "w0 waits at barrier, which can never collect its 3 parties" in done.stderr
    assert "barrier barrier" not in done.stderr


def test_the_errors_are_importable_from_stuck_as_the_help_says() -> None:
    import stuck
    from stuck.runtime import watchdog

    assert watchdog.HangError is stuck.HangError
    assert issubclass(stuck.HangError, stuck.StuckError)
    help_text = subprocess.run([sys.executable, "-m", "stuck", "run", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    assert "from stuck import HangError" in " ".join(help_text.split())
