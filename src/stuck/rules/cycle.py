"""Deadlock: a closed cycle of holding and waiting among stuck threads.

Each thread of the cycle waits for what the next one holds (a lock) or is (a thread it joins);
edges read from behaviour (a queue's past consumers, a future's pool workers, a semaphore's
holders) make the cycle probable, not certain (``stuck.rules.confidence``), unless nothing
outside the cycle could use the resource: no thread is left able to run, or none able to run
can reach it (the reachability pass). Then only the stuck threads could end the wait, and the
cycle is certain.
"""

from __future__ import annotations

from stuck.model import Edge, Finding
from stuck.rules.confidence import cycle_confidence, timed_confidence
from stuck.rules.facts import Facts, ThreadFacts, waited
from stuck.rules.knot import can_run, out_of_reach
from stuck.rules.wording import (
    cycle_step,
    name_of,
    self_deadlock,
    unique,
    wait_for_each_other,
)


def holders(t: ThreadFacts, facts: Facts) -> list[str]:
    """The threads ``t`` waits for by holding: a lock's owners, the thread it joins."""
    if t.wait is None:
        return []
    res = facts.resources.get(t.wait.resource)
    if res is None:
        return []
    if t.wait.op == "join" or res.kind == "thread":
        return [res.thread] if res.thread is not None else []
    if res.kind in ("mutex", "rlock") or (
            res.kind == "condition" and t.wait.op == "acquire"):
        return list(res.owners)
    if res.kind == "semaphore":
        # No owner: the threads holding permits are among those that could release one, and
        # a thread waiting for more permits than are free does not wait for itself.
        return [o for o in res.owners if o != t.id]
    # Inferred from behaviour (a probable cycle): the threads that ever took from a full
    # queue, or put to an empty one; the workers of a future's pool.
    if res.kind == "queue" and t.wait.op == "put":
        return sorted(res.getters or ())
    if res.kind == "queue" and t.wait.op == "get":
        return sorted(res.wakers or ())
    if res.kind == "future":
        ex = facts.executors.get(res.executor) if res.executor else None
        return sorted(res.wakers or ()) or (list(ex.workers) if ex is not None else [])
    # A condition: the threads that ever notified it (a user-level lock, channel or wait group
    # built on one: the notifier is the thread that would release, take or finish).
    if res.kind == "condition" and t.wait.op == "wait":
        return sorted(w for w in res.wakers or () if w != t.id)
    return []


def held(e: Edge, facts: Facts) -> bool:
    """An edge of holding (a lock's owner, a joined thread), not one inferred from behaviour."""
    t = facts.threads[e.thread]
    res = facts.resources.get(e.waits_for)
    if t.wait is None or res is None:
        return False
    return t.wait.op == "join" or res.kind in ("thread", "mutex", "rlock") or (
        res.kind == "condition" and t.wait.op == "acquire")


def holding_cycles(stuck: set[str], facts: Facts) -> list[list[Edge]]:
    """Closed cycles of holding and waiting among ``stuck``: each thread waits for what the
    next one holds (a lock) or is (a thread it joins). One cycle per strongly connected part."""
    out: list[list[Edge]] = []
    covered: set[str] = set()
    for root in sorted(stuck):
        if root in covered:
            continue
        parent: dict[str, str] = {}
        frontier = [root]
        last: str | None = None
        while frontier and last is None:
            nxt: list[str] = []
            for x in frontier:
                for h in holders(facts.threads[x], facts):
                    if h == root:
                        last = x
                        break
                    if h in stuck and h not in parent and h not in covered:
                        parent[h] = x
                        nxt.append(h)
                if last is not None:
                    break
            frontier = nxt
        if last is None:
            continue
        path = [last]
        while path[-1] != root:
            path.append(parent[path[-1]])
        path.reverse()
        edges = []
        for i, x in enumerate(path):
            w = facts.threads[x].wait
            assert w is not None
            edges.append(Edge(thread=x, waits_for=w.resource,
                              held_by=path[i + 1] if i + 1 < len(path) else root))
        covered.update(path)
        out.append(edges)
    return out


