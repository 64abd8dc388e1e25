"""Who may be the signaller of a stalled wait: a thread blocked on a lock the waiter holds.

A condition (``pthread_cond_wait``, ``Object.wait``, ``Condition.await``), a latch or a
semaphore names no owner, so a dump cannot say which thread would signal it. But signalling
is nearly always done under a lock that guards the state the waiter checks; when the waiter
holds such a lock while it waits (a lock other than the one the wait releases), every thread
that needs that lock to get to its signal blocks on it, behind the waiter. Such a thread is
not merely a victim of the stall: if it is the signaller, the two wait for each other (a
deadlock through the condition). Only the owner print (gdb ``print *mutex``, jstack's
``- locked`` lines) shows the waiter holds the lock; without it nothing is claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stuck.model import OWNED_KINDS, Resource
from stuck.rules.graph import WaitGraph


def blocked_on_waiters_locks(waiters: Iterable[str], behind: Iterable[str], graph: WaitGraph,
                             resources: Mapping[str, Resource]) -> list[tuple[str, str, str]]:
    """(thread, lock, holder): the threads of ``behind`` that wait directly for a lock one of
    ``waiters`` is shown to hold."""
    waiting = set(waiters)
    out = []
    for tid in behind:
        rid = graph.waits_on.get(tid)
        res = resources.get(rid) if rid is not None else None
        if rid is None or res is None or res.kind not in OWNED_KINDS:
            continue
        holder = next((o for o in graph.owned_by.get(rid, ()) if o in waiting), None)
        if holder is not None:
            out.append((tid, rid, holder))
    return out
