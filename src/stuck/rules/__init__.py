"""One set of rules over the model, for every source.

A live process (the watchdog), a saved live report given to ``stuck analyze``, and any other
source that states its facts as model fields (``Wait.op``, ``Thread.ended``,
``Resource.owners``, ``Resource.recorded``) get their deadlocks and stalls from ``evaluate``.
Each idea is one module:

- ``facts``: the fields the rules read, indexed from a ``Snapshot``;
- ``knot``: the waker protocol (can anything able to run end this wait?) and the set of
  waiters nothing able to run can wake, for the watchdog's facts and for the walk done when a
  thread is about to block; ``can_progress`` for a source that shows states but no wakers;
- ``cycle``: deadlock, a closed cycle of holding and waiting;
- ``graph``: the wait-for graph of a snapshot (cycles, roots, victims) the dump engine
  (``stuck.analysis``) walks;
- ``hang``: a thread without progress past the watchdog's limit that no other rule explains;
- ``stall``: a wait nothing can end without a cycle, and why;
- ``behind``: the threads blocked behind a finding;
- ``contention``: the waits any snapshot of a working process shows (a lock while another
  thread runs, a future while a pool worker is inside a task), which say nothing by themselves;
- ``signaller``: threads blocked on a lock a stalled waiter is shown to hold, which may be the
  ones that would signal it;
- ``confidence``: what ``certain`` and ``probable`` rest on;
- ``wording``: the words every finding shares;
- ``engine``: the rules applied in order to one set of facts.

Nothing here imports ``stuck.runtime``, ``stuck.dumps``, ``stuck.capture`` or
``stuck.explore``: the rules read the model only, so the same snapshot gets the same verdict
from every command.
"""

from __future__ import annotations

from stuck.model import Finding, Snapshot
from stuck.rules.engine import judge
from stuck.rules.facts import facts_of, has_recorded_facts, recorded_part


def evaluate(snapshot: Snapshot, *, settle: float = 0.0) -> list[Finding]:
    """The deadlocks and stalls the rules prove in ``snapshot``.

    ``settle``: seconds a wait must have lasted to be judged (the watchdog gives waits a
    moment to end by themselves; a saved report is judged as it was saved, with 0). Threads
    and resources without the facts the rules need (a dump's, which has no ``Wait.op`` or
    ``Resource.recorded``) are left alone: nothing is claimed about them."""
    facts, unreachable = facts_of(snapshot)
    return judge(facts, settle, unreachable)


__all__ = ["evaluate", "facts_of", "has_recorded_facts", "judge", "recorded_part"]
