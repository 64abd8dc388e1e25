"""asyncio: tracked Lock, Event, Condition, Semaphore, BoundedSemaphore and Queues, and tasks
in the wait-for graph.

A task is a thread of the model (id ``task:<name>``): it can hold a Lock or a Semaphore permit
and wait for a primitive, for another task (``await task``, ``wait_for(task)``), for a
``gather`` or for the tasks of a ``TaskGroup``.

What is recorded, and when:

- Holding: an uncontended ``async with lock:`` stores the owner task on the lock (one dict
  lookup to find the current task, one attribute store); a Semaphore permit is counted per
  task. Nothing shared is touched.
- Waiting on a tracked primitive: only when the task is about to block (a contended acquire, a
  ``get`` on an empty queue, a ``put`` on a full one, a wait on an Event or Condition) is a wait
  record put in ``waits`` (keyed by ``id(task)``), removed when the wait ends.
- Waiting on a task, a gather or a TaskGroup is not recorded at all: the task's own
  ``_fut_waiter`` (the future it is suspended on) says it, and is read only when the wait-for
  graph is walked, so ``await`` costs nothing extra.

Detection happens at the moment a task would block on a tracked primitive: the walk goes from
the task to the primitive, to the task that could end the wait (a lock's owner, a queue's past
producers or consumers, a semaphore's holders), to what that task waits for, and so on, using
the same knot-and-cycle walk as threads (``stuck.runtime.detect``). A closed cycle is handed to
the configured policy (``stuck.runtime.policy``), whose ``raise`` makes the blocking call raise
``DeadlockError`` inside the task that closed the cycle. A wait that something already scheduled
on the loop will end is never counted as stuck: a timer (``asyncio.timeout``, ``wait_for`` with
a timeout, ``sleep``) or a callback bound to the task, its future or the primitive (a
``call_soon(task.cancel)``, a ``call_later(delay, lock.release)``).

A cycle closed by an ``await`` of a task is not seen at that moment (awaiting a task is not
intercepted); the watchdog finds it once every task of a loop waits on a tracked primitive or
on another task, and the loop has no callback ready, no timer and no I/O to watch, so nothing
inside the loop can ever run again. It then records that the loop was seen stalled
(``mark_stalled_loops``: ``model.EventLoop``), and ``stuck.rules.evaluate`` judges its tasks
from the snapshot's facts: the cycles among them (``stuck.rules.taskcycle``), then the tasks no
cycle covers (``stuck.rules.loop``), as it does for a report asked for on demand and as
``stuck analyze`` does for a saved report.

A task may also wait for a thread: an asyncio future made by ``loop.run_in_executor`` or
``asyncio.wrap_future`` mirrors a ``concurrent.futures.Future`` (``internals.source_future``),
which only the thread running it completes (``futures.runner_of``). The walk follows it there
and on, lock owner after lock owner, through the threads' own waits (``walk.executor_chain``,
which picks the future a task's wait in the snapshot names; the chain is judged from the
snapshot by ``stuck.rules.executor``).
A thread lock the loop's thread holds is held by the task that took it and awaits inside its
``with`` when exactly one task has that code suspended in its await chain
(``walk.lock_takers``; the snapshot then names the task as the owner), else by the loop's
thread. When the chain comes back to the awaiting task, or to the thread of a loop with
nothing left to run, it is a deadlock; certain when no thread or task outside it can run
(one could release a plain Lock, or complete the future by hand:
``stuck.rules.confidence.task_thread_doubt``, which ``stuck analyze`` applies to the saved
report too). A call that is queued, runs, sleeps or does I/O ends by itself: no finding.

Everything here that reads a loop's or a task's state from outside the hot path (reports, the
watchdog) only reads attributes: it never calls user code and holds no lock while reading.

Where things are: ``internals`` is the one module that reads asyncio's private state (the running
task, what a task awaits, await chains, a loop's thread, scheduled callbacks and selector; the
tracked classes read only the state of the asyncio class each extends); ``waits`` is the wait table;
``primitives`` the tracked classes; ``walk`` the await-graph walk and the event-loop rule's
observations; ``names`` the task ids of the model; ``findings`` tasks, loops and primitives'
histories in the snapshot, and which cycles the watchdog reports (not those reported when
they formed, unless the policy waits for their proof).
"""

from __future__ import annotations

from stuck.runtime import registry
from stuck.runtime.aio.findings import (
    add_to_snapshot,
    extend_snapshot,
    finding_for,
    mark_quiet_loop,
    mark_stalled_loops,
    reported_when_formed,
    resource_for,
)
from stuck.runtime.aio.internals import pending_tasks
from stuck.runtime.aio.names import task_tid
from stuck.runtime.aio.primitives import (
    REPLACEMENTS,
    BoundedSemaphore,
    Condition,
    Event,
    LifoQueue,
    Lock,
    PriorityQueue,
    Queue,
    Semaphore,
    raise_in_task,
)
from stuck.runtime.aio.waits import TaskWait, _cycles_seen, waits
from stuck.runtime.aio.walk import TaskCycle, _suspended_since, settled
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

__all__ = [
    "REPLACEMENTS", "BoundedSemaphore", "Condition", "Event", "LifoQueue", "Lock",
    "PriorityQueue", "Queue", "Semaphore", "TaskCycle", "TaskWait", "add_to_snapshot",
    "extend_snapshot", "finding_for", "mark_quiet_loop", "mark_stalled_loops", "pending_tasks",
    "raise_in_task", "reported_when_formed", "reset", "resource_for", "settled", "task_tid", "waits",
]


def reset() -> None:
    """Forget the cycles already reported (``stuck.runtime.uninstall``)."""
    _cycles_seen.clear()
    _suspended_since.clear()


# Last: ``stuck.install()`` then ``import stuck.runtime.aio`` imports asyncio from in here, and
# asyncio's primitives can only be replaced once this module is complete (see
# ``stuck.runtime._track_asyncio``).
REPLACEMENTS_READY = True
# ``registry.tasks_module`` hands the module to other threads (the watchdog) only once it is
# whole.
LOADED = True
while registry.after_aio_import:
    registry.after_aio_import.pop(0)()


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
