"""concurrent.futures tracking: Future.result/exception, wait, and ThreadPoolExecutor.

A wait on a future can be ended by the thread running it; a future still queued in a
``ThreadPoolExecutor`` can only run on that pool's workers, and only once one of them is free.
So when the pool already has all the workers it may start, a task that waits on a future queued
in its own pool is stuck if every worker is (pool starvation), which the wait-for walk finds as
a cycle through the pool's workers. Methods are patched on the classes, so executors and
futures made before ``install()`` are covered too, and so are user subclasses.
"""

from __future__ import annotations

import _thread
import concurrent.futures
import concurrent.futures._base as _base
import concurrent.futures.thread as _cft
import sys
import threading
import time
import types
import weakref
from collections.abc import Iterable
from typing import Any

from stuck.runtime import detect, registry
from stuck.runtime.patch import original
from stuck.runtime.tracked import PrimitiveFacts, tracked_class
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

_orig_result: Any = original(_base.Future, "result")
_orig_exception: Any = original(_base.Future, "exception")
_orig_wait: Any = original(_base, "wait")
_orig_submit: Any = original(_cft.ThreadPoolExecutor, "submit")
_WORKER: Any = getattr(_cft, "_worker", None)  # a pool worker thread's target
_RUN_CODE: Any = getattr(getattr(getattr(_cft, "_WorkItem", None), "run", None), "__code__", None)
_active: dict[int, Any] = threading._active  # type: ignore[attr-defined]

_FINISHED = _base.FINISHED
_RUNNING = _base.RUNNING
_PENDING = _base.PENDING


# What stuck notes on a Future it does not own (the pool that runs it, the callable, the
# thread that started running it) is read only through these.

def pool_of(fut: Any) -> Any:
    """The ThreadPoolExecutor ``fut`` was submitted to (None: made by hand, or gone)."""
    pool_ref = getattr(fut, "_stuck_pool", None)
    return pool_ref() if pool_ref is not None else None


def runner_of(fut: Any) -> int | None:
    """The ident of the pool worker that runs ``fut``, known once that worker has blocked
    while running it (None: not started, or its runner has not blocked: it can run, which
    is all the rules need to know of it; see ``note_runner``)."""
    runner = getattr(fut, "_stuck_runner", None)
    return runner if isinstance(runner, int) else None


def started(fut: Any) -> bool:
    """True once a pool's worker has started running ``fut`` (it runs, or has run): known
    for every submitted future, whereas ``runner_of`` names the worker only once it blocks."""
    if runner_of(fut) is not None:
        return True
    return pool_of(fut) is not None and getattr(fut, "_state", None) in (_RUNNING, _FINISHED)


def callable_of(fut: Any) -> str | None:
    """The qualified name of the callable a submitted ``fut`` runs."""
    name = getattr(fut, "_stuck_task", None)
    return name if isinstance(name, str) else None



def _runner(fut: Any, candidates: list[int]) -> int | None:
    """Which of ``candidates`` (blocked workers) is running ``fut``: each of them noted the
    future it runs when it blocked (``note_runner``). Never read from the workers' stacks:
    another thread's frame locals are not read while it runs (see
    ``stuck.runtime.livereport``)."""
    runner = runner_of(fut)
    return runner if runner in candidates else None


def note_runner(me: int) -> None:
    """Called in a thread about to block (``registry.on_wait``): if it is a pool worker, note
    on the future it is running that it runs it.

    The rules need a future's runner only when that runner is itself blocked (a running one
    can complete it, whichever worker it is), so the worker notes it as it blocks, in its
    own thread, where reading its own frames is safe; the pool's hot path (submit, run)
    records nothing per task. Noted before the wait is registered: whoever sees the worker
    waiting also sees what it runs."""
    thread = _active.get(me)
    if thread is None or getattr(thread, "_target", None) is not _WORKER or _WORKER is None:
        return
    frame: Any = sys._getframe(2)
    while frame is not None:
        if frame.f_code is _RUN_CODE:
            fut = getattr(frame.f_locals.get("self"), "future", None)
            if fut is not None:
                fut._stuck_runner = me
            return
        frame = frame.f_back


