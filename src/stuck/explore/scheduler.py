"""The controlled run: real OS threads, exactly one of which runs at a time.

Every controlled thread owns a *baton* (:mod:`stuck.explore.baton`) it waits on while it may not
run. At each synchronization operation the running thread calls :meth:`Scheduler.yield_point`,
which asks the strategy which runnable thread goes next; handing over means posting the next
thread's baton and waiting on one's own. Because only the scheduler ever blocks a controlled
thread, it knows the runnable set exactly: when it becomes empty and no timed wait is pending,
every controlled thread is blocked, and the verdict is decided at once (no timeout involved).

Tearing an execution down (deadlock, stall, hang) sets ``aborting`` and posts every baton: each
blocked thread then raises the private :class:`Aborted` at its synchronization point and unwinds,
so no controlled thread outlives its execution (its OS thread, when it comes from the
exploration's :class:`~stuck.explore.workers.WorkerPool`, parks for the next one; the pool's
threads end with the exploration).

Thread identity is the creation index (0 is the target's own thread), which is what strategies,
replay tokens and reports use: it does not depend on OS thread ids or on the Python version.
"""

from __future__ import annotations

import _thread
import contextlib
import sys
import traceback
from bisect import insort
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from stuck.explore.baton import EventBaton, LockBaton, SpentBaton

if TYPE_CHECKING:
    from stuck.explore.strategy import Strategy

_get_ident = _thread.get_ident

RUNNABLE = 0
BLOCKED = 1
FINISHED = 2


class Aborted(BaseException):
    """Raised inside a controlled thread when its execution is being torn down.

    A BaseException so that ``except Exception`` in the program does not swallow it.
    """


class Sleep:
    """The pseudo-resource of a thread in ``time.sleep`` (always ends when time advances)."""

    kind = "timer"
    key = (-1, -1)


SLEEP = Sleep()


class CThread:
    """The scheduler's record of one controlled thread."""

    __slots__ = (
        "baton",
        "baton_first",
        "created",
        "daemon",
        "deadline",
        "ident",
        "index",
        "name",
        "next_wait",
        "op",
        "pending",
        "pool_worker",
        "pyobj",
        "state",
        "timed_out",
        "waiting",
    )

    def __init__(self, index: int, name: str) -> None:
        self.index = index
        self.name = name
        self.baton: LockBaton | EventBaton = LockBaton()
        # True when the OS thread's first wait was on the baton itself (a pooled worker parked
        # on it), so the body must not wait for it again.
        self.baton_first = False
        self.state = RUNNABLE
        self.waiting: Any = None  # the primitive (or CThread, for join) it is blocked on
        self.op = ""  # the blocking operation: "acquire", "wait", "join", "get", ...
        self.deadline: float | None = None
        self.timed_out = False
        self.ident: int | None = None
        self.pyobj: Any = None  # the threading.Thread
        self.daemon = False
        self.pool_worker = False
        self.pending: Any = None  # resource of the operation it is about to do (for POS)
        # What this thread waits for first when it resumes, blocking and without a timeout: a
        # lock it takes or a thread it joins (None when it does anything else first). While
        # that lock is held by another thread or that thread runs, letting it run would only
        # block it again at once (see Scheduler._runner).
        self.next_wait: Any = None
        self.created = 0  # primitives created so far by this thread (stable resource keys)


@dataclass
class TraceEvent:
    """One synchronization step, recorded only when re-running a schedule for display."""

    step: int
    thread: int
    op: str
    resource: Any
    where: str  # file:line in the program's own code
    switched_from: int | None = None  # set when this step follows a switch of thread
    preemption: bool = False


@dataclass
class ThreadError:
    thread: int
    name: str
    exception: BaseException
    traceback: str


@dataclass
class History:
    """What an exploration learned across executions: who ever woke which primitive.

    Keys are stable resource keys (creator thread index, ordinal in that thread), so a condition
    notified by thread 2 in one execution is known to be notified by thread 2 in others. Each
    waker is kept with the serial number of the last execution it woke the primitive in: a
    verdict rests on its own execution's facts (``Scheduler.woke``), what other executions did
    is for its notes (``ever``). One dict store per wake, and nothing allocated once the
    primitive's wakers are known: it is on the path of every release, notify and put.
    """

    wakers: dict[tuple[int, int], dict[int, int]] = field(default_factory=dict)
    executions: int = 0  # serial number of the last execution started
    # Verdicts of final states already judged while searching (see verdict.blocked).
    verdicts: dict[tuple[object, ...], Any] = field(default_factory=dict)

    def ever(self, key: tuple[int, int] | None) -> set[int]:
        """The threads that woke the primitive ``key`` in any execution so far."""
        return set(self.wakers.get(key, ())) if key is not None else set()


