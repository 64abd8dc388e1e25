"""One set of rules over the model, for every source.

Every source hands ``evaluate`` a ``Snapshot`` and gets its findings from it: the watchdog of a
live process, a saved live report, a dump (``stuck analyze``), ``stuck capture``, and the final
state of a ``stuck explore`` run. What a source knows, it states as model fields: recorded facts
(``Wait.op``, ``Thread.ended``, ``Resource.owners``, ``Resource.recorded``) from a live
process; the state, wait and printed owners of each thread read from its stack, plus what the
text stated beside the stacks (``ReadFacts``), from a dump or a capture. The evidence differs,
and so does what a finding can claim: a dump has no waker declarations or epochs, so a stall
read from it rests on which threads its stacks show able to run, and names what the dump lacks
(``missing_evidence``). Each idea is one module:

- ``facts``: the recorded fields the rules read, indexed from a ``Snapshot``, and what a
  source that reads stacks states beside its snapshot (``ReadFacts``);
- ``reading``: the facts read from stacks, indexed once (``Reading``);
- ``knot``: the waker protocol (can anything able to run end this wait?) and the set of
  waiters nothing able to run can wake, for the watchdog's facts and for the walk done when a
  thread is about to block; ``can_progress`` for a source that shows states but no wakers;
- ``graph``: the wait-for graph of a snapshot (cycles, roots, victims);
- ``known``: waits a library's known behaviour explains (``stuck.knowledge``), and who could
  end them;
- ``cycle``: deadlock, a closed cycle of holding and waiting, over recorded facts;
- ``deadlock``: the same over read facts, a closed cycle of the wait-for graph;
- ``stated``: what the runtime stated beside the stacks (a JVM's deadlock section, lockdep);
- ``quiescence``: Go's own semantics for a goroutine dump in which nothing runs;
- ``standstill``: a process read from stacks in which no thread can run;
- ``stall``: a recorded wait nothing can end without a cycle, and why;
- ``unwoken``: a wait read from stacks that nothing able to run will end;
- ``between``: a pool of workers waiting for work beside a thread that will run again (asleep,
  in a wait with a deadline): one snapshot of an idle pool between batches, so no claim, a
  note;
- ``evidence``: a stall only a library's own words (log lines, printed fields) reveal;
- ``unnamed``: a join on a thread stopped in a call a Python dump does not name (a lock, a
  sleep and I/O look alike), nothing seen running: a possible hang, and what would decide it;
- ``executor``: an asyncio task holding a lock across the await of a call whose thread waits
  (lock owner after lock owner) for it: a deadlock through the executor;
- ``taskcycle``: cycles among the tasks of a stalled event loop (who could end each wait read
  from the model), and the finding of a cycle among tasks (its words and confidence, as a
  thread cycle's; the proof on a stalled loop), also for one the walk done when a task blocks
  found;
- ``loop``: an asyncio event loop nothing can wake, from the loop's facts a live source
  recorded (``model.EventLoop``) and its tasks' waits: the tasks no cycle covers, as one stall;
- ``hang``: a thread without progress past the watchdog's limit, or a long wait read from
  stacks, that no other rule explains;
- ``behind``: the threads blocked behind a finding;
- ``contention``: the waits any snapshot of a working process shows (a lock while another
  thread runs, a future while a pool worker is inside a task), which say nothing by themselves;
- ``signaller``: threads blocked on a lock a stalled waiter is shown to hold, which may be the
  ones that would signal it;
- ``confidence``: what ``certain`` and ``probable`` rest on;
- ``wording``: the words every finding shares; ``advice``: the command that shows what a dump
  lacks;
- ``engine``: the order in which the rules apply, for recorded facts and for read facts, and
  the asyncio rules after both (``with_loops``).

asyncio: the live runtime (``stuck.runtime.aio``) reads the loops and tasks and puts what it
saw in the snapshot (tasks as threads with ``Wait.op``, each loop's ``EventLoop`` facts, which
loops it saw stalled, a primitive's history on its ``Resource``, ended tasks as dead threads);
``evaluate`` judges those fields for every source: the cycles among the tasks of a stalled loop
(``taskcycle.loop_cycles``), the executor chains, and the stall of the tasks they leave. The
watchdog, the report asked for on demand (a signal, ``stuck.snapshot()``), ``stuck explore``'s
watch of a loop and ``stuck analyze`` of a saved report all call it, so all say the same. The
walk done when a task is about to block
(``stuck.runtime.aio.walk``) stays a fast path over the live tasks, as the one for threads;
the finding of the cycle it finds is made here (``taskcycle.task_cycle_finding``).

Nothing here imports ``stuck.runtime``, ``stuck.dumps``, ``stuck.capture``, ``stuck.explore``
or ``stuck.analysis``: the rules read the model only, so the same snapshot gets the same
verdict from every command.
"""

from __future__ import annotations

from stuck.model import Finding, Snapshot
from stuck.rules.engine import judge, judge_both, judge_recorded
from stuck.rules.facts import HANG_AFTER, ReadFacts, facts_of, has_recorded_facts, recorded_part


def evaluate(snapshot: Snapshot, *, settle: float = 0.0,
             read: ReadFacts | None = None) -> list[Finding]:
    """The deadlocks, stalls and hangs the rules prove in ``snapshot``.

    ``settle``: seconds a recorded wait must have lasted to be judged (the watchdog gives
    waits a moment to end by themselves; a saved report is judged as it was saved, with 0).
    ``read``: given by a source that read its threads from stacks (a dump, a capture), with
    what it stated beside them: the rules for read facts apply to every thread, and the
    recorded rules decide the processes that carry recorded facts. Without it only recorded
    facts are judged, and threads without them are left alone: nothing is claimed about them.
    Either way the asyncio rules then judge the event loops the snapshot describes
    (``Snapshot.loops``, the tasks as its threads)."""
    if read is None:
        return judge_recorded(snapshot, settle)
    return judge_both(snapshot, read, settle)


__all__ = ["HANG_AFTER", "ReadFacts", "evaluate", "facts_of", "has_recorded_facts", "judge",
           "recorded_part"]