def _future_wakers(resource: object, op: str) -> list[int] | None:
    fut: Any = resource
    state = fut._state
    if state not in (_RUNNING, _PENDING):
        return None
    pool = pool_of(fut)
    if pool is None:
        return None  # a future completed by hand: anybody could
    workers = [t.ident for t in list(pool._threads) if t.ident is not None and t.is_alive()]
    if state == _RUNNING:
        waiting = [w for w in workers if w in registry.waits]
        if len(waiting) < len(workers):
            # Some worker is not blocked: it may be the runner. Report them all: the walk
            # sees a running waker and stops (it will not call this a knot).
            runner = _runner(fut, waiting) if waiting else None
            return [runner] if runner is not None else workers or None
        runner = _runner(fut, waiting)
        return None if runner is None else [runner]
    if len(workers) < pool._max_workers or getattr(pool, "_shutdown", False):
        return None  # the pool can still start a worker for it
    return workers or None


def _futures_wakers(resource: object, op: str) -> list[int] | None:
    pending: list[Any] = resource._stuck_pending if isinstance(resource, _FutureSet) else []
    union: list[int] = []
    for fut in pending:
        if fut._state == _FINISHED:
            return None
        ws = _future_wakers(fut, op)
        if ws is None:
            return None
        union.extend(w for w in ws if w not in union)
    return union or None


_PROGRESS: dict[str, int] = {_PENDING: 0, _RUNNING: 1}  # any other state (finished, cancelled): 2


@tracked_class
class _FutureSet:
    """The resource of a ``wait(fs)``: the futures still pending when the wait began."""

    _stuck_kind = "future"
    _stuck_class = None  # made by stuck, not by the program
    _stuck_wakers_of = _futures_wakers

    def __init__(self, pending: list[Any]) -> None:
        self._stuck_pending = pending

    @property
    def _stuck_id(self) -> str:
        return registry.foreign_id(self, "future")

    @property
    def _stuck_epoch(self) -> int:
        """How far its futures have got (each: pending 0, running 1, done 2): it moves
        whenever one of them starts or ends."""
        progress = 0
        for fut in list(self._stuck_pending):
            progress += _PROGRESS.get(str(fut._state), 2)
        return progress

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts(label=f"{len(self._stuck_pending)} futures")


def _blocking_call(fut: Any, timeout: float | None, call: Any) -> Any:
    if fut._state == _FINISHED or timeout == 0:
        return call(fut, timeout)
    me = _thread.get_ident()
    record = registry.WaitRecord(fut, "result", _future_wakers, sys._getframe(2),
                                 None if timeout is None else float(timeout))
    previous = detect.block_begin(me, record, True)
    try:
        if record.pending:
            # A cycle this wait closes is left to the watchdog until proven: wait in slices,
            # so that under ``raise`` its error is raised here, in the thread whose wait is
            # the cycle (a pool worker waiting on its own pool), where it can recover.
            def done_within(seconds: float | None) -> bool:
                return fut in _orig_wait([fut], seconds)[0]

            if not detect.wait(me, record, done_within, timeout, True):
                return call(fut, 0)  # the timeout passed: the TimeoutError it would raise
            return call(fut, None)
        return call(fut, timeout)
    finally:
        registry.end_wait(me, previous)


def result(self: Any, timeout: float | None = None) -> Any:
    if self._state == _FINISHED or timeout == 0:  # the common case pays no extra call
        return _orig_result(self, timeout)
    return _blocking_call(self, timeout, _orig_result)


def exception(self: Any, timeout: float | None = None) -> Any:
    return _blocking_call(self, timeout, _orig_exception)


POLL = 0.005  # seconds between looks at the futures of a wait() whose proof is pending
_DONE = (_base.CANCELLED_AND_NOTIFIED, _FINISHED)


def _wait_over(fs: Iterable[Any], return_when: str) -> bool:
    """Whether ``wait(fs, return_when=...)`` would return now, read from the futures' states
    as ``wait`` reads them."""
    done = [f for f in fs if f._state in _DONE]
    if len(done) == len(list(fs)):
        return True
    if return_when == _base.FIRST_COMPLETED:
        return bool(done)
    return return_when == _base.FIRST_EXCEPTION and any(
        f._state == _FINISHED and f._exception is not None for f in done)


