"""Blocked behind: threads stuck only because a finding's threads are.

A thread waiting for a lock a stuck thread holds, or joining a stuck thread, is a victim of
that finding, named in its ``blocked_behind``, not a finding of its own.
"""

from __future__ import annotations

from stuck.rules.facts import INTERPRETER_EXIT, Facts, ResourceFacts, ThreadFacts


def behind_another(t: ThreadFacts, res: ResourceFacts, stuck: set[str]) -> bool:
    """A wait that only threads stuck for another reason hold up: a lock one of them holds,
    a join of one of them, the interpreter's exit."""
    assert t.wait is not None
    if res.id == INTERPRETER_EXIT:
        return True
    if (res.kind in ("mutex", "rlock") or (res.kind == "condition" and t.wait.op == "acquire")) \
            and any(o in stuck and o != t.id for o in res.owners):
        return True
    return (t.wait.op == "join" or res.kind == "thread") and res.thread in stuck


def blocked_behind(roots: list[str], facts: Facts, stuck: set[str], reported: set[str]) -> list[str]:
    out: list[str] = []
    frontier = set(roots)
    while frontier:
        nxt: set[str] = set()
        for tid, t in facts.threads.items():
            if tid in reported or tid in out or tid not in stuck or t.wait is None:
                continue
            res = facts.resources.get(t.wait.resource)
            if res is not None and (any(o in frontier for o in res.owners)
                                    or res.thread in frontier or res.id == INTERPRETER_EXIT):
                out.append(tid)
                nxt.add(tid)
        frontier = nxt
    return sorted(out)
