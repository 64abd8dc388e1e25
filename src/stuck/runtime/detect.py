"""Deadlock detection at the moment a cycle forms: the wait-for walk done before blocking.

When a thread is about to block, it registers its wait and follows the chain: the resource it
waits for, the threads that could end that wait (a lock's owner, the thread being joined, the
threads that ever got from a full queue, the workers of a fully busy pool), what those threads
wait for, and so on. The last thread to block is the one that closes a cycle, so one walk, done
once before blocking, is enough: nobody has to poll.

A resource that several threads could free (a queue with two consumers, a pool's workers) ends
the wait if *any* of them runs, so the walk computes a knot: the largest set of blocked threads
each of whose possible wakers is also in the set. The thread is deadlocked when it is in that
set and a cycle through it exists; a thread stuck only behind an older cycle is a victim of
that one, not a new finding.

A plain ``Lock`` may be released by any thread, not only the one that took it (see
``_releasers_of``): a wait for one is part of a knot only once every other thread of the
program is stuck too. A cycle through Locks while some other thread can still run (a sleeping
thread that will open a Lock used as a gate) is left to the watchdog, which reports it as
probable after a while. The cycle itself follows holding edges only (the owner, the joined
thread); a thread whose wait makes an older, not yet provable cycle provable (the main thread
joining a deadlocked worker) reports that cycle.

Timed waits: another thread's timed wait ends by itself, so it never counts as stuck (that is
what keeps polling loops from looking deadlocked). The closing thread's own wait may be timed:
the cycle is then reported with lower confidence, and the ``raise``/``abort`` policies do not
apply, since the program chose to wait a bounded time and will see the timeout. A timed wait
closing a cycle that rests on inferred edges (a queue's past producers) is not reported, nor
is a cycle every wait of which is timed (a thread that tries, with a timeout, a Lock it holds
itself, as readers-writer locks' tests do to show a second writer is refused): it ends by
itself, with nothing left waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from stuck.rules.confidence import PROVEN_STEPS
from stuck.rules.knot import RELEASED_BY_ANYONE, cycle_through, greatest_knot
from stuck.runtime import framewalk, registry
from stuck.runtime.registry import WaitRecord
from stuck.runtime.tracked import kind_of
from stuck.tracebacks import hide_in_pytest

# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them).
__tracebackhide__ = hide_in_pytest()

MAX_THREADS_WALKED = 10_000  # a walk never visits more threads than this


@dataclass(slots=True)
class Step:
    """``thread`` waits (``record``) for something that ``next_thread`` could end."""

    thread: int
    record: WaitRecord
    next_thread: int


@dataclass(slots=True)
class Cycle:
    steps: list[Step]
    timed: bool  # the closing thread's own wait has a timeout
    # Every edge is proven by ownership (locks, joins): not inferred from past behaviour
    # (queues, pools, semaphores).
    proven: bool

    def key(self) -> frozenset[int]:
        """The waits of the cycle (``WaitRecord.serial``): the same while they last."""
        return frozenset(s.record.serial for s in self.steps)

    def dissolves(self) -> bool:
        """Every wait of the cycle has a timeout: each ends by itself, none is left waiting
        (a thread trying, with a timeout, a Lock it holds itself)."""
        return all(s.record.timeout is not None for s in self.steps)

    def threads(self) -> list[int]:
        return [s.thread for s in self.steps]


# Acquires of what a thread that did not take it may release (a plain Lock, a semaphore: see
# _releasers_of).
ANY_RELEASER_OPS = frozenset({*(f"acquire-{kind}" for kind in RELEASED_BY_ANYONE),
                              "acquire-semaphore"})


def op_key(record: Any) -> str:
    """What a wait is, for the rules: its operation, and for an acquire the primitive's kind
    (``acquire-mutex``, ``join``, ``get`` ...). ``record``: a thread's or a task's wait."""
    if record.op == "acquire":
        return "acquire-" + (kind_of(record.resource) or "?")
    return str(record.op)


def _releasers_of(thread: int, holders: list[int]) -> list[int]:
    """Who could end ``thread``'s wait for a plain ``Lock`` or a semaphore: its holders, and
    any other thread.

    Unlike an RLock, a Lock may be released by a thread that did not take it, and programs use
    that on purpose (a Lock as a gate or a one-shot signal: take it, start a worker, take it
    again to wait for the worker's release); a semaphore has no owner at all (a limiter: the
    main thread takes a slot, the worker it starts gives it back). stuck's own threads never
    will.
    """
    others = [t for t, at_exit in framewalk.read(_at_exit).items()
              if t != thread and t not in holders and t not in registry.own_idents
              and not at_exit]
    return [*holders, *others]


_SHUTDOWN_CODE = getattr(getattr(threading, "_shutdown", None), "__code__", None)


def _at_exit(frame: FrameType | None) -> bool:
    """True for the main thread at interpreter exit, joining the other threads: it runs no
    program code until they end, so it will release nothing."""
    depth = 0
    while frame is not None and depth < 4:
        if frame.f_code is _SHUTDOWN_CODE:
            return True
        frame = frame.f_back
        depth += 1
    return False


def in_shutdown(frame: FrameType | None) -> bool:
    """True for the main thread anywhere inside interpreter exit (``threading._shutdown``,
    the outermost frame of its stack then), a callable registered with
    ``threading._register_atexit`` and the waits it makes included, however deep: no code
    of the program is left below it to recover from an error. (``_at_exit`` looks only a
    few frames up, as it runs for every thread on the walk made when one blocks.) Another
    thread's frame is read inside a ``framewalk`` pass (``main_in_shutdown``)."""
    depth = 0
    while frame is not None and depth < 256:
        if frame.f_code is _SHUTDOWN_CODE:
            return True
        frame = frame.f_back
        depth += 1
    return False


