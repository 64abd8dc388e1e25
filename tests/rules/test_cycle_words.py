"""How the rules tell a cycle (``stuck.rules.cycle.deadlock_finding``), whichever look found
it: from the thread that closed it, a self-deadlock as one, a timed wait a step less sure."""

from __future__ import annotations

from stuck.model import Edge
from stuck.rules.cycle import deadlock_finding
from stuck.rules.facts import Facts, ResourceFacts, ThreadFacts, ThreadWait

NOW = 1000.0


def _facts(*waits: tuple[str, str, float | None, float | None]) -> Facts:
    """Threads ``(name, lock it waits for, since, timeout)``, each waiting for an RLock."""
    threads = {name: ThreadFacts(id=name, name=name, wait=ThreadWait(
        resource=lock, op="acquire", durable=timeout is None, since=since, timeout=timeout))
        for name, lock, since, timeout in waits}
    resources = {lock: ResourceFacts(id=lock, kind="rlock", label=lock)
                 for _, lock, _, _ in waits}
    return Facts(threads=threads, resources=resources, now=NOW)


RING = [Edge("a", "la", "b"), Edge("b", "lb", "c"), Edge("c", "lc", "a")]


def test_a_timed_cycle_is_told_from_the_thread_whose_wait_began_last() -> None:
    facts = _facts(("a", "la", NOW - 9, None), ("b", "lb", NOW - 1, None),
                   ("c", "lc", NOW - 5, None))
    f = deadlock_finding(RING, facts, NOW)
    assert [e.thread for e in f.cycle] == ["b", "c", "a"]
    assert f.summary.startswith("3 threads wait for each other: b waits for lb held by c; ")
    assert "seen unchanged twice" in f.explanation


def test_a_cycle_of_untimed_waits_keeps_its_order() -> None:
    facts = _facts(("a", "la", None, None), ("b", "lb", NOW - 1, None), ("c", "lc", None, None))
    assert [e.thread for e in deadlock_finding(RING, facts, NOW).cycle] == ["a", "b", "c"]


def test_the_thread_that_closed_a_cycle_is_named_first() -> None:
    facts = _facts(("a", "la", NOW - 1, None), ("b", "lb", NOW - 9, None),
                   ("c", "lc", NOW - 5, None))
    f = deadlock_finding(RING, facts, NOW, closed_by="c")
    assert [e.thread for e in f.cycle] == ["c", "a", "b"]
    assert f.explanation.endswith("c closed the cycle by starting to wait.")
    assert "seen unchanged twice" not in f.explanation
    assert f.details["detected_by"] == "c"


def test_a_self_deadlock_is_explained_as_one() -> None:
    facts = _facts(("a", "la", NOW - 1, None))
    facts.resources["la"].kind = "mutex"
    f = deadlock_finding([Edge("a", "la", "a")], facts, NOW)
    assert f.summary == "a takes la, which it already holds (mutex is not reentrant)"
    assert f.explanation.startswith("a waits for la, which it holds itself: a lock that is not "
                                    "re-entrant, taken twice by one thread, waits forever")
    assert "the next one" not in f.explanation


def test_a_wait_with_a_timeout_makes_a_cycle_a_step_less_sure() -> None:
    facts = _facts(("a", "la", NOW - 1, 5.0), ("b", "lb", NOW - 2, None),
                   ("c", "lc", NOW - 3, None))
    f = deadlock_finding(RING, facts, NOW, closed_by="a")
    assert f.confidence == "probable"
    assert f.explanation.startswith("a waits with a timeout: the cycle ends when it expires")
