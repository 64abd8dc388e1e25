"""``stuck.rules.evaluate`` on facts read from stacks (``read=ReadFacts(...)``), as a dump or a
capture states them: states, waits and printed owners, no waker declarations or epochs.

The same entry judges recorded facts (the watchdog, a saved live report): a cycle is told in
the same words whichever facts it was found in."""

from __future__ import annotations

from stuck.model import Finding, Process, Recorded, Resource, Snapshot, Source, Thread, Wait
from stuck.rules import ReadFacts, evaluate

NOW = 1000.0


def _join_holding(recorded: bool) -> Snapshot:
    """main holds mutex ``registry`` and joins worker; worker waits for ``registry``. As a
    dump shows it (``recorded=False``: owners only), or as a live source records it."""
    def blocked(tid: str, rid: str, op: str, holds: list[str]) -> Thread:
        return Thread(id=tid, name=tid, state="blocked", holds=holds,
                      waits=Wait(resource=rid, durable=True,
                                 **({"since": NOW - 5, "op": op} if recorded else {})))

    return Snapshot(
        source=Source(kind="live" if recorded else "dump", format="python"), taken_at=NOW,
        processes=[Process(pid=1, complete=True, threads=[
            blocked("main", "join-worker", "join", ["registry"]),
            blocked("worker", "registry", "acquire", [])])],
        resources=[Resource(id="join-worker", kind="thread", label="worker", owners=["worker"],
                            recorded=Recorded(joins="worker") if recorded else None),
                   Resource(id="registry", kind="mutex", label="registry", owners=["main"],
                            recorded=Recorded() if recorded else None)])


def _deadlock(findings: list[Finding]) -> Finding:
    [finding] = findings
    assert finding.kind == "deadlock"
    return finding


def test_a_cycle_read_from_stacks_is_told_in_the_words_of_a_cycle_found_live() -> None:
    read = _deadlock(evaluate(_join_holding(recorded=False), read=ReadFacts()))
    live = _deadlock(evaluate(_join_holding(recorded=True)))
    assert set(read.threads) == set(live.threads) == {"main", "worker"}
    steps = ["main joins worker", "worker waits for registry held by main"]
    for step in steps:
        assert step in read.explanation, read.explanation
        assert step in live.summary, live.summary
    assert "to finish, held by" not in read.explanation  # a join is no lock a thread holds


def test_read_facts_are_judged_only_when_the_source_says_it_read_them() -> None:
    # Without ``read`` only recorded facts count (the watchdog's, explore's): a dump's waits
    # have none, so nothing is claimed; with it, the rules for read facts apply.
    snap = _join_holding(recorded=False)
    assert evaluate(snap) == []
    assert _deadlock(evaluate(snap, read=ReadFacts())).confidence == "certain"


def test_a_wait_read_from_stacks_that_nothing_can_end_is_a_stall_at_most_probable() -> None:
    # An Event nobody in the process can set: every other thread is blocked behind it. A dump
    # shows no waker declarations, so the claim rests on the states it shows: probable.
    snap = Snapshot(
        source=Source(kind="dump", format="python"),
        processes=[Process(pid=1, complete=True, threads=[
            Thread(id="main", name="main", state="blocked",
                   waits=Wait(resource="join-w", durable=True)),
            Thread(id="w", name="w", state="blocked",
                   waits=Wait(resource="ready", durable=True))])],
        resources=[Resource(id="join-w", kind="thread", label="w", owners=["w"]),
                   Resource(id="ready", kind="event", label="ready")])
    [stall] = evaluate(snap, read=ReadFacts())
    assert (stall.kind, stall.confidence) == ("stall", "probable")
    assert stall.threads == ["w"] and stall.blocked_behind == ["main"]
    assert any("how long the threads have waited" in m for m in stall.missing_evidence)


def test_a_cycle_through_a_resource_the_source_is_unsure_of_is_at_most_probable() -> None:
    # A capture that could not read every process able to touch a resource says so
    # (``ReadFacts.unsure``): the rules, not the source, lower what the finding claims.
    why = "the memory maps of pid 7 could not be read"
    sure = _deadlock(evaluate(_join_holding(recorded=False), read=ReadFacts()))
    unsure = _deadlock(evaluate(_join_holding(recorded=False),
                                read=ReadFacts(unsure={"registry": why})))
    assert (sure.confidence, unsure.confidence) == ("certain", "probable")
    assert why in unsure.missing_evidence and why not in sure.missing_evidence
    other = _deadlock(evaluate(_join_holding(recorded=False),
                               read=ReadFacts(unsure={"elsewhere": why})))
    assert other.confidence == "certain"  # only a finding through that resource is doubted
