"""Blocked behind: threads stuck only because a finding's threads are.

A thread waiting for a lock a stuck thread holds, joining a stuck thread, or waiting for the
result of a task a stuck pool worker is running, is a victim of that finding, named in its
``blocked_behind``, not a finding of its own.
"""

from __future__ import annotations

from stuck.rules.facts import INTERPRETER_EXIT, Facts, ResourceFacts, ThreadFacts


def behind_another(t: ThreadFacts, res: ResourceFacts, stuck: set[str],
                   reported: set[str] | frozenset[str] = frozenset()) -> bool:
    """A wait that only threads stuck for another reason hold up: a lock one of them holds,
    a join of one of them, the interpreter's exit, a future whose task a thread of a deadlock
    already ``reported`` is running. (A future whose worker is stuck otherwise is a stall of
    its own, naming what the worker waits on.)"""
    assert t.wait is not None
    if res.id == INTERPRETER_EXIT:
        return True
    if (res.kind in ("mutex", "rlock") or (res.kind == "condition" and t.wait.op == "acquire")) \
            and any(o in stuck and o != t.id for o in res.owners):
        return True
    if res.kind == "future" and _runners(res) and all(
            w in reported and w != t.id for w in _runners(res)):
        return True
    return (t.wait.op == "join" or res.kind == "thread") and res.thread in stuck


def _runners(res: ResourceFacts) -> set[str]:
    """The threads running a future's task (its worker, once started): only they complete it."""
    return set(res.wakers or ()) if res.kind == "future" and res.running else set()


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
                                    or res.thread in frontier or res.id == INTERPRETER_EXIT
                                    or _runners(res) & frontier):
                out.append(tid)
                nxt.add(tid)
        frontier = nxt
    return sorted(out)
