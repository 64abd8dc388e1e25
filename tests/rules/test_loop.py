"""The event-loop rule judges an asyncio loop from the model's facts alone (``model.EventLoop``,
the tasks' waits, what the primitives' history says): no live object is read."""

from __future__ import annotations

from stuck.model import EventLoop, Process, Recorded, Resource, Snapshot, Source, Thread, Wait
from stuck.rules import evaluate
from stuck.rules.engine import judge_loops


def snapshot(loop: EventLoop, *, setter: str | None = None) -> Snapshot:
    threads = [
        Thread(id="0x1", name="MainThread", state="idle"),
        Thread(id="task:drainer", name="drainer", state="blocked",
               waits=Wait(resource="event-1", op="wait")),
        Thread(id="task:main", name="main", state="blocked",
               waits=Wait(resource="task-2", op="await")),
    ]
    resources = [
        Resource(id="event-1", kind="event", label="shutdown_requested",
                 recorded=Recorded(set_by=setter)),
        Resource(id="task-2", kind="task", label="drainer", owners=["task:drainer"]),
    ]
    return Snapshot(source=Source(kind="live"), processes=[Process(threads=threads)],
                    resources=resources, loops=[loop])


def stalled(**changes: object) -> EventLoop:
    loop = EventLoop(id="loop-1", thread="0x1", tasks=["task:drainer", "task:main"], ready=0,
                     timers=0, io=0, idle=True, stalled=True, runnable_threads=[])
    for name, value in changes.items():
        setattr(loop, name, value)
    return loop


def test_a_stalled_quiet_loop_alone_is_a_certain_stall_named_at_its_root() -> None:
    (finding,) = evaluate(snapshot(stalled()))
    assert finding.kind == "stall" and finding.confidence == "certain"
    assert finding.threads == ["task:drainer", "task:main"]  # the root first
    assert "drainer waits for event shutdown_requested, which nothing has ever set; main " \
           "awaits task drainer" in finding.summary
    assert "event loop in thread MainThread" in finding.summary
    assert finding.resources == ["event-1", "task-2"]


def test_who_set_the_event_last_is_named() -> None:
    (finding,) = evaluate(snapshot(stalled(), setter="starter"))
    assert "last set by starter and cleared since" in finding.summary


def test_another_thread_able_to_run_makes_it_probable_and_says_why() -> None:
    (finding,) = evaluate(snapshot(stalled(runnable_threads=["heartbeat"])))
    assert finding.confidence == "probable"
    assert "Threads still able to run: heartbeat." in finding.explanation
    assert any("call_soon_threadsafe" in m for m in finding.missing_evidence)
    (unread,) = evaluate(snapshot(stalled(runnable_threads=None)))
    assert unread.confidence == "probable"
    assert any("was not read" in m for m in unread.missing_evidence)


def test_a_loop_with_anything_left_to_run_or_not_seen_stalled_gets_no_finding() -> None:
    for changes in ({"ready": 1}, {"timers": 1}, {"io": 2}, {"idle": False}, {"idle": None},
                    {"stalled": False}):
        assert evaluate(snapshot(stalled(**changes))) == [], changes


def test_tasks_an_earlier_finding_covers_are_left_to_it() -> None:
    (finding,) = judge_loops(snapshot(stalled()), {"task:drainer"})
    assert finding.threads == ["task:main"]
    assert judge_loops(snapshot(stalled()), {"task:drainer", "task:main"}) == []


def test_a_task_on_a_call_whose_worker_waits_for_a_lock_a_task_holds() -> None:
    snap = snapshot(stalled(tasks=["task:drainer", "task:main", "task:holder"]))
    snap.processes[0].threads += [
        Thread(id="0x2", name="asyncio_0", state="blocked",
               waits=Wait(resource="mutex-4", op="acquire")),
        Thread(id="task:holder", name="holder", state="blocked",
               waits=Wait(resource="event-1", op="wait")),
    ]
    snap.processes[0].threads[2].waits = Wait(resource="future-3", op="result")
    snap.resources += [
        Resource(id="future-3", kind="future", label="blocking() in an executor",
                 owners=["0x2"], recorded=Recorded(task="blocking", running=True)),
        Resource(id="mutex-4", kind="mutex", label="db_lock", owners=["task:holder"]),
    ]
    (finding,) = evaluate(snap)
    assert "main awaits blocking() running on thread asyncio_0, which waits for lock " \
           "db_lock, held by task holder across an await" in finding.summary
    snap.processes[0].threads[3].waits = Wait(resource="mutex-4", op="acquire", timeout=5.0)
    (timed,) = evaluate(snap)  # the worker may give up: no chain is claimed
    assert timed.summary.endswith("; main awaits blocking() running on thread asyncio_0")


def test_a_queue_whose_producers_are_gone_is_not_said_never_put_to() -> None:
    snap = snapshot(stalled())
    snap.processes[0].threads[1].waits = Wait(resource="queue-9", op="get")
    snap.resources.append(Resource(id="queue-9", kind="queue", label="jobs",
                                   recorded=Recorded(epoch=0, wakers=[])))
    (never,) = evaluate(snap)
    assert "jobs, to which nothing has ever been put" in never.summary
    snap.resources[-1].recorded = Recorded(epoch=6, wakers=[])  # three put, three taken
    (gone,) = evaluate(snap)
    assert "to which nothing left running puts (what put to it before is gone)" in gone.summary