def main_in_shutdown() -> bool:
    """``in_shutdown`` for the main thread's current stack."""
    main = threading.main_thread().ident
    return main is not None and framewalk.read_one(main, in_shutdown)


def joining_at_exit() -> bool:
    """True once the program has ended: its main thread is at interpreter exit past the
    callables registered with ``threading._register_atexit`` (threading marks it ended just
    before it joins the non-daemon threads), so it only waits for them now and will run no
    code of the program again. A main thread still in those callables (an executor joining
    its workers) is not there yet."""
    main = threading.main_thread()
    return framewalk.read_one(main.ident, _at_exit) and not main.is_alive()


def in_exit_callbacks() -> bool:
    """True while the main thread runs the interpreter's exit callbacks (``atexit``): the
    interpreter runs them after ``threading._shutdown`` has joined the other threads and marked
    the main thread ended, so an ended main thread that is not in ``_shutdown`` is there. An
    error raised into such a callback is printed and ignored by the interpreter, and the
    program exits 0: no code of the program is left to recover from it."""
    main = threading.main_thread()
    return main.ident is not None and not main.is_alive() \
        and not framewalk.read_one(main.ident, in_shutdown)


_ENDS_BY_ITSELF = "its wait ends by itself"
_WAKER_OUTSIDE = "a thread that could end it is outside the knot"


