"""The wait-for graph on hand-built snapshots: cycles, victims, roots."""

from __future__ import annotations

from stuck.analysis import analyze
from stuck.model import Process, Resource, Snapshot, Source, Thread, Wait
from stuck.rules.graph import WaitGraph


def snap(edges: dict[str, str | None], owners: dict[str, str]) -> Snapshot:
    """edges: thread -> resource it waits for; owners: resource -> owning thread."""
    threads = [Thread(id=t, state="blocked" if r else "running",
                      waits=Wait(resource=r) if r else None) for t, r in edges.items()]
    res = [Resource(id=r, kind="mutex", label=r, owners=[o]) for r, o in owners.items()]
    return Snapshot(source=Source(kind="dump"), processes=[Process(threads=threads)],
                    resources=res)


def test_victims_are_behind_the_cycle_not_in_it() -> None:
    s = snap({"A": "ra", "B": "rb", "V": "rb", "W": "rv"},
             {"ra": "B", "rb": "A", "rv": "V"})
    report = analyze(s)
    [f] = report.findings
    assert f.kind == "deadlock" and sorted(f.threads) == ["A", "B"]
    assert sorted(f.blocked_behind) == ["V", "W"]
    assert {e.thread for e in f.cycle} == {"A", "B"}


def test_self_wait_is_a_cycle_of_one() -> None:
    g = WaitGraph(snap({"A": "ra"}, {"ra": "A"}))
    [cycle] = g.cycles()
    assert [(e.thread, e.held_by) for e in cycle] == [("A", "A")]


def test_roots_follow_chains_and_stop_in_cycles() -> None:
    g = WaitGraph(snap({"A": "ra", "B": "rb", "C": None, "D": "rd", "E": "re"},
                       {"ra": "B", "rb": "C", "rd": "E", "re": "D"}))
    roots = g.roots()
    assert roots["A"] == roots["B"] == "C"
    assert roots["D"] in ("D", "E") and roots["E"] in ("D", "E")


def test_a_long_ring_has_one_cycle_found_iteratively() -> None:
    n = 50_000
    edges: dict[str, str | None] = {f"T{i}": f"r{i}" for i in range(n)}
    owners = {f"r{i}": f"T{(i + 1) % n}" for i in range(n)}
    [cycle] = WaitGraph(snap(edges, owners)).cycles()
    assert len(cycle) == n
