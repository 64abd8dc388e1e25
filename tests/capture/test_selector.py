"""A program's own ``selectors`` loop (no asyncio) asleep with no timeout on a socket pair whose
other end only its own process holds is a wait for that process to write it, said as such: not
an event loop on its wake-up pipe (that is asyncio's, told by its frames or its self-pipe)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from tests.capture.conftest import PROGRAMS, settle

from stuck.capture import collect, report, tools

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"),
    pytest.mark.skipif(tools.find("py-spy") is None and tools.find("pystack") is None,
                       reason="neither py-spy nor pystack is installed (the [test] extras)"),
]


def _started(start, mode: str):  # type: ignore[no-untyped-def]
    s = start([sys.executable, str(PROGRAMS / "py_selector_peer_died.py"), mode],
              stdin=subprocess.PIPE)
    assert s.proc.stdout is not None and s.proc.stdout.readline().strip() == b"ready"
    settle(s, 1)
    return s


def test_a_selector_whose_peer_died_is_a_wait_on_the_socket_not_an_event_loop(start) -> None:  # type: ignore[no-untyped-def]
    s = _started(start, "died")
    rep = report(collect([s.pid]))
    [f] = rep.findings
    assert f.kind == "stall"
    assert f.details.get("rule") != "event-loop-unwakeable"
    assert not rep.snapshot.loops
    text = " ".join([f.summary, *f.missing_evidence, *(f.details.get("evidence", ""),)])
    assert "event loop" not in text and "wake-up" not in text and "asyncio" not in text
    threads = rep.snapshot.thread_map()
    [reactor] = [threads[t] for t in f.threads]
    assert reactor.name is not None and reactor.name.startswith("reactor ")
    assert reactor.waits is not None
    res = rep.snapshot.resource_map()[reactor.waits.resource]
    assert res.kind == "socket" and "to be written by its peer" in res.label
    assert [threads[t].tid for t in f.blocked_behind] == [s.pid]  # main joins the reactor


def test_a_selector_whose_peer_waits_for_input_gets_no_finding(start) -> None:  # type: ignore[no-untyped-def]
    s = _started(start, "input")  # the responder reads stdin (a pipe this test holds) first
    rep = report(collect([s.pid]))
    assert rep.findings == [], [f.summary for f in rep.findings]
    assert not rep.snapshot.loops


@pytest.mark.parametrize(("program", "args", "a_loop"), [
    ("py_selector_peer_died.py", ["died"], False),  # a blocking socket pair: the program's own
    ("py_async_future.py", [], True),  # asyncio's self-pipe: non-blocking at both ends
])
def test_without_python_frames_the_self_pipe_tells_an_event_loop(  # type: ignore[no-untyped-def]
        start, program: str, args: list[str], a_loop: bool) -> None:
    s = start([sys.executable, str(PROGRAMS / program), *args], stdin=subprocess.PIPE)
    assert s.proc.stdout is not None and s.proc.stdout.readline().strip() == b"ready"
    settle(s, 1)
    ev = collect([s.pid])
    for tool in ("py-spy", "pystack"):  # as where neither is installed: the kernel's view
        ev.processes[0].tools.pop(tool, None)
    rep = report(ev)
    [f] = rep.findings
    assert (f.details.get("rule") == "event-loop-unwakeable") is a_loop
    assert bool(rep.snapshot.loops) is a_loop
