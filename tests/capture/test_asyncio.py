"""stuck capture on hung asyncio programs, plain and under `stuck run`, and their busy twins.

From outside, a hung event loop is a thread in epoll_wait with no timeout whose epoll set holds
only the loop's own wake-up socket; under `stuck run` the program's watchdog hands over what it
knows of the tasks."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("program", ["py_async_future.py", "py_async_lock.py"])
def test_a_loop_only_its_wake_up_pipe_could_wake_is_a_possible_stall(start, program: str) -> None:  # type: ignore[no-untyped-def]
    s = _started(start, program)
    rep = _capture(s.pid)
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("stall", "possible")
    assert f.details["rule"] == "event-loop-unwakeable"
    [loop_thread] = f.threads
    assert rep.snapshot.thread_map()[loop_thread].tid == s.pid  # asyncio.run's main thread
    assert any("stuck run" in m for m in f.missing_evidence)


@pytest.mark.parametrize("program", [
    "py_async_idle_server.py",  # a listening socket in the epoll set: a client wakes it
    "py_async_timer.py",  # a timer pending: epoll_wait has a timeout
    "py_async_signal.py",  # the program handles SIGTERM: a signal wakes it
    "py_async_thread_beside.py",  # another thread can run: call_soon_threadsafe wakes it
])
def test_a_loop_that_io_a_timer_or_a_signal_can_wake_gets_no_finding(start, program: str) -> None:  # type: ignore[no-untyped-def]
    s = _started(start, program)
    rep = _capture(s.pid)
    assert rep.findings == []
    [loop_thread] = [t for t in rep.snapshot.threads() if t.tid == s.pid]
    if program == "py_async_signal.py":  # seen as a loop only a signal can wake
        [loop] = rep.snapshot.loops
        assert loop.signal_handlers == ["SIGTERM"] and loop.thread == loop_thread.id
    assert loop_thread.state == "io"  # seen asleep in the selector all the same


def _selector_loop(start, selector: str, mode: str):  # type: ignore[no-untyped-def]
    s = start([sys.executable, str(PROGRAMS / "py_async_selector.py"), selector, mode])
    assert s.proc.stdout is not None and s.proc.stdout.readline().strip() == b"ready"
    settle(s, 1)
    return s


SELECTOR_CALLS = {"epoll": ("epoll_wait", "epoll_pwait"), "poll": ("poll", "ppoll"),
                  "select": ("select", "pselect6"), "uvloop": ("epoll_wait", "epoll_pwait")}


def _needs(selector: str) -> None:
    if selector == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed (the [test] extras)")


@pytest.mark.parametrize("selector", ["epoll", "poll", "select", "uvloop"])
def test_a_loop_in_any_selector_that_only_its_wake_up_pipe_could_wake_is_a_possible_stall(  # type: ignore[no-untyped-def]
        start, selector: str) -> None:
    # asyncio.SelectorEventLoop(selectors.PollSelector()) sleeps in poll, a SelectSelector in
    # select (pselect6 under glibc): what they watch is read from the call's arguments.
    # uvloop's epoll set holds an eventfd besides its pipes: libuv's wake-up, which only a
    # process holding it can write.
    from stuck.capture import syscalls

    _needs(selector)
    s = _selector_loop(start, selector, "hung")
    ev = collect([s.pid])
    [te] = [te for te in ev.processes[0].threads if te.tid == s.pid]
    call = syscalls.parse(te.syscall, ev.machine)
    assert call is not None and call.name in SELECTOR_CALLS[selector]
    rep = report(ev)
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("stall", "possible")
    assert f.details["rule"] == "event-loop-unwakeable"
    assert [rep.snapshot.thread_map()[t].tid for t in f.threads] == [s.pid]


@pytest.mark.parametrize("selector", ["poll", "select", "uvloop"])
@pytest.mark.parametrize("mode", ["timer", "server"])
def test_a_poll_select_or_uvloop_loop_a_timer_or_io_can_wake_gets_no_finding(  # type: ignore[no-untyped-def]
        start, selector: str, mode: str) -> None:
    _needs(selector)
    s = _selector_loop(start, selector, mode)
    rep = _capture(s.pid)
    assert rep.findings == [], [f.summary for f in rep.findings]
    [loop_thread] = [t for t in rep.snapshot.threads() if t.tid == s.pid]
    assert loop_thread.state == "io"  # seen asleep in the selector all the same


def test_saved_evidence_and_the_json_report_give_the_same_verdict(start) -> None:  # type: ignore[no-untyped-def]
    from stuck.analysis import analyze
    from stuck.capture.evidence import from_dict
    from stuck.report.json import dumps, loads

    s = _started(start, "py_async_future.py")
    ev = collect([s.pid])
    s.kill()  # what was read is all that counts from here
    again = report(from_dict(json.loads(json.dumps(ev.to_dict()))))
    assert [(f.kind, f.confidence) for f in again.findings] == [("stall", "possible")]
    reread = loads(dumps(again))
    assert reread.snapshot.loops[0].tasks_read is False
    judged = analyze(reread.snapshot)
    assert [f.details["rule"] for f in judged.findings] == ["event-loop-unwakeable"]