def wait(fs: Iterable[Any], timeout: float | None = None,
         return_when: str = _base.ALL_COMPLETED) -> Any:
    fs = list(fs) if not isinstance(fs, (set, frozenset, list, tuple)) else fs
    pending = [f for f in fs if f._state != _FINISHED and not f.cancelled()]
    if not pending or timeout == 0:
        return _orig_wait(fs, timeout, return_when)
    resource = _FutureSet(pending)
    me = _thread.get_ident()
    record = registry.WaitRecord(resource, "result", _futures_wakers, sys._getframe(1),
                                 None if timeout is None else float(timeout))
    previous = detect.block_begin(me, record, True)
    try:
        if record.pending:  # left to the watchdog: wait in slices (see _blocking_call)
            def ended_within(seconds: float | None) -> bool:
                # Polled: wait() itself would block on an Event of its own, whose wait
                # would replace this one in the registry while the proof is pending.
                end = time.monotonic() + (detect.RECHECK if seconds is None else seconds)
                while not _wait_over(fs, return_when):
                    if time.monotonic() >= end:
                        return False
                    time.sleep(POLL)
                return True

            detect.wait(me, record, ended_within, timeout, True)
            return _orig_wait(fs, 0, return_when)
        return _orig_wait(fs, timeout, return_when)
    finally:
        registry.end_wait(me, previous)


def _wrapping_submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    fut = _orig_submit(self, fn, *args, **kwargs)
    fut._stuck_pool = weakref.ref(self)  # the same reference for all of a pool's futures
    fut._stuck_task = getattr(fn, "__qualname__", None)  # named by the stall rules
    return fut


# What submit notes on each future, as one line of the standard library's own submit.
_NOTE = "; f._stuck_pool = weakref.ref(self); f._stuck_task = getattr(fn, '__qualname__', None)"
_ANCHOR = "f = _base.Future()"


def _inlined_submit() -> Any:
    """``ThreadPoolExecutor.submit`` itself, made again from its source with what stuck notes
    on the future (its pool, weakly, and the callable's name) written on the line that makes
    the future; None when that cannot be done exactly (no source, or source that is not
    what this interpreter runs).

    A pool's per-task path is the one where an added call shows most: a wrapper around
    submit cost each task about a tenth more, most of it in how the main thread and the
    workers then hand the interpreter to each other. The copy has the module's own globals
    (it sees them change, as submit does) and its file and line numbers: a traceback through
    it reads as one through the original."""
    import inspect
    import textwrap

    code = getattr(_orig_submit, "__code__", None)
    try:
        source = textwrap.dedent(inspect.getsource(_orig_submit))
    except (OSError, TypeError):
        return None
    if code is None or source.count(_ANCHOR) != 1 or "weakref" not in vars(_cft) \
            or code.co_firstlineno < 2:
        return None
    # Its first lines: the module's imports its code uses, never run (the compiler makes a
    # call on an imported module's attribute another instruction than on other objects),
    # then blank lines down to its own first line.
    modules = [n for n in code.co_names if isinstance(vars(_cft).get(n), types.ModuleType)]
    pad = (f"if 0: import {', '.join(modules)}" if modules else "") + \
        "\n" * (code.co_firstlineno - 1)

    def build(text: str) -> Any:
        namespace: dict[str, Any] = {}
        exec(compile(pad + text, code.co_filename, "exec"), vars(_cft), namespace)
        return namespace.get(code.co_name)

    try:
        same = build(source)
        if same is None or same.__code__.co_code != code.co_code \
                or same.__code__.co_consts != code.co_consts:
            return None  # the file on disk is not the code this interpreter loaded
        made = build(source.replace(_ANCHOR, _ANCHOR + _NOTE))
    except Exception:
        return None
    made.__qualname__ = _orig_submit.__qualname__
    made.__doc__ = _orig_submit.__doc__
    return made


submit: Any = _inlined_submit() or _wrapping_submit
# A pool's workers note what they run when they block (note_runner); set before any submit
# can start one, which may block at once.
registry.on_wait = note_runner


REPLACEMENTS: list[tuple[object, str, object]] = [
    (_base.Future, "result", result),
    (_base.Future, "exception", exception),
    (_base, "wait", wait),
    (concurrent.futures, "wait", wait),
    (_cft.ThreadPoolExecutor, "submit", submit),
]


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
