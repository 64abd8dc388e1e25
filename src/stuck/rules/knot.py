"""The knot: waiters that nothing able to run can wake (the waker protocol).

``could_wake`` answers, for one waiter, "can anything able to run still end this wait?": a
lock's owner, a condition's past notifier, a queue's past producer or consumer, the executor
worker that would run a future, a thread being joined. ``stuck_set`` is its greatest fixed
point: start with every durably blocked thread as stuck; a thread leaves the set as soon as
something outside it could end its wait. Whatever remains can only be woken by threads that
are themselves stuck or dead: stuck for good.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TypeVar

from stuck.model import Thread
from stuck.rules.facts import INTERPRETER_EXIT, TASK_PREFIX, Facts, ResourceFacts, ThreadFacts
from stuck.rules.wording import name_of

Member = TypeVar("Member", int, str)


def greatest_knot(members: Iterable[Member],
                  can_end: Callable[[Member, set[Member]], str | None],
                  watch: Member | None = None,
                  ordered: bool = True) -> tuple[set[Member], dict[Member, str]]:
    """The greatest subset of ``members`` none of whose waits anything outside it can end.

    ``can_end(m, knot)``: why ``m``'s wait could still end, given that only the members of
    ``knot`` are stuck, or None. A member leaves the knot as soon as it has such a reason; the
    others are then looked at again, until none leaves. Returns the knot and, for each member
    that left it, the reason. ``watch``: stop once that member has left (the caller asks only
    about it). ``ordered``: look at the members in sorted order, so that the reasons never
    depend on hashing (the knot itself does not). Every source asks this: the watchdog over the snapshot's facts (``stuck_set``),
    and the walk done when a thread is about to block (``stuck.runtime.detect``) over the
    wait records around it."""
    knot = set(members)
    freed: dict[Member, str] = {}
    changed = True
    while changed and (watch is None or watch in knot):
        changed = False
        for m in sorted(knot) if ordered else list(knot):
            reason = can_end(m, knot)
            if reason is not None:
                knot.discard(m)
                freed[m] = reason
                changed = True
    return knot, freed


# Kinds a thread that did not take them may release: a plain Lock (used as a gate or a
# one-shot signal: take it, start a worker, take it again to wait for the worker's release).
# An RLock, or a Condition's lock, only its owner releases.
RELEASED_BY_ANYONE = frozenset({"mutex"})


def stuck_set(facts: Facts, unreachable: set[str] | None = None,
              any_releaser: bool = False) -> tuple[set[str], dict[str, str]]:
    """The greatest set of threads that only stuck or dead threads could wake.

    Returns the set and, for each thread that left it, the reason (for the negative cases a
    report may want to explain). ``unreachable``: resources the reachability pass proved no
    runnable thread can reach (their unknown wakers count as nobody). ``any_releaser``: a plain
    ``Lock`` may be released by any thread, not only its owner (the proof ``certain`` needs);
    without it, the owner is taken to be the one who releases it."""
    unreachable = unreachable or set()
    threads = facts.threads
    durable = [tid for tid, t in threads.items()
               if t.alive and t.wait is not None and t.wait.durable]
    return greatest_knot(
        durable, lambda tid, stuck: could_wake(threads[tid], facts, stuck, unreachable,
                                               any_releaser))


def can_run(tid: str, facts: Facts, stuck: set[str]) -> bool:
    t = facts.threads.get(tid)
    if t is None and tid.startswith(TASK_PREFIX):
        # An asyncio task holding a thread's lock across an await: tasks are the event-loop
        # rule's to judge (``facts_of`` leaves them out), so here its loop may resume it.
        return True
    return t is not None and t.alive and tid not in stuck


def out_of_reach(rid: str, facts: Facts, stuck: set[str], unreachable: set[str]) -> bool:
    """True when no thread outside ``stuck`` can use resource ``rid``: none is left able to
    run, or the reachability pass found that none able to run can reach it. Who used it so
    far then no longer matters: only the stuck threads could end a wait on it."""
    return rid in unreachable or not any(can_run(x, facts, stuck) for x in facts.threads)


def could_wake(t: ThreadFacts, facts: Facts, stuck: set[str],
                unreachable: set[str], any_releaser: bool = False) -> str | None:
    """Why ``t``'s wait could still end, or None when only stuck or dead threads could end it."""
    assert t.wait is not None
    res = facts.resources.get(t.wait.resource)
    if res is None:
        return "waits on something the instrumentation does not know"
    op = t.wait.op
    ready = already_over(res, op)
    if ready is not None:
        return ready
    if res.kind in ("mutex", "rlock") or (op == "acquire" and res.kind == "condition"):
        able = [o for o in res.owners if can_run(o, facts, stuck)]
        if able:
            return f"the owner {able[0]} can still run"
        if not res.owners:
            return "the lock is free"
        if any_releaser and res.kind in RELEASED_BY_ANYONE:
            others = sorted(x for x in facts.threads if x != t.id and can_run(x, facts, stuck))
            if others:
                return (f"a Lock may be released by any thread, and {name_of(facts, others[0])} "
                        "can still run")
        return None
    if res.id == INTERPRETER_EXIT:
        able = sorted(x for x, o in facts.threads.items()
                      if x != t.id and not o.daemon and can_run(x, facts, stuck))
        return f"{name_of(facts, able[0])} can still run" if able else None
    if op == "join" or res.kind == "thread":
        target = res.thread
        if target is None or can_run(target, facts, stuck):
            return "the joined thread can still run"
        target_facts = facts.threads.get(target)
        if target_facts is not None and not target_facts.alive:
            return "the joined thread has ended"
        return None
    if res.kind == "future":
        if res.wakers and any(can_run(w, facts, stuck) for w in res.wakers):
            return "a thread that completes it can still run"
        ex = facts.executors.get(res.executor) if res.executor else None
        if ex is None:
            return None if res.id in unreachable else "the future's executor is not known"
        if res.running:
            return None if not any(can_run(w, facts, stuck) for w in ex.workers) \
                else "a worker is running it"
        if ex.shutdown and not ex.workers:
            return None
        if any(can_run(w, facts, stuck) for w in ex.workers):
            return "an executor worker can still run it"
        return None
    if res.kind == "barrier":
        need = (res.parties or 0) - (res.n_waiting or 0)
        if res.broken:
            return "the barrier is broken: waiters get BrokenBarrierError"
        arrivers = [w for w in (res.wakers or set()) if can_run(w, facts, stuck)
                    and not waits_on(facts.threads[w], res.id)]
        used_by_all = len(res.wakers or ()) >= (res.parties or 0) or res.rounds > 0
        if res.id not in unreachable and not used_by_all:
            # Before a first full round, threads that never used the barrier may still
            # arrive; after it, its parties are the threads that used it.
            arrivers += [tid for tid, o in facts.threads.items()
                         if can_run(tid, facts, stuck) and tid not in (res.wakers or set())]
        return f"{len(arrivers)} thread(s) could still arrive" if len(arrivers) >= need \
            else None
    if res.kind == "queue" and op == "queue-join":
        # Queue.join() ends when every item put has been marked done, which the threads that
        # take the items do (task_done); a thread that never took one may still start to.
        takers = sorted(g for g in (res.getters or set()) if can_run(g, facts, stuck))
        if takers:
            return f"{name_of(facts, takers[0])} has taken from it before and can still run"
        if not res.getters and res.id not in unreachable and others_can_run(t, facts, stuck):
            return "nobody has taken from it yet; a thread able to run may"
        return None
    if res.kind == "queue" and op == "put":
        takers = [g for g in (res.getters or set()) if can_run(g, facts, stuck)]
        if takers:
            return f"{takers[0]} has taken from it before and can still run"
        if not res.getters and res.id not in unreachable and others_can_run(t, facts, stuck):
            return "nobody has taken from it yet; a thread able to run may"
        return None
    if res.kind == "semaphore":
        # No owner: a thread holding permits, able to run, may give one back.
        able = sorted(o for o in res.owners if o != t.id and can_run(o, facts, stuck))
        if able:
            return f"{name_of(facts, able[0])} holds a permit and can still run"
        if res.owners and not res.wakers and all(
                o in facts.threads and not facts.threads[o].alive for o in res.owners):
            # Every permit taken by threads that ended, none ever given back: as a Lock whose
            # owner ended, any thread able to run could still release one.
            if any_releaser:
                others = sorted(x for x in facts.threads
                                if x != t.id and can_run(x, facts, stuck))
                if others:
                    return (f"a semaphore may be released by any thread, and "
                            f"{name_of(facts, others[0])} can still run")
            return None
    # condition, event, queue get, semaphore: the threads that ever signalled it.
    wakers = res.wakers
    if wakers:
        able = sorted(w for w in wakers if can_run(w, facts, stuck))
        if able:
            return f"{able[0]} has signalled it before and can still run"
        return None
    if res.id in unreachable or not others_can_run(t, facts, stuck):
        return None
    return "nobody has signalled it yet; a thread able to run may"


