"""Snapshot -> Report: what is not a rule around ``stuck.rules.evaluate``.

A source that reads threads from stacks (a dump parser, ``stuck capture``) hands its snapshot
here. Before the rules: threads whose source gave no state are classified from their native
frames (``infer_native_waits``), and a process's "no progress for N s" becomes the duration
of each of its waits. Then ``stuck.rules.evaluate`` applies the rules (the same ones, in the
same order, for every source: ``stuck.rules.engine``). After: threads with the same stack are
grouped for the report.
"""

from __future__ import annotations

from collections.abc import Iterable

from stuck.groups import GroupKey, group_key
from stuck.model import Finding, Group, Report, Resource, Snapshot, Wait
from stuck.rules import HANG_AFTER, ReadFacts, evaluate
from stuck.stacks.native import base_name, classify


def infer_native_waits(snapshot: Snapshot, prefix: str = "inferred") -> None:
    """Classify threads whose source gave no state, adding a Wait and Resource where blocked."""
    existing = {r.id for r in snapshot.resources}
    for proc_index, proc in enumerate(snapshot.processes, start=1):
        for t in proc.threads:
            if t.state != "unknown" or t.waits is not None:
                continue
            if t.frames and (t.frames[0].file or "").endswith(".py"):
                continue  # a Python frame: its parser already said all it could
            c = classify(t.frames)
            t.state = c.state
            if c.kind is None or c.state != "blocked":
                continue
            rid = f"{prefix}{proc_index}:{t.id}:{c.kind}"
            if rid not in existing:
                where = c.at.function if c.at is not None else (
                    t.frames[c.primitive].function if c.primitive is not None else "?")
                snapshot.resources.append(
                    Resource(id=rid, kind=c.kind, label=f"(unnamed, in {base_name(where)})"))
                existing.add(rid)
            t.waits = Wait(resource=rid, durable=c.durable, at=c.at)


def analyze(snapshot: Snapshot, stated: Iterable[Finding] = (),
            inferred: dict[str, str] | None = None, hang_after: float = HANG_AFTER,
            unsure: dict[str, str] | None = None, sources: Iterable[str] = ()) -> Report:
    """Classify, infer, apply the rules and group stacks: the Report every format renders.
    ``stated``, ``inferred``, ``hang_after``, ``unsure`` and ``sources`` (``--source`` DIRs):
    see ``stuck.rules.ReadFacts``."""
    infer_native_waits(snapshot)
    for proc in snapshot.processes:  # "no progress for N s": every wait is at least that old
        if proc.no_progress_for is not None:
            for t in proc.threads:
                if t.waits is not None and t.waits.duration is None:
                    t.waits.duration = proc.no_progress_for
    findings = evaluate(snapshot, read=ReadFacts(list(stated), inferred or {}, hang_after,
                                                 unsure or {}, tuple(sources)))
    groups = _group_threads(snapshot)
    return Report(snapshot=snapshot, findings=findings, groups=groups)


def _group_threads(snapshot: Snapshot) -> list[Group]:
    """``stuck.groups.group_threads``, with each distinct frame list keyed once.

    Dump parsers share one frame list between threads with the same stack (100,000
    goroutines are usually a few hundred stacks), so the key is computed per list, not per
    thread. The groups, their order and ids are exactly those ``group_threads`` gives.
    """
    keys: dict[int, GroupKey] = {}
    groups: dict[GroupKey, Group] = {}
    for thread in snapshot.threads():
        frames = thread.frames
        fkey = keys.get(id(frames))
        if fkey is None:
            fkey = keys[id(frames)] = group_key(thread.state, frames)
        key = fkey if fkey[0] == thread.state else (thread.state, fkey[1])
        group = groups.get(key)
        if group is None:
            group = Group(id=f"g{len(groups) + 1}", threads=[], frames=list(frames),
                          state=thread.state)
            groups[key] = group
        group.threads.append(thread.id)
        thread.group = group.id
    return list(groups.values())


__all__ = ["HANG_AFTER", "analyze", "infer_native_waits"]