def deadlock_finding(cycle: list[Edge], facts: Facts, now: float,
                     stuck: set[str] | None = None,
                     unreachable: set[str] | None = None,
                     closed_by: str | None = None) -> Finding:
    """The finding of a cycle among ``stuck`` (the knot it was found in). An inferred edge
    is proven when its resource is ``out_of_reach`` of every thread able to run.

    ``closed_by``: the thread whose wait closed the cycle as it began (the walk done when a
    thread is about to block): its wait is new, so the finding does not claim the waits were
    seen twice. None: the cycle was found by a later look (the watchdog, a saved report),
    which saw its waits unchanged twice. A cycle one wait of which has a timeout ends when it
    expires, if the program then lets go of what it holds: a step less sure."""
    cycle = as_it_closed(cycle, facts, closed_by)
    parts: list[str] = []
    for e in cycle:
        t = facts.threads[e.thread]
        res = facts.resources[e.waits_for]
        parts.append(f"{t.name} " + cycle_step(
            t.wait.op if t.wait is not None else None, res.kind, res.label,
            name_of(facts, e.held_by), e.held_by == e.thread))
    summary = parts[0] if len(cycle) == 1 else f"{wait_for_each_other(len(cycle))}: " \
        + "; ".join(parts)
    lasted = [w for e in cycle if (w := waited(facts.threads[e.thread], now)) is not None]
    longest = max(lasted, default=0.0)
    reached: list[Edge] = []  # inferred edges nothing outside the cycle can use
    if stuck is not None:
        reached = [e for e in cycle if not held(e, facts)
                   and out_of_reach(e.waits_for, facts, stuck, unreachable or set())]
    confidence, missing = cycle_confidence(
        {_edge_kind(e, facts) for e in cycle if e not in reached})
    timed = [t for e in cycle if (t := facts.threads[e.thread]).wait is not None
             and t.wait.timeout is not None]
    if timed:
        confidence = timed_confidence(confidence)
        explanation = (f"{timed[0].name} waits with a timeout: the cycle ends when it expires, "
                       "if the program then lets go of what it holds.")
    elif len(cycle) == 1 and cycle[0].held_by == cycle[0].thread:  # a self-deadlock
        t, res = facts.threads[cycle[0].thread], facts.resources[cycle[0].waits_for]
        explanation = (self_deadlock(t.name, res.label) if held(cycle[0], facts) else
                       f"{t.name} waits, without a timeout, for what only it could end; it "
                       "cannot go on.")
    else:
        explanation = ("Each thread waits, without a timeout, for what the next one holds or "
                       "would signal; none of them can go on.")
    if reached:
        names = unique([facts.resources[e.waits_for].label for e in reached])
        explanation += (" Who could end the wait on " + ", ".join(names) + " is not known from "
                        "ownership, but no thread outside this cycle can: "
                        + ("none is left able to run."
                           if not any(can_run(x, facts, stuck or set()) for x in facts.threads)
                           else "none able to run can reach it (stacks and module globals "
                                "searched)."))
    if closed_by is not None:
        explanation += f" {name_of(facts, closed_by)} closed the cycle by starting to wait."
    elif lasted:  # a source that times waits (live) saw them unchanged twice
        explanation += (f" The waits have lasted {longest:.1f} s and were seen unchanged twice, "
                        "with nothing released or signalled in between.")
    details: dict[str, object] = {"rule": "cycle", "waiting_seconds": round(longest, 3)}
    if closed_by is not None:
        details["detected_by"] = closed_by
    return Finding(
        kind="deadlock", confidence=confidence, summary=summary,
        explanation=explanation,
        threads=unique([e.thread for e in cycle]),
        resources=unique([e.waits_for for e in cycle]), cycle=cycle,
        missing_evidence=missing, details=details)


def as_it_closed(cycle: list[Edge], facts: Facts, closed_by: str | None = None) -> list[Edge]:
    """``cycle`` told from the thread that closed it: ``closed_by``, or else the thread whose
    wait began last, when the source timed every wait of it (a live run's watchdog, a saved
    report). So the watchdog tells a cycle in the order the report made when its last thread
    blocked did; a source that does not time waits keeps the order it was found in."""
    if closed_by is None:
        began = [t.wait.since if (t := facts.threads[e.thread]).wait is not None else None
                 for e in cycle]
        if any(b is None for b in began):
            return cycle
        start = max(range(len(cycle)), key=lambda i: began[i] or 0.0)
    else:
        start = next((i for i, e in enumerate(cycle) if e.thread == closed_by), 0)
    return cycle[start:] + cycle[:start]


def _edge_kind(e: Edge, facts: Facts) -> str:
    """The resource kind an edge goes through; a wait on a condition (not for its lock) reads
    as ``condition-wait``, an edge inferred from who notified it."""
    kind = facts.resources[e.waits_for].kind
    w = facts.threads[e.thread].wait
    if kind == "condition" and w is not None and w.op == "wait":
        return "condition-wait"
    if w is not None and w.op == "join":
        return "thread"
    if w is not None and w.op == "result":
        return "future"  # a wait for several futures at once too: only their runners end it
    return kind