class _Walk:
    """The wait-for graph around one thread, read once from the registry."""

    def __init__(self, root: int, table: dict[int, WaitRecord],
                 any_releaser: bool = True) -> None:
        self.root = root
        self.table = table
        # A plain Lock may be released by any thread (the proof a finding needs); False: by
        # its holder only (to find the cycles a proof is still pending for).
        self.any_releaser = any_releaser
        self._wakers: dict[int, list[int] | None] = {}
        self._threads: tuple[list[int], int | None] | None = None  # see _releasers

    def wakers(self, thread: int) -> list[int] | None:
        if thread in self._wakers:
            return self._wakers[thread]
        record = self.table.get(thread)
        result: list[int] | None
        if record is None or (thread != self.root and record.timeout is not None):
            result = None
        else:
            result = record.waker_idents()
            if not result:
                result = None
            elif self.any_releaser and op_key(record) in ANY_RELEASER_OPS:
                result = self._releasers(thread, result)
        self._wakers[thread] = result
        return result

    def _releasers(self, thread: int, holders: list[int]) -> list[int]:
        """``_releasers_of``, with the program's threads read once per walk, not once per
        waiter: while one of them is not waiting, it alone (beside the holders) settles the
        knot (a waker that can run), so no list of every thread is made for each waiter."""
        if self._threads is None:
            others = [t for t, at_exit in framewalk.read(_at_exit).items()
                      if t not in registry.own_idents and not at_exit]
            running = next((t for t in others if t not in self.table), None)
            self._threads = (others, running)
        others, running = self._threads
        if running is not None:
            return holders if running in holders else [*holders, running]
        return [*holders, *(t for t in others if t != thread and t not in holders)]

    def holders(self, thread: int) -> list[int]:
        """The threads ``thread`` waits for by holding or being: the cycle's edges."""
        record = self.table.get(thread)
        if record is None:
            return []
        ws = record.waker_idents() or []
        if op_key(record) == "acquire-semaphore":
            # A semaphore has no owner: a thread taking more permits than are free waits for
            # another thread's release, not for itself.
            return [t for t in ws if t != thread]
        return ws

    def knot(self) -> set[int] | None:
        """The blocked threads reachable from the root that nothing outside can wake."""
        seen = {self.root}
        stack = [self.root]
        while stack:
            t = stack.pop()
            ws = self.wakers(t)
            if ws is None:
                continue
            for h in ws:
                if h not in seen:
                    if len(seen) >= MAX_THREADS_WALKED:
                        return None
                    seen.add(h)
                    stack.append(h)
        members = [t for t in seen if self.wakers(t) is not None]
        stuck, _ = greatest_knot(members, self._waker_outside, watch=self.root,
                                 ordered=False)
        return stuck if self.root in stuck else None

    def _waker_outside(self, thread: int, stuck: set[int]) -> str | None:
        """Why ``thread``'s wait could end from outside ``stuck`` (the rules' question). Only
        asked about members of the knot, whose wakers ``knot`` has already looked up."""
        ws = self._wakers.get(thread)
        if ws is None:
            return _ENDS_BY_ITSELF
        for h in ws:
            if h not in stuck:
                return _WAKER_OUTSIDE
        return None

    def cycle(self) -> Cycle | None:
        stuck = self.knot()
        if stuck is None:
            return None
        # None when the root is stuck only behind an older cycle: a victim, not a new deadlock
        return self._cycle_through(self.root, stuck)

    def _cycle_through(self, start: int, stuck: set[int]) -> Cycle | None:
        path = cycle_through(start, stuck, self.holders)
        if path is None:
            return None
        steps = [Step(t, self.table[t], path[i + 1] if i + 1 < len(path) else start)
                 for i, t in enumerate(path)]
        timed = any(self.table[t].timeout is not None for t in path)
        proven = all(op_key(s.record) in PROVEN_STEPS for s in steps)
        return Cycle(steps, timed, proven)


def _still_holds(cycle: Cycle) -> bool:
    """Read the chain a second time: every thread still in the same wait, every edge there.

    The hot path updates owners without a lock, so one read could mix two moments; a chain
    seen twice, with the same wait records, was real in between.
    """
    waits = registry.waits
    for step in cycle.steps:
        if waits.get(step.thread) is not step.record:
            return False
        ws = step.record.waker_idents()
        if ws is None or step.next_thread not in ws:
            return False
    return True


def _holder_running(me: int) -> bool:
    """The fast exit, the common case: a thread that holds what ``me`` waits for (or could
    end its wait) is not waiting itself, so it is running, or it waits on something no thread
    is needed for (a consumer in ``get`` whose queue has an item again, about to be woken):
    no cycle can close through it. Either way the walk would find no knot from ``me``."""
    waits = registry.waits
    record = waits.get(me)
    wakers = record.waker_idents() if record is not None else None
    if not wakers:
        return True
    for w in wakers:
        if w == me:
            continue
        other = waits.get(w)
        if other is None or not other.waker_idents():
            return True
    return False


