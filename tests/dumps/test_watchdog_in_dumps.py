"""A dump of a program running under stuck shows stuck's watchdog: a bare interpreter thread the
program's ``threading`` does not know, so without a name. It is told by its frames, named as
stuck names it, and read as idle between two checks: never a finding about stuck's own thread,
never a thread the program's waits are blamed on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from stuck.dumps import pyspy
from stuck.rules.facts import WATCHDOG_NAME

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/dumps/own/pyspy-under-stuck-run.txt"
STUCK = [sys.executable, "-m", "stuck"]


def test_pyspy_dump_names_the_watchdog_by_its_frames() -> None:
    # py-spy 0.3 dump of `stuck run inv.py`: two threads in a lock inversion, the main thread
    # joining one of them, and the watchdog (Thread 6242, no name) in its pause.
    result = pyspy.parse(FIXTURE.read_text())
    threads = {t.id: t for p in result.processes for t in p.threads}
    watchdog = threads["6242"]
    assert watchdog.name == WATCHDOG_NAME and watchdog.state == "idle"
    assert watchdog.waits is None
    assert {threads[i].name for i in ("6143", "6244", "6248")} == {"MainThread", "one", "two"}


def test_faulthandler_dump_of_a_stuck_run_has_no_finding_about_the_watchdog(
        tmp_path: Path) -> None:
    program = tmp_path / "dumps_itself.py"
    program.write_text(textwrap.dedent("""
        import faulthandler, threading, time
        threading.Thread(target=time.sleep, args=(3,), name="sleeper", daemon=True).start()
        time.sleep(1)  # the watchdog has started and is in its pause between checks
        faulthandler.dump_traceback(all_threads=True)
        """))
    ran = subprocess.run([*STUCK, "run", str(program)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    dump = tmp_path / "dump.txt"
    dump.write_text(ran.stderr)
    assert "stuck/runtime/watchdog.py" in ran.stderr.replace("\\", "/"), ran.stderr
    analyzed = subprocess.run([*STUCK, "analyze", str(dump)], capture_output=True, text=True,
                              timeout=60)
    assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr  # nothing found
    assert f"idle: {WATCHDOG_NAME}" in analyzed.stdout, analyzed.stdout
