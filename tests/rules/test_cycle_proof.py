"""A cycle through an inferred edge (a semaphore, a queue) is certain only when nothing outside
it could end its waits: no thread is left able to run, or none able to run can reach what it
waits for (stuck.rules.cycle.out_of_reach). The same snapshot, read back by the rules."""

from __future__ import annotations

from stuck.model import Process, Recorded, Resource, Snapshot, Source, Thread, Wait
from stuck.rules import evaluate

NOW = 1000.0


def _semaphore_cycle(*extra: Thread, reachable: bool | None = None) -> Snapshot:
    """main holds an RLock and waits for a semaphore; holder holds its only permit and waits
    for the RLock. ``extra``: other threads of the process; ``reachable``: what the
    reachability pass said of the semaphore (None: not proven out of reach)."""
    def waiting(tid: str, name: str, rid: str, holds: str) -> Thread:
        return Thread(id=tid, name=name, state="blocked", holds=[holds],
                      waits=Wait(resource=rid, since=NOW - 5, durable=True, op="acquire"))

    return Snapshot(
        source=Source(kind="live", format="python"), taken_at=NOW,
        processes=[Process(pid=1, threads=[waiting("0x1", "main", "sem", "rl"),
                                           waiting("0x2", "holder", "rl", "sem"), *extra])],
        resources=[Resource(id="sem", kind="semaphore", label="sem", owners=["0x2"],
                            recorded=Recorded(wakers=[], free=0, reachable=reachable)),
                   Resource(id="rl", kind="rlock", label="rl", owners=["0x1"],
                            recorded=Recorded())])


def _the_deadlock(snap: Snapshot) -> tuple[str, list[str], str]:
    [finding] = [f for f in evaluate(snap) if f.kind == "deadlock"]
    return finding.confidence, finding.missing_evidence, finding.explanation


def test_a_semaphore_cycle_with_no_thread_left_able_to_run_is_certain() -> None:
    confidence, missing, explanation = _the_deadlock(_semaphore_cycle())
    assert confidence == "certain"
    assert not any("semaphore" in m for m in missing)
    assert "no thread outside this cycle can: none is left able to run" in explanation


def test_a_semaphore_cycle_out_of_reach_of_the_threads_able_to_run_is_certain() -> None:
    sleeper = Thread(id="0x3", name="sleeper", state="sleeping")
    confidence, _, explanation = _the_deadlock(_semaphore_cycle(sleeper, reachable=False))
    assert confidence == "certain"
    assert "none able to run can reach it" in explanation


def test_a_semaphore_cycle_a_thread_able_to_run_may_reach_is_probable() -> None:
    # The sleeper was never seen releasing it, but any thread may release a semaphore: the
    # rules take the recorded history (nobody ever released it), and say what that rests on.
    sleeper = Thread(id="0x3", name="sleeper", state="sleeping")
    snap = _semaphore_cycle(sleeper)
    snap.resource_map()["sem"].recorded = Recorded(wakers=["0x2"], free=0)
    confidence, missing, _ = _the_deadlock(snap)
    assert confidence == "probable"
    assert any("a semaphore can be released by any thread" in m for m in missing)


def test_a_thread_in_a_timed_wait_is_able_to_run() -> None:
    timed = Thread(id="0x3", name="poller", state="sleeping",
                   waits=Wait(resource="rl", since=NOW - 1, timeout=5.0, durable=False,
                              op="acquire"))
    snap = _semaphore_cycle(timed)
    snap.resource_map()["sem"].recorded = Recorded(wakers=["0x2"], free=0)
    confidence, _, _ = _the_deadlock(snap)
    assert confidence == "probable"