# The one active scheduler (only one controlled execution runs at a time in a process).
_active: list[Scheduler | None] = [None]


def active() -> Scheduler | None:
    return _active[0]


def controlled() -> tuple[Scheduler, CThread] | None:
    """The active scheduler and the calling controlled thread, or None."""
    sched = _active[0]
    if sched is None:
        return None
    me = sched.by_ident.get(_get_ident())
    if me is None:
        return None
    return sched, me


_SKIP_FILES: tuple[str, ...] = ()


def _skip_files() -> tuple[str, ...]:
    global _SKIP_FILES
    if not _SKIP_FILES:
        import os
        import queue
        import threading

        here = os.path.dirname(os.path.abspath(__file__))
        paths = [here + os.sep, threading.__file__, queue.__file__]
        try:
            import concurrent.futures

            paths.append(os.path.dirname(concurrent.futures.__file__) + os.sep)
        except ImportError:  # pragma: no cover
            pass
        _SKIP_FILES = tuple(paths)
    return _SKIP_FILES


def user_frame(frame: Any) -> Any:
    """The innermost frame that belongs to the program (not stuck, threading, queue, futures)."""
    skip = _skip_files()
    f = frame
    while f is not None:
        if not f.f_code.co_filename.startswith(skip):
            return f
        f = f.f_back
    return frame


def where(frame: Any) -> str:
    f = user_frame(frame)
    if f is None:
        return "?"
    return f"{f.f_code.co_filename}:{f.f_lineno}"


class Judge(Protocol):
    """What an execution that ends stuck is called (``stuck.explore.verdict``, given by the
    engine: the verdict reads the scheduler's state, so the scheduler does not import it)."""

    def blocked(self, sched: Scheduler) -> Any: ...

    def hang(self, sched: Scheduler, me: CThread) -> Any: ...


