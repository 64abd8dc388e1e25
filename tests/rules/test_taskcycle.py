"""Cycles among the tasks of a stalled event loop, found and judged from the snapshot alone
(``stuck.rules.taskcycle``): who could end each wait is read from the model."""

from __future__ import annotations

from stuck.model import EventLoop, Process, Recorded, Resource, Snapshot, Source, Thread, Wait
from stuck.rules.taskcycle import loop_cycles, task_cycle_finding


def snapshot(runnable: list[str] | None = None) -> Snapshot:
    """ping gets from queue b, which only pong ever put to; pong gets from queue a, which only
    ping put to; main awaits a gather of both; waiter waits for an event."""
    threads = [
        Thread(id="0x1", name="MainThread", state="idle"),
        Thread(id="task:ping", name="ping", state="blocked", waits=Wait("queue-b", op="get")),
        Thread(id="task:pong", name="pong", state="blocked", waits=Wait("queue-a", op="get")),
        Thread(id="task:main", name="main", state="blocked", waits=Wait("task-g", op="gather")),
        Thread(id="task:waiter", name="waiter", state="blocked", waits=Wait("event-e", op="wait")),
    ]
    resources = [
        Resource(id="queue-a", kind="queue", label="a",
                 recorded=Recorded(wakers=["task:ping"], getters=["task:pong"])),
        Resource(id="queue-b", kind="queue", label="b",
                 recorded=Recorded(wakers=["task:pong"], getters=["task:ping"])),
        Resource(id="task-g", kind="task", label="gather(ping, pong)",
                 owners=["task:ping", "task:pong"]),
        Resource(id="event-e", kind="event", label="e", recorded=Recorded()),
    ]
    loop = EventLoop(id="loop-1", thread="0x1",
                     tasks=["task:main", "task:ping", "task:pong", "task:waiter"], ready=0,
                     timers=0, io=0, idle=True, stalled=True,
                     runnable_threads=[] if runnable is None else runnable)
    return Snapshot(source=Source(kind="live"), processes=[Process(threads=threads)],
                    resources=resources, loops=[loop], taken_at=100.0)


def test_a_cycle_through_queues_by_who_put_and_took_with_the_task_behind_it() -> None:
    snap = snapshot()
    ((edges, victims),) = loop_cycles(snap, snap.loops[0])
    assert {(e.thread, e.waits_for, e.held_by) for e in edges} == {
        ("task:ping", "queue-b", "task:pong"), ("task:pong", "queue-a", "task:ping")}
    assert victims == ["task:main"]  # the waiter on the event is not behind it
    finding = task_cycle_finding(snap, edges, found_by="watchdog", policy="report",
                                 timed=False, blocked_behind=victims)
    # who would put is known from history only, but nothing outside the cycle can run
    assert finding.confidence == "certain" and finding.missing_evidence == []
    assert "ping gets from empty queue b, which only pong puts to" in finding.summary


def test_with_another_thread_able_to_run_it_stays_probable() -> None:
    snap = snapshot(runnable=["heartbeat"])
    ((edges, victims),) = loop_cycles(snap, snap.loops[0])
    finding = task_cycle_finding(snap, edges, found_by="watchdog", policy="report",
                                 timed=False, blocked_behind=victims)
    assert finding.confidence == "probable" and finding.missing_evidence


def test_a_producer_that_can_still_run_breaks_the_cycle() -> None:
    snap = snapshot()
    pong = snap.processes[0].threads[2]
    pong.state, pong.waits = "running", None
    assert loop_cycles(snap, snap.loops[0]) == []