def find_cycle(me: int) -> Cycle | None:
    """The deadlock cycle that ``me``'s registered wait closes, if any."""
    if _holder_running(me):  # no copy of the table, no walk
        return None
    cycle = _Walk(me, dict(registry.waits)).cycle()
    if cycle is None or (cycle.timed and not cycle.proven) or cycle.dissolves() \
            or not _still_holds(cycle):
        # timed and inferred: the closing wait ends by itself, and an edge read from past
        # behaviour (who put to a queue before) proves nothing about who will; every wait
        # timed: they all end by themselves. No finding.
        return None
    return cycle


def pending_cycle(me: int) -> bool:
    """True when ``me``'s wait closes a cycle of holding and waiting that is not proven yet: a
    thread outside it can still run, and could release a plain Lock of it."""
    if _holder_running(me):
        return False
    cycle = _Walk(me, dict(registry.waits), any_releaser=False).cycle()
    return cycle is not None and not (cycle.timed and not cycle.proven) \
        and not cycle.dissolves() and _still_holds(cycle)


def is_stuck(thread: int, table: dict[int, WaitRecord]) -> bool:
    """True when ``thread`` is blocked behind a knot (in a cycle or a victim of one)."""
    return _Walk(thread, table).knot() is not None


# Cycles found when a thread or task blocked that the policy (raise, abort) leaves to the
# watchdog until they are proven, by ``Cycle.key``: a rule that proves one reports it again,
# and the watchdog looks more often while one is still waiting.
_awaiting_proof: dict[frozenset[int], Cycle] = {}
MAX_AWAITING_PROOF = 1024


def await_proof(cycle: Cycle) -> None:
    """Remember that the policy waits for ``cycle`` to be proven (``policy.on_cycle``)."""
    if len(_awaiting_proof) >= MAX_AWAITING_PROOF:
        _awaiting_proof.clear()
    _awaiting_proof[cycle.key()] = cycle


def awaits_proof(cycle: Cycle) -> bool:
    """True when the policy left ``cycle`` (the same waits) to be proven later."""
    return cycle.key() in _awaiting_proof


def awaits_proof_of(records: Sequence[WaitRecord]) -> bool:
    """``awaits_proof`` of the cycle whose waits are ``records``."""
    return frozenset(r.serial for r in records) in _awaiting_proof


# The errors the watchdog proved for a cycle's closing thread, waiting in slices: ident ->
# (its wait record, the error). Raised by that thread at its next look (``wait``).
_proofs: dict[int, tuple[WaitRecord, BaseException]] = {}


def prove(threads: set[int], error: BaseException) -> bool:
    """The watchdog proved a finding among ``threads`` (idents): hand ``error`` to the thread
    that closed a cycle of theirs left to be proven, if it is still in that wait and waits in
    slices (it raises the error itself, where it can recover). True when one will."""
    for cycle in list(_awaiting_proof.values()):
        root = cycle.steps[0]
        if not isinstance(root.record, WaitRecord) or not root.record.pending \
                or registry.waits.get(root.thread) is not root.record \
                or not {s.thread for s in cycle.steps} <= threads:
            continue
        _proofs[root.thread] = (root.record, error)
        return True
    return False


def take_proof(me: int, record: WaitRecord) -> BaseException | None:
    """The error the watchdog proved for ``me``'s wait ``record``, if any (taken once)."""
    entry = _proofs.pop(me, None) if _proofs else None
    if entry is None or entry[0] is not record:
        return None
    return entry[1]


def proof_pending() -> bool:
    """True while a cycle left to the watchdog is still in place: every thread (or task) of
    it still in the wait it closed the cycle with. The others are forgotten."""
    if not _awaiting_proof:
        return False
    tasks = registry.tasks_module()
    for key, cycle in list(_awaiting_proof.items()):
        table: Any = registry.waits
        if tasks is not None and isinstance(cycle, tasks.TaskCycle):
            table = tasks.waits  # a task's wait is in the asyncio table, by id(task)
        if any(table.get(s.thread) is not s.record for s in cycle.steps):
            _awaiting_proof.pop(key, None)
    return bool(_awaiting_proof)


# What happens when a wait closes a cycle: the policy's decision (report, raise, abort). The
# policy module registers it when it is imported (``stuck.runtime`` imports it first thing);
# detection never imports the policy, which builds its reports out of detection's results.
_cycle_handler: Callable[[int, Any, bool], None] | None = None


