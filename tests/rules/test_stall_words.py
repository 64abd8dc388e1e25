"""What a stall's explanation says about the threads that are not among its waiters."""

from __future__ import annotations

from stuck.analysis import analyze
from stuck.model import Process, Resource, Snapshot, Source, Thread, Wait


def _stall_text(threads: list[Thread], words: list[str]) -> str:
    snap = Snapshot(source=Source(kind="proc", format="proc"), processes=[
        Process(pid=10, threads=threads)], resources=[
        Resource(id=w, kind="unknown", label=f"futex {w}", address=w) for w in words])
    [stall] = [f for f in analyze(snap).findings if f.kind == "stall"]
    return stall.explanation


def test_waiters_that_are_every_thread_of_their_process_are_not_called_alone() -> None:
    text = _stall_text([Thread(id=f"LWP {n}", tid=n, state="blocked",
                               waits=Wait(resource=w, durable=True))
                        for n, w in ((1, "0x10"), (2, "0x20"), (3, "0x30"))],
                       ["0x10", "0x20", "0x30"])
    assert "none" not in text and "alone" not in text, text
    assert "all 3 threads of the process wait here" in text, text


def test_a_single_waiter_is_the_only_thread_of_its_process() -> None:
    text = _stall_text([Thread(id="LWP 1", tid=1, state="blocked",
                               waits=Wait(resource="0x10", durable=True))], ["0x10"])
    assert "none" not in text and "the only thread of its process" in text, text
