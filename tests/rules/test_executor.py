"""A lock held across the await of a call whose thread waits for it, judged from the model's
facts alone (``stuck.rules.executor``): the task's wait on the executor's future, the worker's
wait on the lock, the lock's owner, the loop's facts."""

from __future__ import annotations

from stuck.model import (
    EventLoop,
    Frame,
    Process,
    Recorded,
    Resource,
    Snapshot,
    Source,
    Thread,
    Wait,
)
from stuck.rules import evaluate

NOW = 1000.0


def snapshot(owner: str = "task:main", worker_timeout: float | None = None,
             since: float = NOW - 5, stalled: bool = True) -> Snapshot:
    threads = [
        Thread(id="0x1", name="MainThread", state="idle"),
        Thread(id="0x2", name="asyncio_0", state="blocked",
               waits=Wait(resource="mutex-1", op="acquire", since=since,
                          timeout=worker_timeout)),
        Thread(id="task:main", name="main", state="blocked",
               waits=Wait(resource="future-2", op="result")),
        Thread(id="task:caller", name="caller", state="blocked",
               waits=Wait(resource="task-3", op="await")),
    ]
    resources = [
        Resource(id="mutex-1", kind="mutex", label="db_lock", owners=[owner],
                 acquired_at={owner: Frame(function="main", file="/app/svc.py", line=12)}),
        Resource(id="future-2", kind="future", label="query() in an executor", owners=["0x2"],
                 recorded=Recorded(task="query", running=True)),
        Resource(id="task-3", kind="task", label="main", owners=["task:main"]),
    ]
    loop = EventLoop(id="loop-1", thread="0x1", tasks=["task:main", "task:caller"], ready=0,
                     timers=0, io=0, idle=True, stalled=stalled, runnable_threads=[])
    if stalled and owner == "0x1":
        resources.append(Resource(id="loop-1", kind="task", label="event loop (main, caller)",
                                  owners=["task:main", "task:caller"]))
    return Snapshot(source=Source(kind="live"), processes=[Process(threads=threads)],
                    resources=resources, loops=[loop], taken_at=NOW)


def test_a_lock_held_across_the_await_of_its_taker_is_a_certain_deadlock() -> None:
    (finding,) = evaluate(snapshot())
    assert finding.kind == "deadlock" and finding.confidence == "certain"
    assert finding.summary == ("main (on the event loop in thread MainThread) awaits query() "
                               "running on thread asyncio_0, which waits for lock db_lock, "
                               "held by main itself across the await")
    assert {(e.thread, e.waits_for, e.held_by) for e in finding.cycle} == {
        ("task:main", "future-2", "0x2"), ("0x2", "mutex-1", "task:main")}
    assert finding.blocked_behind == ["task:caller"]
    assert "took lock db_lock at svc.py:12" in finding.explanation


def test_outside_a_stalled_loop_each_thread_must_have_waited_the_settle_time() -> None:
    busy = snapshot(stalled=False, since=NOW - 0.2)
    assert evaluate(busy, settle=1.0) == []
    running = snapshot(stalled=False, since=NOW - 2)
    running.loops[0].ready = 3  # the loop goes on running other callbacks
    (finding,) = evaluate(running, settle=1.0)
    assert "goes on running its other tasks; main will never resume" in finding.explanation


def test_a_worker_waiting_with_a_timeout_may_yet_finish() -> None:
    findings = evaluate(snapshot(worker_timeout=5.0))
    assert [f.kind for f in findings] == ["stall"]  # the stalled loop's tasks, no cycle


def test_a_lock_the_loop_thread_took_outside_a_coroutine_closes_through_the_loop() -> None:
    (finding,) = evaluate(snapshot(owner="0x1"))
    assert finding.kind == "deadlock" and finding.confidence == "certain"
    assert ("0x1", "loop-1", "task:main") in {(e.thread, e.waits_for, e.held_by)
                                               for e in finding.cycle}
    assert finding.summary.endswith("held by the event loop's thread MainThread, which runs "
                                    "nothing until one of its tasks resumes")
    # not stalled: the loop's thread may still run code that releases it
    assert [f.kind for f in evaluate(snapshot(owner="0x1", stalled=False))] == []


def test_a_thread_able_to_run_beside_it_makes_it_probable() -> None:
    snap = snapshot()
    snap.processes[0].threads.append(Thread(id="0x3", name="heartbeat", state="sleeping"))
    (finding,) = evaluate(snap)
    assert finding.confidence == "probable"
    assert "heartbeat" in finding.missing_evidence[0]
