"""Waits a snapshot of a working process shows all the time, which say nothing by themselves.

A dump is one instant. In a process that is doing its work, some thread is always caught in a
lock another thread holds for a moment, and some thread always waits for a future a pool
worker is computing. Neither is evidence of a hang unless the dump says how long the wait has
lasted, or shows that nothing which could end it is working:

- a mutex-like lock with no printed owner, while another thread of the same process is
  running code: the holder may well be that thread, inside its critical section; and one
  whose printed owner is running code: it is inside its critical section, and leaves it;
- a future (Java ``FutureTask``, ``concurrent.futures.Future``), while a pool worker of the
  same process is inside a task (running it, asleep or in I/O within it, or in a call the
  dump does not name): that worker's task may be the one the future waits for, and it will
  go on when its sleep or I/O ends. A worker blocked in a durable wait inside its task (on a
  future itself) is not working: that is how a pool starves itself.

A pool worker is recognised by its loop on the stack (``stuck.stacks.native.POOL_LOOP``:
``ThreadPoolExecutor.runWorker``, ``concurrent.futures.thread._worker``, ...); one parked in
that loop waiting for its next task is idle, not inside a task. A thread that runs one task
without a pool is recognised by the task's run frame (``TASK_RUN``): a FutureTask run on a
thread of its own, and a CompletableFuture's async task or stage (``supplyAsync``,
``thenApplyAsync``: ``Completion.run``), which runs on a new thread per task when the common
pool has a parallelism of 1 (machines with fewer than 3 CPUs); the future completes when that
frame returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stuck.model import OWNED_KINDS, Resource, Thread
from stuck.stacks.native import POOL_LOOP

# The frame that runs one task and completes its future when it returns, with or without a
# pool around it.
TASK_RUN = re.compile(r"^java\.util\.concurrent\.(?:FutureTask\.run|"
                      r"CompletableFuture\$(?:AsyncSupply|AsyncRun|Completion)\.run)$")

# A pool worker in one of these states inside a task goes on with it by itself ("unknown": off
# the CPU in a call the dump does not name, such as py-spy's view of time.sleep).
WORKING = frozenset({"running", "sleeping", "io", "unknown"})


def in_task(t: Thread) -> bool:
    """Is ``t`` a pool worker inside a task that will go on by itself (running, asleep, in
    I/O, or in a call the dump does not name, under the pool's loop), or a thread running
    one task of its own so?"""
    if t.state not in WORKING:
        return False
    return any(POOL_LOOP.search(f.function) or TASK_RUN.match(f.function) for f in t.frames)


class Working:
    """Whether any thread of one process runs code, and which are pool workers inside a task:
    each read at most once per process (the second only when a future wait asks), so judging
    every waiter stays linear in the dump."""

    def __init__(self, process_threads: Iterable[Thread]) -> None:
        self._threads = list(process_threads)
        self._running: bool | None = None
        self._running_ids: frozenset[str] | None = None
        self._in_task: frozenset[str] | None = None

    def runs(self, tid: str) -> bool:
        """Is thread ``tid`` of the process running code?"""
        if self._running_ids is None:
            self._running_ids = frozenset(t.id for t in self._threads if t.state == "running")
        return tid in self._running_ids

    def running(self) -> bool:
        """Is a thread of the process running code? (A waiter is not: it is blocked.)"""
        if self._running is None:
            self._running = any(t.state == "running" for t in self._threads)
        return self._running

    def in_task_besides(self, tid: str) -> bool:
        """Is a pool worker other than ``tid`` inside a task?"""
        if self._in_task is None:
            self._in_task = frozenset(t.id for t in self._threads if in_task(t))
        return bool(self._in_task) and not (len(self._in_task) == 1 and tid in self._in_task)


def ordinary_wait(t: Thread, res: Resource | None, working: Working) -> bool:
    """Is ``t``'s wait one a working process shows at any instant (see the module's doc)?
    Only for a wait whose duration the source did not give."""
    if res is None or t.waits is None or t.waits.duration is not None:
        return False
    if res.owners:
        # an owner caught running is inside its critical section (only a duration, or a
        # second dump, would show that it never leaves)
        return res.kind in OWNED_KINDS and all(working.runs(o) for o in res.owners)
    if res.kind in OWNED_KINDS:
        return working.running()
    if res.kind == "future":
        return working.in_task_besides(t.id)
    return False
