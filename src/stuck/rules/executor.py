"""A lock held across the await of a call whose thread waits for it: an asyncio task awaits a
call running in an executor (``loop.run_in_executor``, ``asyncio.wrap_future``), and the thread
running it waits, lock owner after lock owner, for a threading lock the task's own loop holds.

The facts are the model's: the task waits for the executor's future (``Wait.op`` ``result``),
whose one owner is the thread running the call (the only one that completes it); each thread's
wait (``acquire`` of a Lock or RLock, without a timeout, since when) and each lock's one owner; a
lock the loop's thread took inside a coroutine that still awaits within it is owned by that task
(the live source names it). Each step is then proven: only that thread completes the future,
only each lock's owner releases it.

- The chain comes back to the awaiting task: a closed cycle, a deadlock whether or not the loop
  goes on running other tasks (each thread must have waited since before the settle time).
- It ends at the loop's thread itself (the lock was taken outside any coroutine's own code, so
  which task holds it is not known), on a stalled loop: that thread runs no code until one of
  its tasks resumes, so it waits on the event loop (the resource of the loop's id, which its
  pending tasks own), which closes the cycle.

Certain when no thread or task outside it can run (``confidence.task_thread_doubt``).
"""

from __future__ import annotations

import os

from stuck.model import Edge, EventLoop, Finding, Resource, Snapshot, Thread
from stuck.rules.confidence import task_thread_doubt

MAX_CHAIN_STEPS = 16  # threads followed from an executor's worker, lock owner to lock owner
_OWNED_KINDS = frozenset({"mutex", "rlock"})  # released by their owner (what proves a step)
_AWAIT_OPS = frozenset({"await", "gather", "taskgroup"})  # waits on other tasks

Chain = list[tuple[str, Resource, str]]  # (waiting thread, lock, its owner), from the worker on


def executor_deadlocks(snapshot: Snapshot, covered: set[str], settle: float = 0.0
                       ) -> list[Finding]:
    """The executor chains that close a cycle, in every loop of ``snapshot``, each with the
    tasks blocked behind it; their tasks are added to ``covered``. ``settle``: outside a
    stalled loop, each thread of the chain must have waited at least this long."""
    threads = snapshot.thread_map()
    resources = snapshot.resource_map()
    now = snapshot.taken_at
    out: list[Finding] = []
    for loop in snapshot.loops:
        stalled = loop.stalled and loop.quiet()
        cutoff = None if stalled or now is None else now - settle
        found = _closed(loop, threads, resources, covered, cutoff)
        if stalled:
            found += _through_loop_thread(loop, threads, resources, covered | _ids(found))
        for task, finding in found:
            members = {task} | _behind(loop, threads, resources, {task})
            finding.blocked_behind = [t for t in loop.tasks if t in members and t != task]
            covered |= members
            task_thread_doubt(finding, snapshot.threads())  # another thread able to run
            out.append(finding)
    return out


def _ids(found: list[tuple[str, Finding]]) -> set[str]:
    return {task for task, _ in found}


def _candidates(loop: EventLoop, threads: dict[str, Thread], resources: dict[str, Resource],
                covered: set[str]) -> list[tuple[Thread, Resource, Chain]]:
    out = []
    for tid in loop.tasks:
        task = threads.get(tid)
        if tid in covered or task is None or task.state == "dead" or task.waits is None \
                or task.waits.op != "result":
            continue
        future = resources.get(task.waits.resource)
        chain = executor_chain(task, future, loop, threads, resources) \
            if future is not None else None
        if future is not None and chain is not None:
            out.append((task, future, chain))
    return out


def _closed(loop: EventLoop, threads: dict[str, Thread], resources: dict[str, Resource],
            covered: set[str], cutoff: float | None) -> list[tuple[str, Finding]]:
    out = []
    for task, future, chain in _candidates(loop, threads, resources, covered):
        if chain[-1][2] != task.id:
            continue
        if cutoff is not None and any(
                (w := threads[tid].waits) is None or w.since is None or w.since > cutoff
                for tid, _, _ in chain):
            continue
        out.append((task.id, _closed_finding(task, future, chain, loop, threads)))
    return out


