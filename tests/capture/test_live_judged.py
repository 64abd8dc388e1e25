"""A program running under ``stuck run`` is judged from outside as its runtime judged it:
``stuck capture`` takes the live report its watchdog hands over, renames its threads and their
recorded history to the kernel's thread ids, and keeps the program's own view of its stacks
(no frames of stuck's wrappers, runner or command line) and the name of the script it runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from tests.capture.conftest import PROGRAMS, settle

from stuck.capture import collect, report
from stuck.model import Report

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"),
    pytest.mark.skipif(shutil.which("py-spy") is None and shutil.which("pystack") is None,
                       reason="neither py-spy nor pystack is installed"),
]


def _under_stuck(program: str) -> list[str]:
    """The command line a user types: the ``stuck`` script (its process is named ``stuck``
    by the kernel), or ``python -m stuck`` where the script is not installed beside python."""
    script = Path(sys.executable).with_name("stuck")
    head = [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "stuck"]
    return [*head, "run", str(PROGRAMS / program)]


def _capture_until(pid: int, done, tries: int = 20) -> Report:  # type: ignore[no-untyped-def]
    rep = report(collect([pid]))
    for _ in range(tries):  # the watchdog's check may come after the threads block
        if done(rep):
            break
        rep = report(collect([pid]))
    return rep


def test_a_cycle_through_a_future_is_the_deadlock_the_runtime_found(start) -> None:  # type: ignore[no-untyped-def]
    prog = start(_under_stuck("py_rlock_future_cycle.py"))
    assert prog.proc.stdout is not None and prog.proc.stdout.readline().strip() == b"ready"
    settle(prog, 1)
    rep = _capture_until(prog.pid, lambda r: any(f.kind == "deadlock" for f in r.findings))
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    threads = {t.id: t for t in rep.snapshot.threads()}
    names = {threads[t].name for t in d.threads}
    assert names == {f"MainThread [pid {prog.pid} py_rlock_future_cycle.py]",
                     f"dispatch_0 [pid {prog.pid} py_rlock_future_cycle.py]"}
    assert not d.blocked_behind  # each waits for the other: none is behind
    assert rep.snapshot.processes[0].name == "py_rlock_future_cycle.py"
    for tid in d.threads:  # the program's frames, none of stuck's own
        files = [f.file or "" for f in threads[tid].frames]
        assert files and not any("/stuck/" in f or "click" in f for f in files), files


def test_a_slow_worker_under_stuck_is_no_finding(start) -> None:  # type: ignore[no-untyped-def]
    prog = start(_under_stuck("py_future_slow_worker.py"))
    assert prog.proc.stdout is not None and prog.proc.stdout.readline().strip() == b"ready"
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    assert rep.findings == []
    assert any(t.name and t.name.startswith("worker_0 ") for t in rep.snapshot.threads())


def test_a_gap_given_under_a_finding_is_not_said_again_as_a_note(start) -> None:  # type: ignore[no-untyped-def]
    """Two processes blocked writing to each other are not stopped to be read: that gap is
    said once under the finding, not again as a note after it; the JSON keeps its notes."""
    import json
    import subprocess

    pair = start([sys.executable, str(PROGRAMS / "py_pipe_pair.py")])
    pids = settle(pair, 2)
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(pair.pid),
                          "--json", "-"], capture_output=True, text=True, timeout=120)
    data = json.loads(run.stdout)
    assert any("was not stopped to read it" in n for n in data["notes"])
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(pair.pid)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert run.stdout.startswith("stuck: 1 deadlock found")
    for pid in pids:
        said = [line for line in run.stdout.splitlines()
                if f"pid {pid} was not stopped to read it" in line]
        assert len(said) == 1 and said[0].startswith("    - "), said