def handle_cycles_with(handler: Callable[[int, Any, bool], None]) -> None:
    """Make ``handler(me, cycle, may_raise)`` the one called for every cycle a wait closes."""
    global _cycle_handler
    _cycle_handler = handler


def cycle_closed(me: int, cycle: Any, may_raise: bool) -> None:
    """Hand a cycle ``me``'s wait closes to the policy (a thread's, or a task's: ``me`` is
    then ``id(task)``). Raises what the policy raises."""
    handler = _cycle_handler
    if handler is not None:
        handler(me, cycle, may_raise)


def block_begin(me: int, record: WaitRecord, may_raise: bool) -> WaitRecord | None:
    """Register ``me``'s wait, look for the cycle it closes and apply the policy.

    Returns the wait record this one replaces (for ``registry.end_wait``). Under policy
    ``raise`` the DeadlockError propagates from here, with the wait already unregistered.
    """
    previous = registry.begin_wait(me, record)
    try:
        if _holder_running(me):  # the common case: no cycle closes here, none is pending
            return previous
        cycle = find_cycle(me)
        if cycle is not None and op_key(record) in SLICED_OPS and _rests_on_a_mutex(cycle):
            # It rests on "no other thread can release the Lock", and a thread just started
            # with _thread is not seen until it runs: look once more, a slice later.
            cycle, record.pending = None, True
        else:
            record.pending = cycle is None and pending_cycle(me)
    except Exception:  # detection must never break the program
        cycle = None
    if cycle is not None:
        try:
            cycle_closed(me, cycle, may_raise)
        except BaseException:
            registry.end_wait(me, previous)
            raise
        if op_key(record) in SLICED_OPS and awaits_proof(cycle):
            # Left to the watchdog: wait in slices, so that the error can be raised here,
            # in the thread that closed the cycle, once the watchdog proves it.
            record.pending = True
    return previous


def _rests_on_a_mutex(cycle: Any) -> bool:
    """The cycle holds only while no other thread releases a plain Lock of it."""
    return any(op_key(s.record) == "acquire-mutex" for s in cycle.steps)


def _threads_starting() -> int:
    return registry.threads_starting()


RECHECK = 0.1  # seconds between checks of a cycle whose proof is pending
# The waits whose call sites block through ``wait`` (and so honour ``WaitRecord.pending``):
# locks, joins, and waits on futures (``Future.result``/``exception``, ``wait``).
SLICED_OPS = frozenset({"acquire-mutex", "acquire-rlock", "join", "result"})


def wait(me: int, record: WaitRecord, wait_once: Callable[[float | None], bool],
         timeout: float | None, may_raise: bool) -> bool:
    """Block with ``wait_once(timeout)`` (None: forever; True when the wait ended).

    When ``record`` closed a cycle that is not proven yet (``block_begin`` set
    ``record.pending``: a thread outside the cycle can still run and could release a plain
    Lock of it), wait in slices and look again after each: once nothing outside can run, the
    cycle is proven, and the policy applies here, in the thread that closed it, which can still
    recover (under ``raise`` it holds what it held before the call). A Lock used as a gate,
    opened by a thread that was asleep, ends the wait before that.
    """
    if not record.pending:
        return wait_once(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while record.pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if wait_once(RECHECK if left is None else min(RECHECK, left)):
            return True
        proven = take_proof(me, record)
        if proven is not None:
            raise proven  # the watchdog proved the cycle this wait closed (see prove)
        try:
            cycle = find_cycle(me)
            if cycle is not None and _rests_on_a_mutex(cycle) and _threads_starting():
                # A thread started with _thread has not run yet: it can release the Lock.
                cycle, record.pending = None, True
            else:
                record.pending = cycle is None and pending_cycle(me)
        except Exception:  # detection must never break the program
            cycle, record.pending = None, False
        if cycle is not None:
            cycle_closed(me, cycle, may_raise)  # raise: propagates to the caller
            # A cycle the policy left to the watchdog: keep looking for its proof.
            record.pending = awaits_proof(cycle)
        if deadline is not None and time.monotonic() >= deadline:
            return False
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    return wait_once(left)