def _through_loop_thread(loop: EventLoop, threads: dict[str, Thread],
                         resources: dict[str, Resource], covered: set[str]
                         ) -> list[tuple[str, Finding]]:
    loop_res = resources.get(loop.id)
    if loop_res is None:  # the source did not state the loop as a resource its tasks own
        return []
    out = []
    for task, future, chain in _candidates(loop, threads, resources, covered):
        if chain[-1][2] == loop.thread:
            out.append((task.id, _loop_thread_finding(task, future, chain, loop, loop_res,
                                                      threads)))
    return out


def _closed_finding(task: Thread, future: Resource, chain: Chain, loop: EventLoop,
                    threads: dict[str, Thread]) -> Finding:
    """A task holds a lock across an await of a call running in an executor, and the thread
    running it waits (lock owner after lock owner) for that lock: a closed cycle. Each step is
    owned: the future is running on its owner thread, only that thread completes it; each lock
    is held by the next thread; the last by the task, which resumes only when the future
    completes."""
    loop_name = loop_thread_name(loop, threads)
    name = task.name or task.id
    edges = [Edge(thread=task.id, waits_for=future.id, held_by=chain[0][0])]
    edges += [Edge(thread=tid, waits_for=lock.id, held_by=owner) for tid, lock, owner in chain]
    lock = chain[-1][1]
    taken = lock.acquired_at.get(task.id)
    where = f" at {os.path.basename(taken.file or '?')}:{taken.line}" if taken else ""
    lines = [
        f"{name} took lock {lock.label or lock.id}{where} on the event loop's thread "
        f"{loop_name} and awaits, still holding it, {called(future)} in an executor: a "
        "threading lock held across an await.",
        f"Only thread {thread_name(chain[0][0], threads)}, which is running that call, can "
        f"complete the future; the lock is released only when {name} resumes, which it does "
        "only once the future is complete."]
    if loop.quiet():
        lines.append(f"The event loop (thread {loop_name}) has no callback ready to run, no "
                     "timer scheduled and no I/O to watch.")
    else:
        lines.append(f"The event loop (thread {loop_name}) goes on running its other tasks; "
                     f"{name} will never resume.")
    return Finding(kind="deadlock", confidence="certain",
                   summary=f"{name} (on the event loop in thread {loop_name}) "
                           + chain_words(task, future, chain, loop, threads),
                   explanation="\n".join(lines), threads=[e.thread for e in edges],
                   resources=[future.id, *(lock.id for _, lock, _ in chain)], cycle=edges,
                   details=_details(future, loop_name))


def _loop_thread_finding(task: Thread, future: Resource, chain: Chain, loop: EventLoop,
                         loop_res: Resource, threads: dict[str, Thread]) -> Finding:
    """A task awaits a call whose thread waits (lock owner after lock owner) for a lock the
    loop's thread holds, taken where no one task can be named (in a plain function the task
    called, say). On a stalled loop (every task suspended, nothing ready, no timer, no I/O)
    the loop's thread runs no code until one of its tasks resumes, so it waits for them (on
    ``loop_res``, the event loop, which its pending tasks own), which closes the cycle."""
    loop_name = loop_thread_name(loop, threads)
    name = task.name or task.id
    assert loop.thread is not None  # the caller found the loop's thread
    edges = [Edge(thread=task.id, waits_for=future.id, held_by=chain[0][0])]
    edges += [Edge(thread=tid, waits_for=lock.id, held_by=owner) for tid, lock, owner in chain]
    edges.append(Edge(thread=loop.thread, waits_for=loop_res.id, held_by=task.id))
    pending = [t for t in loop.tasks if (th := threads.get(t)) is not None and th.state != "dead"]
    until = name if len(pending) == 1 else "one of its tasks"
    lines = [
        f"The event loop's thread {loop_name} took the lock outside any coroutine's own code "
        f"(which task took it is not known) and still holds it; {name} awaits "
        f"{called(future)} in an executor, whose thread waits for that lock.",
        f"The event loop (thread {loop_name}) has no callback ready to run, no timer "
        f"scheduled and no I/O to watch: its thread runs no code, and so releases nothing, "
        f"until {until} resumes, which needs the future to complete."]
    return Finding(kind="deadlock", confidence="certain",
                   summary=f"{name} (on the event loop in thread {loop_name}) "
                           + chain_words(task, future, chain, loop, threads)
                           + f", which runs nothing until {until} resumes",
                   explanation="\n".join(lines), threads=[e.thread for e in edges],
                   resources=[future.id, *(lock.id for _, lock, _ in chain), loop_res.id],
                   cycle=edges, details=_details(future, loop_name))


