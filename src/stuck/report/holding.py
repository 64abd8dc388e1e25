"""Who in a group of identical stacks waits for what and holds what.

Threads are grouped by their frames, but two threads with one stack can hold different locks
(``transfer`` holds ``accounts_lock`` and wants ``ledger_lock``; ``reconcile``, same code, holds
``ledger_lock`` and wants ``audit_lock``). Showing the first member's waits and holds for the
whole group would say something false of the others, so a group lists each distinct
combination with the threads it is true of. Linear in the group's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stuck.model import Group, Resource, Thread
from stuck.report.names import resource_name, thread_name

MAX_ROLES = 8  # distinct combinations listed per group
MAX_NAMES = 4  # thread names listed per combination


@dataclass(slots=True)
class Role:
    """One combination of wait and holds, and the threads of a group it is true of."""

    waits: str | None  # a Resource.id
    durable: bool
    holds: tuple[str, ...]
    threads: list[str] = field(default_factory=list)
    whole_group: bool = False  # every thread of the group: no need to name them

    def words(self, threads: dict[str, Thread], resources: dict[str, Resource]) -> str:
        parts = []
        if self.waits is not None:
            parts.append("waiting for " + resource_name(resources.get(self.waits), self.waits)
                         + ("" if self.durable else " (timed or I/O)"))
        if self.holds:
            parts.append("holding " + ", ".join(resource_name(resources.get(r), r)
                                                for r in self.holds))
        text = "; ".join(parts)
        if self.whole_group:
            return text
        names = ", ".join(thread_name(threads, t) for t in self.threads[:MAX_NAMES])
        if len(self.threads) > MAX_NAMES:
            names += f" and {len(self.threads) - MAX_NAMES} more"
        return f"{names}: {text}"


def group_roles(g: Group, threads: dict[str, Thread]) -> list[Role]:
    """The distinct (wait, holds) combinations of ``g``'s threads, in first-seen order; empty
    when no thread of the group waits or holds anything. At most MAX_ROLES, the last one
    standing for the rest when there are more."""
    roles: dict[tuple[str | None, bool, tuple[str, ...]], Role] = {}
    for tid in g.threads:
        t = threads.get(tid)
        if t is None:
            continue
        rid = t.waits.resource if t.waits is not None else None
        durable = t.waits.durable if t.waits is not None else True
        key = (rid, durable, tuple(t.holds))
        role = roles.get(key)
        if role is None:
            role = roles[key] = Role(rid, durable, key[2])
        role.threads.append(tid)
    out = [r for r in roles.values() if r.waits is not None or r.holds]
    if len(roles) == 1 and out:
        out[0].whole_group = True
    return out[:MAX_ROLES]
