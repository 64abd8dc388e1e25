"""A Python signal handler can end a wait: the rules never call such a wait proven.

CPython runs a Python signal handler in the main thread, interrupting a lock wait there, and a
handler can set, release, put or notify anything. A live source records the program's handlers
(``Process.signal_handlers``); ``stuck.rules.confidence.signal_handler_doubt`` makes a finding
one of whose waits such a handler could end at most probable, and says which handler."""

from __future__ import annotations

import io

from stuck.model import (
    Process,
    Recorded,
    Report,
    Resource,
    SignalHandler,
    Snapshot,
    Source,
    Thread,
    Wait,
)
from stuck.report import json as json_report
from stuck.rules import evaluate
from stuck.rules.confidence import interrupts_only

NOW = 1000.0
TERM = SignalHandler(signal="SIGTERM", handler="<lambda>", where="app.py:3", module="__main__")


def snapshot(threads: list[Thread], resources: list[Resource],
             handlers: list[SignalHandler] | None) -> Snapshot:
    return Snapshot(source=Source(kind="live", format="python"),
                    processes=[Process(pid=1, threads=threads, signal_handlers=handlers)],
                    resources=resources, taken_at=NOW)


def waiter(tid: str, rid: str, op: str) -> Thread:
    return Thread(id=tid, name=tid, state="blocked",
                  waits=Wait(resource=rid, since=NOW - 5, op=op))


def event_stall(handlers: list[SignalHandler] | None) -> Snapshot:
    """The graceful-shutdown shape: the main thread waits for an Event nobody else sets."""
    return snapshot([waiter("main", "ev", "wait")],
                    [Resource(id="ev", kind="event", label="stop",
                              recorded=Recorded(wakers=[], reachable=False))], handlers)


def test_without_a_handler_the_event_nobody_sets_is_certain() -> None:
    [finding] = evaluate(event_stall([]))
    assert (finding.kind, finding.confidence) == ("stall", "certain")
    [finding] = evaluate(event_stall(None))  # not recorded (an older report): as before
    assert finding.confidence == "certain"


def test_a_handler_that_could_set_the_event_makes_it_probable_and_is_named() -> None:
    [finding] = evaluate(event_stall([TERM]))
    assert (finding.kind, finding.confidence) == ("stall", "probable")
    first = finding.missing_evidence[0]
    assert "SIGTERM: <lambda> at app.py:3" in first
    assert "if the signal never comes, this is a stall" in first
    assert finding.details["signal_handlers"] == ["SIGTERM: <lambda> at app.py:3"]


def test_handlers_that_only_interrupt_leave_it_certain() -> None:
    interrupting = [
        SignalHandler("SIGINT", "default_int_handler", None, "_signal"),
        SignalHandler("SIGINT", "Runner._on_sigint", "runners.py:1", "asyncio.runners"),
        SignalHandler("SIGALRM", "timeout_sigalrm", "pytest_timeout.py:1", "pytest_timeout"),
    ]
    assert all(interrupts_only(h) for h in interrupting)
    assert not interrupts_only(TERM)
    [finding] = evaluate(event_stall(interrupting))
    assert finding.confidence == "certain"


def test_each_kind_a_handler_could_signal() -> None:
    for kind, op in (("semaphore", "acquire"), ("queue", "get"), ("queue", "put"),
                     ("condition", "wait"), ("future", "result")):
        rec = Recorded(wakers=[], reachable=False, size=0 if op == "get" else 1,
                       maxsize=1, getters=[], free=0)
        snap = snapshot([waiter("main", "r", op)],
                        [Resource(id="r", kind=kind, label="r", recorded=rec)], [TERM])
        found = evaluate(snap)
        assert found, (kind, op)
        assert all(f.confidence != "certain" for f in found), (kind, op, found)


def test_a_lock_cycle_between_threads_a_handler_cannot_release_stays_certain() -> None:
    # t1 holds a and waits for b, t2 holds b and waits for a (RLocks: only the owner may
    # release one); a handler in the main thread can release neither.
    threads = [waiter("t1", "b", "acquire"), waiter("t2", "a", "acquire"),
               Thread(id="main", name="MainThread", state="blocked",
                      waits=Wait(resource="join-t1", since=NOW - 5, op="join"))]
    threads[0].holds, threads[1].holds = ["a"], ["b"]
    resources = [Resource(id="a", kind="rlock", label="a", owners=["t1"], recorded=Recorded()),
                 Resource(id="b", kind="rlock", label="b", owners=["t2"], recorded=Recorded()),
                 Resource(id="join-t1", kind="thread", label="t1",
                          recorded=Recorded(joins="t1"))]
    [finding] = evaluate(snapshot(threads, resources, [TERM]))
    assert (finding.kind, finding.confidence) == ("deadlock", "certain")
    assert not any("signal handler" in m for m in finding.missing_evidence)


def test_a_saved_report_keeps_the_handlers_and_gets_the_same_verdict() -> None:
    snap = event_stall([TERM])
    live = evaluate(snap)
    buf = io.StringIO()
    json_report.write(Report(snapshot=snap, findings=live), buf)
    back = json_report.loads(buf.getvalue())
    assert back.snapshot.processes[0].signal_handlers == [TERM]
    again = evaluate(back.snapshot)
    assert [(f.kind, f.confidence, f.threads) for f in again] == \
        [(f.kind, f.confidence, f.threads) for f in live]
    assert again[0].missing_evidence == live[0].missing_evidence


def test_a_handler_whose_code_names_the_waited_event_makes_it_a_wait_for_the_signal() -> None:
    # signal.signal(SIGTERM, lambda *a: stop.set()) beside stop.wait(): nothing but the signal
    # was ever going to end the wait, as a read waits for its peer: no finding at all.
    names_it = SignalHandler(signal="SIGTERM", handler="<lambda>", where="app.py:3",
                             module="__main__", names=["ev"])
    assert evaluate(event_stall([names_it])) == []
    # A handler naming another primitive only: the stall stands, probable.
    elsewhere = SignalHandler(signal="SIGHUP", handler="reload", where="app.py:9",
                              module="__main__", names=["config"])
    [finding] = evaluate(event_stall([elsewhere]))
    assert (finding.kind, finding.confidence) == ("stall", "probable")
    # What the handler names is kept in a saved report, with the same verdict read back.
    snap = event_stall([names_it])
    buf = io.StringIO()
    json_report.write(Report(snapshot=snap, findings=[]), buf)
    back = json_report.loads(buf.getvalue())
    assert back.snapshot.processes[0].signal_handlers == [names_it]
    assert evaluate(back.snapshot) == []


def test_the_objects_a_handler_names_are_read_without_running_its_code() -> None:
    import functools
    import threading

    from stuck.runtime.sighandlers import _named_objects

    stop = threading.Event()

    class Server:
        def __init__(self) -> None:
            self.shutdown_event = threading.Event()

        def on_term(self, *args: object) -> None:
            self.shutdown_event.set()

        @property
        def trap(self) -> object:  # a property is never run
            raise AssertionError("ran the program's code")

    server = Server()

    def closure_handler(*args: object) -> None:
        stop.set()

    assert any(o is stop for o in _named_objects(closure_handler))
    assert any(o is server.shutdown_event for o in _named_objects(server.on_term))
    assert any(o is stop for o in _named_objects(functools.partial(print, stop)))
    assert not any(o is stop for o in _named_objects(lambda *a: None))