def _details(future: Resource, loop_name: str) -> dict[str, object]:
    call = future.recorded.task if future.recorded is not None else None
    return {"rule": "executor-cycle", "event_loop_thread": loop_name, "callable": call or "?"}


def _behind(loop: EventLoop, threads: dict[str, Thread], resources: dict[str, Resource],
            stuck: set[str]) -> set[str]:
    """The tasks of ``loop`` that await only tasks in ``stuck`` or behind them (directly, in a
    gather or a TaskGroup): stuck behind them."""
    out: set[str] = set()
    grew = True
    while grew:
        grew = False
        for tid in loop.tasks:
            t = threads.get(tid)
            if tid in stuck or tid in out or t is None or t.waits is None \
                    or t.waits.op not in _AWAIT_OPS:
                continue
            res = resources.get(t.waits.resource)
            if res is not None and res.owners \
                    and all(o in stuck or o in out for o in res.owners):
                out.add(tid)
                grew = True
    return out


def thread_name(tid: str | None, threads: dict[str, Thread]) -> str:
    """A thread's name as the program gave it (its id when it has none)."""
    if tid is None:
        return "?"
    t = threads.get(tid)
    return (t.name or t.id) if t is not None else tid


def loop_thread_name(loop: EventLoop, threads: dict[str, Thread]) -> str:
    return thread_name(loop.thread, threads)


def task_name(tid: str, threads: dict[str, Thread]) -> str:
    t = threads.get(tid)
    if t is not None and t.name:
        return t.name
    return tid.removeprefix("task:")


def called(future: Resource) -> str:
    """``blocking()``: the call an executor's future runs, as a source named it."""
    call = future.recorded.task if future.recorded is not None else None
    return f"{call}()" if call else "a call"


def executor_chain(task: Thread, future: Resource, loop: EventLoop, threads: dict[str, Thread],
                   resources: dict[str, Resource]) -> Chain | None:
    """The chain from a task awaiting a call running in an executor to a lock held by the
    task's loop (its thread, or a task of it holding the lock across an await), when each step
    is proven: the future is running on its owner thread, each thread waits without a timeout
    to acquire a Lock or RLock, and each lock's one owner is the next thread. The steps as
    (waiting thread, lock, owner); None when any step is not so (the worker runs, sleeps, does
    I/O or waits with a timeout: the call may yet finish)."""
    if len(future.owners) != 1 or loop.thread is None:
        return None
    tid = future.owners[0]
    steps: Chain = []
    seen = {loop.thread}
    while len(steps) < MAX_CHAIN_STEPS:
        if tid in seen or tid.startswith("task:"):
            return None  # a cycle among threads: the thread rules' finding, not this one
        seen.add(tid)
        t = threads.get(tid)
        w = t.waits if t is not None else None
        if w is None or w.timeout is not None or w.op != "acquire":
            return None
        lock = resources.get(w.resource)
        if lock is None or lock.kind not in _OWNED_KINDS or len(lock.owners) != 1:
            return None
        owner = lock.owners[0]
        steps.append((tid, lock, owner))
        if owner == loop.thread or owner in loop.tasks:
            return steps
        tid = owner
    return None


def chain_words(task: Thread, future: Resource, chain: Chain, loop: EventLoop,
                threads: dict[str, Thread]) -> str:
    """``awaits blocking() running on thread asyncio_0, which waits for lock L held by ...``."""
    words = f"awaits {called(future)} running on thread {thread_name(chain[0][0], threads)}"
    for i, (_tid, lock, owner) in enumerate(chain):
        label = lock.label or lock.id
        if i + 1 < len(chain):
            words += f", which waits for lock {label} held by thread " \
                     f"{thread_name(owner, threads)}"
        elif owner == task.id:
            words += f", which waits for lock {label}, held by {task.name or task.id} " \
                     "itself across the await"
        elif owner != loop.thread:
            words += (f", which waits for lock {label}, held by task "
                      f"{task_name(owner, threads)} across an await")
        else:
            words += (f", which waits for lock {label}, held by the event loop's thread "
                      f"{loop_thread_name(loop, threads)}")
    return words
