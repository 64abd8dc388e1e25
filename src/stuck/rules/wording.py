"""Words shared by every finding: thread names, what a thread is doing, how long it waited."""

from __future__ import annotations

from stuck.rules.facts import Facts, ThreadFacts, waited


def name_of(facts: Facts, tid: str) -> str:
    t = facts.threads.get(tid)
    return t.name if t is not None else tid


def state_of(facts: Facts, tid: str, stuck: set[str]) -> str:
    t = facts.threads.get(tid)
    if t is None:
        return "gone"
    if not t.alive:
        return t.ended or "ended"
    if tid in stuck and t.wait is not None:
        res = facts.resources.get(t.wait.resource)
        what = f"{res.kind} {res.label}" if res is not None else t.wait.resource
        return f"itself blocked for good on {what}"
    return "able to run"


def for_how_long(t: ThreadFacts, now: float) -> str:
    w = waited(t, now)
    return f" for {w:.1f} s" if w is not None else ""


def unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out
