"""``stuck.rules.evaluate`` on snapshots built from model fields alone, as any source states them."""

from __future__ import annotations

from stuck.model import Process, Recorded, Resource, Snapshot, Source, Thread, Wait
from stuck.rules import evaluate

NOW = 1000.0


def snapshot(threads: list[Thread], resources: list[Resource]) -> Snapshot:
    return Snapshot(source=Source(kind="live"), processes=[Process(pid=1, threads=threads)],
                    resources=resources, taken_at=NOW)


def waiter(tid: str, rid: str, op: str) -> Thread:
    return Thread(id=tid, name=tid, state="blocked",
                  waits=Wait(resource=rid, since=NOW - 5, op=op))


def test_an_event_nobody_can_reach_is_a_certain_stall_named_at_its_root() -> None:
    snap = snapshot(
        [waiter("main", "join-w", "join"), waiter("w", "ev", "wait")],
        [Resource(id="join-w", kind="thread", label="w", recorded=Recorded(joins="w")),
         Resource(id="ev", kind="event", label="ready",
                  recorded=Recorded(wakers=[], reachable=False))])
    [finding] = evaluate(snap)
    assert (finding.kind, finding.confidence) == ("stall", "certain")
    assert finding.threads == ["w"] and finding.blocked_behind == ["main"]
    assert "w waits on event ready" in finding.summary


def test_a_setter_that_can_still_run_leaves_the_waiter_alone() -> None:
    snap = snapshot(
        [waiter("w", "ev", "wait"), Thread(id="setter", name="setter", state="running")],
        [Resource(id="ev", kind="event", label="ready", recorded=Recorded(wakers=["setter"]))])
    assert evaluate(snap) == []


def test_the_same_waits_without_recorded_facts_claim_nothing() -> None:
    # A dump states no Wait.op and no Resource.recorded: the rules cannot tell who could end
    # the wait, so they claim nothing rather than guess.
    snap = snapshot([Thread(id="w", state="blocked", waits=Wait(resource="ev"))],
                    [Resource(id="ev", kind="event", label="ready")])
    assert evaluate(snap) == []


def test_settle_leaves_young_waits_unjudged() -> None:
    snap = snapshot(
        [waiter("w", "ev", "wait")],
        [Resource(id="ev", kind="event", label="ready",
                  recorded=Recorded(wakers=[], reachable=False))])
    assert evaluate(snap, settle=10.0) == []
    assert [f.kind for f in evaluate(snap, settle=1.0)] == ["stall"]


def test_the_knot_keeps_only_members_nothing_outside_can_wake() -> None:
    from stuck.rules.knot import greatest_knot

    # a waits for b, b for a (a cycle); c waits for a and d; d runs: c leaves, a and b stay.
    wakers = {"a": ["b"], "b": ["a"], "c": ["a", "d"]}

    def can_end(m: str, knot: set[str]) -> str | None:
        outside = [w for w in wakers[m] if w not in knot]
        return f"{outside[0]} can run" if outside else None

    knot, freed = greatest_knot(["a", "b", "c"], can_end)
    assert knot == {"a", "b"} and freed == {"c": "d can run"}
    # watching c: the walk stops as soon as c is known to be free
    assert "c" not in greatest_knot(["a", "b", "c"], can_end, watch="c")[0]


def test_a_cycle_step_reads_the_same_from_every_source() -> None:
    from stuck.rules.wording import cycle_step

    assert cycle_step("acquire", "mutex", "a", "t2", False) == "waits for a held by t2"
    assert cycle_step("acquire", "mutex", "a", "t1", True) == \
        "takes a, which it already holds (mutex is not reentrant)"
    assert cycle_step("join", "thread", "t2", "t2", False) == "joins t2"
    # a thread alone putting on a full queue only it gets from: a queue step, not a lock's
    assert cycle_step("put", "queue", "q", "t1", True) == \
        "puts on full queue q, which only t1 gets from"
    assert cycle_step("get", "queue", "q", "t2", False) == \
        "gets from empty queue q, which only t2 puts to"
    assert cycle_step("result", "future", "f", "w", False) == \
        "waits for f, which only w can complete"


def test_only_the_processes_with_recorded_facts_are_the_rules_to_judge() -> None:
    from stuck.rules import recorded_part

    live = Process(pid=1, threads=[waiter("w", "ev", "wait"),
                                   Thread(id="setter", state="dead", ended="returned")])
    dumped = Process(pid=2, threads=[Thread(id="LWP 7", state="blocked",
                                            waits=Wait(resource="mu"))])
    ev = Resource(id="ev", kind="event", label="ready", recorded=Recorded(wakers=["setter"]))
    snap = Snapshot(source=Source(kind="dump"), processes=[live, dumped],
                    resources=[ev, Resource(id="mu", kind="mutex")])
    part = recorded_part(snap)
    assert part is not None and part.processes == [live]
    # the facts name a thread the snapshot no longer has: they prove nothing here
    ev.recorded = Recorded(wakers=["0x7f00"])
    assert recorded_part(snap) is None
    assert recorded_part(snapshot([], [])) is None


def test_a_cycle_is_certain_only_when_ownership_proves_every_step() -> None:
    from stuck.rules.confidence import steps_confidence

    assert steps_confidence(["acquire-rlock", "join"]) == ("certain", [])
    assert steps_confidence(["acquire-mutex", "await"], who="task") == ("certain", [])
    confidence, missing = steps_confidence(["acquire-mutex", "get"], who="task")
    assert confidence == "probable"
    assert missing == ["which tasks will use a queue is inferred from which tasks used it so "
                       "far; a task that never touched it could still end the wait"]
    assert steps_confidence(["acquire-semaphore", "join"])[0] == "probable"


def test_a_lock_an_asyncio_task_holds_is_left_to_the_event_loop_rule() -> None:
    """A thread waits for a Lock a task holds across an await (``task:`` ids are the
    event-loop rule's, which ``facts_of`` leaves out): whether the task's loop will resume it
    is not these rules' to say, so the thread is not stuck here."""
    task = Thread(id="task:Task-1", name="Task-1", state="blocked", holds=["lock"],
                  waits=Wait(resource="fut", since=NOW - 5, op="result"))
    snap = snapshot(
        [waiter("worker", "lock", "acquire"), task],
        [Resource(id="lock", kind="mutex", label="lock", owners=["task:Task-1"],
                  recorded=Recorded(epoch=0)),
         Resource(id="fut", kind="future", label="read() in an executor", owners=["io"])])
    assert evaluate(snap) == []
