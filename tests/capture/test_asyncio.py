"""stuck capture on hung asyncio programs, plain and under `stuck run`, and their busy twins.

From outside, a hung event loop is a thread in epoll_wait with no timeout whose epoll set holds
only the loop's own wake-up socket; under `stuck run` the program's watchdog hands over what it
knows of the tasks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.capture.conftest import PROGRAMS, settle

from stuck.capture import collect, report, tools
from stuck.model import Report

# Capture sees a program runs under stuck by its watchdog's frames in the Python stacks.
needs_python_stacks = pytest.mark.skipif(
    tools.find("py-spy") is None and tools.find("pystack") is None,
    reason="neither py-spy nor pystack is installed (the [test] extras)")


def _capture(pid: int) -> Report:
    return report(collect([pid]))


def _started(start, program: str, under_stuck: bool = False):  # type: ignore[no-untyped-def]
    argv = [sys.executable, *(["-m", "stuck", "run"] if under_stuck else []),
            str(PROGRAMS / program)]
    s = start(argv)
    assert s.proc.stdout is not None and s.proc.stdout.readline().strip() == b"ready"
    settle(s, 1)
    return s


def _under_stuck(start, program: str) -> Report:  # type: ignore[no-untyped-def]
    s = _started(start, program, under_stuck=True)
    rep = None
    for _ in range(20):  # the watchdog sees a loop stalled after two looks
        rep = _capture(s.pid)
        if rep.findings:
            break
    assert rep is not None
    assert not Path(f"/tmp/stuck-report-{s.pid}.json").exists()  # taken, not left behind
    return rep


@needs_python_stacks
def test_under_stuck_a_task_awaiting_a_future_nobody_sets_is_a_stall(start) -> None:  # type: ignore[no-untyped-def]
    rep = _under_stuck(start, "py_async_future.py")
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("stall", "certain")
    names = {t.name.split(" [")[0] for t in rep.snapshot.threads() if t.id in f.threads}
    assert len(f.threads) == 2 and "waiter" in names  # the main task, and the one it awaits
    assert not any("did not hand over" in n for n in rep.snapshot.notes)


@needs_python_stacks
def test_under_stuck_a_lock_held_across_an_await_of_its_taker_is_a_deadlock(start) -> None:  # type: ignore[no-untyped-def]
    rep = _under_stuck(start, "py_async_lock.py")
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("deadlock", "certain")
    assert all(t.startswith("task:") for t in f.threads)
    labels = {rep.snapshot.resource_map()[e.waits_for].label for e in f.cycle}
    assert "lock" in labels
