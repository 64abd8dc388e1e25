"""What a stall abort prints under ``stuck run --policy abort``: the report and the abort line,
as a deadlock abort does; the raw stacks of every thread (stuck's own watchdog, runner and
click frames among them) only with ``--debug``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stuck.errors import EXIT_ABORT

# A feeder that dies of ZeroDivisionError at line 5, leaving the eater on an empty queue.
PROGRAM = (Path(__file__).parent / "programs" / "feeder_died.py").read_text()


def _abort(tmp_path: Path, *options: str) -> str:
    script = tmp_path / "feeder_died.py"
    script.write_text(PROGRAM)
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", *options,
                           str(script)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert "STALL (certain)" in proc.stderr
    return proc.stderr


def test_stall_abort_prints_the_report_and_the_abort_line_only(tmp_path: Path) -> None:
    err = _abort(tmp_path)
    report = err[err.index("STALL (certain)"):]
    assert report.rstrip().endswith("stuck: aborting (policy abort, a proven stall)")
    assert "most recent call first" not in err
    for own in ("watchdog.py", "runner.py", "click"):
        assert own not in report


def test_stall_abort_dumps_every_stack_when_debugging(tmp_path: Path) -> None:
    err = _abort(tmp_path, "--debug")
    assert "stuck: aborting (policy abort, a proven stall)" in err
    assert "most recent call first" in err and "watchdog.py" in err