class Scheduler:
    """One controlled execution."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        max_steps: int = 20_000,
        record: bool = False,
        history: History | None = None,
        starter: Callable[[Any], Any] | None = None,
        done: LockBaton | EventBaton | None = None,
        judge: Judge,
    ) -> None:
        self.strategy = strategy
        self.judge = judge
        # Asked once: a portfolio hands over its active member's choice, saving a call per step.
        chooser = getattr(strategy, "chooser", None)
        self._choose: Callable[[list[int], int, int], int] = (
            chooser() if chooser is not None else strategy.choose)
        # How a controlled thread's OS thread is started: a worker pool's ``start`` (which
        # returns the lock the worker is parked on: the thread's baton) or the primitives' own
        # ``Thread.start`` minus its wait (which returns None).
        self.starter = starter
        self.max_steps = max_steps
        self.threads: list[CThread] = []
        self.runnable: list[int] = []
        self.by_ident: dict[int, CThread] = {}
        self.by_thread: dict[int, CThread] = {}  # id(threading.Thread) -> CThread
        self.step = 0
        self.switches = 0  # real hand-overs between OS threads (what an execution mostly costs)
        self.choices: list[int] = []
        self.trace: list[TraceEvent] | None = [] if record else None
        self.record = record
        self.history = history if history is not None else History()
        self.now = 0.0
        self.aborting = False
        self.live = 0
        self.current: CThread | None = None
        self.errors: list[ThreadError] = []
        self.uncontrolled: list[str] = []
        self.outcome: Any = None  # a Verdict, set once when the execution ends
        # Posted once when the execution is over (the engine waits on it).
        self.done: LockBaton | EventBaton | SpentBaton = done if done is not None else LockBaton()
        self.last_switch_from: int | None = None
        self.sites: dict[tuple[int, int], str] = {}  # resource key -> creation site (record)
        # resource key -> the name the program bound it to (``a`` in ``a = Lock()``; record)
        self.bindings: dict[tuple[int, int], str] = {}
        # resource key -> (owner's class, own name, tag) for attributes (``self.lock``)
        self.owners: dict[tuple[int, int], tuple[str, str | None, int | None]] = {}
        self._owner_objects: dict[str, list[Any]] = {}
        # Work handed over while nobody waited for it: condition or queue key -> (thread, the
        # primitive, where; "" unless recording). Evidence for a stall by work nobody takes.
        self.unheard: dict[tuple[int, int], tuple[int, Any, str]] = {}
        # Lock key -> conditions made on that lock: two or more make a monitor (queue.Queue's
        # not_empty and not_full on one mutex), whose waiters any user of the lock may wake.
        self.monitors: dict[tuple[int, int], int] = {}
        # Who woke what (notified, put into, released): the primitives write
        # ``wakers[key][thread] = serial`` directly (see History); and the conditions and
        # queues some thread blocked on in this execution.
        self.history.executions += 1
        self.serial = self.history.executions
        self.wakers = self.history.wakers
        self.waited: set[tuple[int, int]] = set()

    def woke(self, key: tuple[int, int] | None) -> set[int]:
        """The threads that woke the primitive ``key`` in this execution: the facts its verdict
        rests on, as a live run records them."""
        seen = self.wakers.get(key) if key is not None else None
        if not seen:
            return set()
        serial = self.serial
        return {t for t, n in seen.items() if n == serial}

    def hand_over(self, me: CThread, resource: Any) -> None:
        """``me`` notified (or put into) ``resource`` while no thread waited on it."""
        self.unheard[resource.key] = (me.index, resource,
                                      _call_chain(sys._getframe(1)) if self.record else "")

    # -- bookkeeping --------------------------------------------------------------------------

    def new_key(self, me: CThread | None) -> tuple[int, int]:
        """A stable key for a primitive created now by ``me``."""
        if me is None:
            return (-1, id(self) & 0xFFFF)
        me.created += 1
        key = (me.index, me.created)
        if self.record:
            self.sites[key], binding, owner = _creation_site()
            if binding:
                self.bindings[key] = binding
            if binding and owner is not None:
                self.owners[key] = self._owner_name(owner)
        return key

    def _owner_name(self, owner: Any) -> tuple[str, str | None, int | None]:
        """(class, own name, tag) of the object a primitive was made an attribute of, as
        reports name it (``stuck.runtime.naming.owned_name``): tags count the owners of each
        class in the order this execution made them, so every execution numbers them alike."""
        from stuck.runtime.naming import own_name
        from stuck.runtime.registry import type_name

        class_name = type_name(type(owner)).rsplit(".", 1)[-1]
        name = own_name(owner)
        if name is not None:
            return class_name, name, None
        seen = self._owner_objects.setdefault(class_name, [])
        for i, other in enumerate(seen):
            if other is owner:
                return class_name, None, i + 1
        seen.append(owner)  # kept: an id could be reused by the next owner
        return class_name, None, len(seen)

    def _new_thread(self, name: str, pyobj: Any) -> CThread:
        ct = CThread(len(self.threads), name)
        ct.pyobj = pyobj
        if pyobj is not None:
            ct.daemon = bool(getattr(pyobj, "daemon", False))
            self.by_thread[id(pyobj)] = ct
            target = getattr(pyobj, "_target", None)
            ct.pool_worker = getattr(target, "__module__", "") == "concurrent.futures.thread"
        self.threads.append(ct)
        insort(self.runnable, ct.index)
        self.live += 1
        self.strategy.thread_created(ct.index)
        return ct

    def wake(self, t: CThread) -> None:
        if t.state == BLOCKED:
            t.state = RUNNABLE
            t.waiting = None
            t.deadline = None
            insort(self.runnable, t.index)

    # -- the controlled thread's life -----------------------------------------------------------

    def _body(self, me: CThread, fn: Callable[[], object]
              ) -> LockBaton | EventBaton | SpentBaton | None:
        """Run ``fn`` as controlled thread ``me``.

        On a pooled worker, returns the baton to post once the worker is parked again (the
        next thread's, or ``done``): the hand-over waits until the worker's own clean-up is
        over, so the next thread never shares the GIL with it. Otherwise posts it itself.
        """
        me.ident = _get_ident()
        self.by_ident[me.ident] = me
        if not me.baton_first:
            me.baton.wait()
        # A stray post (see workers._serve) may have woken this thread: wait for its turn.
        while self.current is not me and not self.aborting:
            me.baton.wait()
        then: LockBaton | EventBaton | SpentBaton | None = None
        try:
            if self.aborting:
                raise Aborted
            fn()
        except Aborted:
            pass
        except BaseException as exc:
            if not self.aborting:
                self.errors.append(ThreadError(
                    me.index, me.name, exc,
                    "".join(traceback.format_exception(type(exc), exc,
                                                       _programs_part(exc.__traceback__))),
                ))
        finally:
            with contextlib.suppress(Aborted):
                then = self._finished(me)
        if me.baton_first:
            return then
        if then is not None:
            with contextlib.suppress(RuntimeError):  # posted by a teardown meanwhile
                then.post()
        return None

    def start_root(self, target: Callable[[], object], starter: Callable[[Any], Any],
                   thread_factory: Callable[..., Any]) -> CThread:
        """Create thread 0, which runs ``target``; it holds the baton first."""
        holder: list[CThread] = []

        def run() -> LockBaton | EventBaton | SpentBaton | None:
            return self._body(holder[0], target)

        pyobj = thread_factory(name="explore-main", daemon=True)
        pyobj.run = run  # not as the target: Thread.run would drop what it returns
        root = self._new_thread("main", pyobj)
        holder.append(root)
        self.current = root
        root.baton.post()
        baton = starter(pyobj)
        if baton is not None:  # a parked worker: posting its baton starts it
            root.baton = baton
            root.baton_first = True
            baton.post()
        return root

    def spawn(self, parent: CThread, pyobj: Any, starter: Callable[[Any], Any],
              real_event: Callable[[], Any]) -> None:
        """``Thread.start`` called by a controlled thread: the new thread is controlled too.

        ``starter`` is used unless the scheduler was given its own (a worker pool).
        A pooled thread costs no OS-level switch until the strategy first lets it run.
        """
        self.yield_point(parent, "start", None)
        ct = self._new_thread(str(getattr(pyobj, "name", f"Thread-{len(self.threads)}")), pyobj)
        user_run = pyobj.run

        def run() -> LockBaton | EventBaton | SpentBaton | None:
            try:
                return self._body(ct, user_run)
            finally:
                with contextlib.suppress(AttributeError):
                    del pyobj.run

        pyobj.run = run
        # Thread internals wait on _started before run(): keep that a real event.
        pyobj._started = real_event()
        baton = (self.starter or starter)(pyobj)
        if baton is not None:  # a parked worker, started when the strategy first picks it
            ct.baton = baton
            ct.baton_first = True

    def _finished(self, me: CThread) -> LockBaton | EventBaton | SpentBaton | None:
        """``me`` ended: the baton to post next (the next thread's, or ``done``), or None."""
        if self.aborting:
            me.state = FINISHED
            return None
        me.state = FINISHED
        self.runnable.remove(me.index)
        self.live -= 1
        for t in self.threads:
            if t.state == BLOCKED and t.waiting is me:
                self.wake(t)
        if self.live == 0:
            self._end(None, post_done=False)
            return self.done
        nxt = self._next_after(me)
        if nxt is None:
            return None
        nxt = self._runner(nxt, me)
        self.current = nxt
        self.switches += 1
        return nxt.baton

    # -- scheduling -----------------------------------------------------------------------------

    def yield_point(self, me: CThread, op: str, resource: Any, next_wait: Any = None) -> None:
        """A synchronization point: maybe let another runnable thread go first.

        ``next_wait`` is the lock ``me`` takes, or the thread it joins, right after this point,
        blocking and without a timeout (None for any other operation).
        """
        if self.aborting:
            raise Aborted
        step = self.step = self.step + 1
        if step > self.max_steps:
            self._hang(me)
        me.pending = resource
        me.next_wait = next_wait
        if self.trace is not None:
            self._trace(me, op, resource)
        runnable = self.runnable
        if len(runnable) > 1:
            nxt = self._choose(runnable, me.index, step)
            self.choices.append(nxt)
            if nxt != me.index:
                if self.trace is not None:
                    self.last_switch_from = me.index
                t = self._runner(self.threads[nxt], me)
                if t is not me:
                    self._switch(me, t)

    def block(self, me: CThread, resource: Any, op: str, deadline: float | None = None,
              next_wait: Any = None) -> bool:
        """Block ``me`` on ``resource`` until woken; False when the deadline passed instead.

        ``next_wait`` is what ``me`` waits for first once woken (if not by its deadline),
        blocking and without a timeout: the lock it waited for or a Condition's lock (to take),
        the thread it joins.
        """
        if self.aborting:
            raise Aborted
        me.state = BLOCKED
        me.waiting = resource
        me.op = op
        me.deadline = deadline
        me.timed_out = False
        me.next_wait = next_wait
        self.runnable.remove(me.index)
        nxt = self._next_after(me)
        if nxt is None:  # pragma: no cover - _next_after raises or returns a thread
            raise Aborted
        if self.trace is not None:
            self.last_switch_from = me.index
        if nxt is not me:
            nxt = self._runner(nxt, me)
            if nxt is not me:
                self._switch(me, nxt)
        return not me.timed_out

    def _runner(self, nxt: CThread, me: CThread) -> CThread:
        """The thread to hand over to when the strategy chose ``nxt`` while ``me`` ran.

        A thread whose next step is taking a lock another thread holds (or joining a thread
        that has not finished) would, once resumed, only find the lock taken and block again,
        handing over a second time: two wake-ups of OS threads for nothing. Its block is done
        here instead, on its behalf -- the same state change, the same scheduling decision
        afterwards (recorded in ``choices`` as before, so replay tokens and strategies see no
        difference) -- and the thread resumes only when it was woken and chosen again, finding
        the lock free (the thread finished) or blocking as usual.
        """
        runnable = self.runnable
        while nxt is not me:
            wanted = nxt.next_wait
            if wanted is None:
                return nxt
            if type(wanted) is CThread:
                if wanted.state == FINISHED:
                    return nxt
                op = "join"
            else:
                owner = wanted._owner
                if owner is None or owner is nxt:
                    return nxt
                op = "acquire"
            nxt.state = BLOCKED
            nxt.waiting = wanted
            nxt.op = op
            nxt.deadline = None
            nxt.timed_out = False
            runnable.remove(nxt.index)
            if self.trace is not None:
                self.last_switch_from = nxt.index
            after = self._next_after(nxt)
            if after is None:  # pragma: no cover - _next_after raises or returns a thread
                raise Aborted
            nxt = after
        return nxt

    def _next_after(self, me: CThread) -> CThread | None:
        """The thread to run after ``me`` blocked or finished (advancing virtual time if needed)."""
        if not self.runnable:
            timed = [t for t in self.threads if t.state == BLOCKED and t.deadline is not None]
            if timed:
                self.now = max(self.now, min(t.deadline or 0.0 for t in timed))
                for t in timed:
                    if t.deadline is not None and t.deadline <= self.now:
                        t.timed_out = True
                        t.next_wait = None  # a timed-out waiter does other things first
                        self.wake(t)
            else:
                self._all_blocked(me)
                return None
        runnable = self.runnable
        if len(runnable) == 1:
            return self.threads[runnable[0]]
        self.step += 1
        if self.step > self.max_steps:
            self._hang(me)
        nxt = self._choose(runnable, me.index, self.step)
        self.choices.append(nxt)
        return self.threads[nxt]

    def _switch(self, me: CThread, nxt: CThread) -> None:
        self.current = nxt
        self.switches += 1
        nxt.baton.post()
        me.baton.wait()
        while self.current is not me and not self.aborting:
            me.baton.wait()  # a stray post (see workers._serve): not this thread's turn yet
        if self.aborting:
            raise Aborted

    # -- ends of an execution -------------------------------------------------------------------

    def _all_blocked(self, me: CThread) -> None:
        rest = [t for t in self.threads if t.state != FINISHED]
        root_done = self.threads[0].state == FINISHED
        if root_done and all(t.daemon or (t.pool_worker and t.op == "get") for t in rest):
            # Only daemon threads or idle pool workers are left: the program is done.
            self._end(None)
        else:
            self._end(self.judge.blocked(self))
        if me.state != FINISHED:
            raise Aborted

    def _hang(self, me: CThread) -> None:
        self._end(self.judge.hang(self, me))
        raise Aborted

    def _end(self, outcome: Any, post_done: bool = True) -> None:
        """Finish the execution: record the outcome, post every baton, wake the engine.

        ``post_done`` False: the caller posts ``done`` itself (a thread that ended last, once
        its worker is parked).
        """
        if self.aborting:
            return
        self.outcome = outcome
        self.aborting = True
        for t in self.threads:
            if t.state != FINISHED:
                # RuntimeError: its baton was already posted (it was about to run)
                with contextlib.suppress(RuntimeError):
                    t.baton.post()
        if post_done:
            self.done.post()

    def abort_from_outside(self, reason: Any) -> None:
        """The engine gave up waiting (a thread blocked outside the scheduler's control)."""
        self._end(reason)

    def _trace(self, me: CThread, op: str, resource: Any) -> None:
        assert self.trace is not None
        frame = sys._getframe(2)
        switched = self.last_switch_from
        preempt = False
        if switched is not None and switched != me.index:
            prev = self.threads[switched]
            preempt = prev.state == RUNNABLE
        else:
            switched = None
        self.last_switch_from = None
        self.trace.append(TraceEvent(self.step, me.index, op, resource, where(frame),
                                     switched, preempt))


def _programs_part(tb: Any) -> Any:
    """A thread's traceback from its first frame that is not stuck's: the frames that ran the
    thread's function for the scheduler are not the program's, and plain Python has none."""
    import os

    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    while tb is not None and tb.tb_next is not None \
            and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(ours):
        tb = tb.tb_next
    return tb


def _tuple_target(frame: Any) -> str | None:
    """The target a call's value is assigned to when the call is one element of a tuple
    assignment (``requests, replies = Queue(), Queue()``: ``replies`` for the second call),
    read from the call's column span (3.11 and later) and the line's syntax; None otherwise."""
    import ast
    import linecache

    code = frame.f_code
    positions = getattr(code, "co_positions", None)
    if positions is None or frame.f_lasti < 0:
        return None
    try:
        line, end_line, col, end_col = list(positions())[frame.f_lasti // 2]
    except (IndexError, ValueError):
        return None
    if line is None or line != end_line or col is None or end_col is None:
        return None
    text = linecache.getline(code.co_filename, line)
    indent = len(text) - len(text.lstrip())
    for t, v in tuple_assignment(text.strip()) or []:
        if v.col_offset <= col - indent and (v.end_col_offset or 0) >= end_col - indent:
            return ast.unparse(t) if isinstance(t, (ast.Name, ast.Attribute)) else None
    return None


def tuple_assignment(line: str) -> list[tuple[Any, Any]] | None:
    """The (target, value) pairs of a line that is one assignment of a tuple to as many targets
    (``a, b = Lock(), Lock()``), as syntax nodes; None for any other line."""
    import ast

    try:
        tree = ast.parse(line)
    except (SyntaxError, ValueError):
        return None
    if len(tree.body) != 1 or not isinstance(stmt := tree.body[0], ast.Assign) \
            or len(stmt.targets) != 1:
        return None
    target, value = stmt.targets[0], stmt.value
    if not isinstance(target, (ast.Tuple, ast.List)) or not isinstance(
            value, (ast.Tuple, ast.List)) or len(target.elts) != len(value.elts):
        return None
    return list(zip(target.elts, value.elts, strict=True))


def _creation_site() -> tuple[str, str | None, Any]:
    """Where the program made a primitive (``file:line `source``` -- the line left out when
    the program binds the primitive to a plain name there, which is returned too: ``a`` for
    ``a = threading.Lock()``, the name ``stuck run`` reports it by; with the class whose
    ``__init__`` made it, if any)."""
    import linecache

    from stuck.runtime.registry import binding_at

    frame = sys._getframe(3)
    outer = None
    f: Any = frame
    skip = _skip_files()
    while f is not None and f.f_code.co_filename.startswith(skip):
        outer = f
        f = f.f_back
    if f is None:
        return "?", None, None
    line = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
    made_by = ""
    if outer is not None:
        qual = getattr(outer.f_code, "co_qualname", outer.f_code.co_name)
        if qual.endswith("__init__"):
            made_by = qual.rsplit(".", 1)[0]
    place = f"{f.f_code.co_filename}:{f.f_lineno}"
    text = f"{place} `{line}`" if line else place
    bound = binding_at(f.f_code, f.f_lasti)
    if made_by:  # made inside a library class (a Queue's lock): the binding is the object's,
        # which names it (``requests, replies = Queue(), Queue()``: each by its own name)
        owner_name = bound[1] if bound is not None and bound[0] == "name" else _tuple_target(f)
        if owner_name:
            return f"{made_by} {owner_name} at {place}", None, None
        return f"{made_by} at {text}", None, None
    if bound is not None and bound[0] == "name":
        return place, bound[1], None  # the name says which one; the line would only repeat it
    if bound is not None and bound[0] == "attr" and bound[2] is not None:
        owner = f.f_locals.get(bound[2])  # the program's own frame, in the creating thread
        if owner is not None:
            return place, bound[1], owner
    return text, None, None


def _call_chain(frame: Any, depth: int = 2) -> str:
    """The innermost ``depth`` frames of the program's own code: where and through what call."""
    import linecache

    parts: list[str] = []
    f = user_frame(frame)
    while f is not None and len(parts) < depth:
        if f.f_code.co_filename.startswith(_skip_files()):
            f = f.f_back
            continue
        line = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
        text = f"{f.f_code.co_filename}:{f.f_lineno}"
        parts.append(f"{text} `{line}`" if line else text)
        f = f.f_back
    return ", called from ".join(parts) if parts else "?"
