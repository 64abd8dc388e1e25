"""The hang rule over the model: which threads without progress are worth a finding."""

from __future__ import annotations

from stuck.model import Frame, Process, Resource, Snapshot, Source, Thread, Wait
from stuck.rules.hang import hang_finding, held_up_by, is_hang


def test_a_thread_in_a_durable_wait_is_left_to_the_other_rules() -> None:
    t = Thread(id="t", state="blocked", waits=Wait(resource="l", durable=True))
    assert not is_hang(t, "running", ["w"])


def test_idle_or_asleep_is_a_hang_only_when_others_wait_behind_it() -> None:
    t = Thread(id="t", state="idle")
    assert not is_hang(t, "idle", [])
    assert not is_hang(t, "sleeping", [])
    assert is_hang(t, "sleeping", ["w"])
    assert is_hang(t, "io", [])
    assert is_hang(t, "running", [])


def test_waiters_are_held_up_by_owners_and_by_past_signallers_not_by_themselves() -> None:
    snap = Snapshot(source=Source(kind="live"), processes=[Process(threads=[
        Thread(id="a", waits=Wait(resource="lock")),
        Thread(id="b", waits=Wait(resource="cv")),
        Thread(id="c", waits=Wait(resource="cv")),
    ])], resources=[Resource(id="lock", kind="mutex", owners=["spinner"]),
                    Resource(id="cv", kind="condition", wakers=["spinner", "b"])])
    assert held_up_by(snap) == {"spinner": ["a", "b", "c"], "b": ["c"]}


def test_the_finding_is_possible_and_says_where_the_thread_is() -> None:
    t = Thread(id="0x1", name="reader", frames=[Frame("recv", "net.py", 12)])
    f = hang_finding(t, 7.25, "io", "socket.recv", ["0x2"], 5.0, 4321)
    assert (f.kind, f.confidence, f.threads, f.blocked_behind) == (
        "hang", "possible", ["0x1"], ["0x2"])
    assert f.summary == "reader has made no progress for 7.2 s: in I/O (socket.recv) in recv at " \
           "net.py:12"
    assert f.explanation.startswith("The watchdog's limit is 5 s.")
    assert "the same state at every sample (in I/O (socket.recv))" in f.explanation
    with_samples = hang_finding(t, 7.25, "io", "socket.recv", [], 5.0, 4321, interval=1.25,
                                samples=5)
    assert "samples every thread's stack (every 1.25 s; 5 samples in that time)" in with_samples.explanation
    assert f.details["seconds_without_progress"] == 7.25