def others_can_run(t: ThreadFacts, facts: Facts, stuck: set[str]) -> bool:
    """Whether any thread but ``t`` is able to run (and so could still use what nobody used
    yet): with none left, nothing can (a source that ran the reachability pass says the same
    with ``Recorded.reachable``)."""
    return any(x != t.id and can_run(x, facts, stuck) for x in facts.threads)


def already_over(res: ResourceFacts, op: str) -> str | None:
    """Why a wait on ``res`` is already over (the waiter has yet to run and notice), or None.

    The facts are read one primitive after another; a waiter just woken still shows its wait.
    """
    if res.kind == "queue" and res.size is not None:
        if op == "put" and (not res.maxsize or res.size < res.maxsize):
            return "the queue has room: the putter is about to go on"
        if op == "get" and res.size > 0:
            return "the queue holds items: the getter is about to go on"
    if res.kind == "event" and res.is_set:
        return "the event is set: the waiter is about to go on"
    if res.kind == "semaphore" and res.value:
        return "the semaphore has a free permit"
    if res.kind == "condition" and op == "wait" and res.in_flight > 0:
        return "a notify is on its way to a waiter"
    return None


def waits_on(t: ThreadFacts, rid: str) -> bool:
    return t.wait is not None and t.wait.resource == rid


# Thread states that run code by themselves, sooner or later: a running thread, one in I/O or
# asleep, and one whose state the source did not say.
CAN_PROGRESS: frozenset[str] = frozenset({"running", "io", "sleeping", "unknown"})


def can_progress(t: Thread) -> bool:
    """Could this thread, left alone, go on to run code (and so wake someone)? The question
    for a source that shows states but no wakers (a dump, a capture): a thread running, in
    I/O, asleep, or in a wait with a timeout, can."""
    if t.state in CAN_PROGRESS:
        return True
    return t.state == "blocked" and t.waits is not None and not t.waits.durable


def cycle_through(start: Member, inside: set[Member],
                  successors: Callable[[Member], Iterable[Member]]) -> list[Member] | None:
    """The shortest cycle through ``start`` that stays ``inside`` (a knot): the nodes from
    ``start`` on, each followed by one of its ``successors`` (who could end its wait), the last
    followed by ``start``; None when no successor path leads back. Breadth-first, linear in
    the edges. The walk done when a thread blocks and the rules for asyncio tasks both use it."""
    parent: dict[Member, Member] = {}
    queue = deque([start])
    last: Member | None = None
    while queue and last is None:
        t = queue.popleft()
        for h in successors(t):
            if h == start:
                last = t
                break
            if h in inside and h not in parent:
                parent[h] = t
                queue.append(h)
    if last is None:
        return None
    path = [last]
    while path[-1] != start:
        path.append(parent[path[-1]])
    path.reverse()
    return path

