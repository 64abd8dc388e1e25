"""OS threads reused across the executions of one exploration.

Starting an OS thread costs tens of microseconds, about as much as the rest of a small
execution; an exploration runs thousands of executions that each start the same few threads.
A :class:`WorkerPool` keeps the OS threads of finished controlled threads parked on a lock and
hands each the next ``threading.Thread`` to run, doing what ``Thread._bootstrap_inner`` does
for a new thread so that the program cannot tell the difference:

* ``Thread.ident`` / ``native_id`` are the worker's, ``threading.current_thread()`` returns the
  program's ``Thread`` object (registered in ``threading._active`` while it runs, removed after);
* ``Thread.is_alive()`` / ``join()`` from outside work as usual (a fresh "thread state" lock is
  held while the body runs and released when it ends);
* the body starts as a new thread would: an empty ``contextvars`` context, the trace and profile
  hooks of ``threading.settrace`` / ``setprofile`` (coverage), and no ``threading.local`` values:
  the worker's thread-state dictionary, where CPython keeps them, is emptied after every body,
  as the end of a thread would.

Only CPython 3.10-3.12 is supported (``threading`` internals changed in 3.13 and thread-locals
moved out of the thread-state dictionary): elsewhere :func:`available` is False and every
controlled thread gets a new OS thread, as before.

Workers are started with ``_thread.start_new_thread`` and are invisible to ``threading`` while
parked; :meth:`WorkerPool.close` (the end of the exploration) lets them exit.

A worker parks on an event baton where the platform has one (:mod:`stuck.explore.baton`): it is
the baton of each controlled thread the worker runs, so every hand-over to it is the cheap kind.
A worker closes its baton itself when it exits, after its last use.
"""

from __future__ import annotations

import _thread
import contextlib
import contextvars
import sys
import threading
from typing import Any

from stuck import compat
from stuck.explore import baton as batons
from stuck.explore.affinity import Affinity
from stuck.runtime import patch

_allocate_lock = _thread.allocate_lock
_get_ident = _thread.get_ident
_get_native_id: Any = getattr(_thread, "get_native_id", None)

_active: Any = getattr(threading, "_active", None)
_active_lock: Any = getattr(threading, "_active_limbo_lock", None)


def _thread_state_dict_getter() -> Any:
    """A function returning the calling thread's ``PyThreadState_GetDict()``, or None."""
    try:
        import ctypes

        fn = ctypes.pythonapi.PyThreadState_GetDict
    except (ImportError, AttributeError):  # pragma: no cover - not CPython
        return None
    # A borrowed reference: read it as an address and make a counted reference from it
    # (``restype = py_object`` would treat it as a new reference and free the dict).
    fn.restype = ctypes.c_void_p
    fn.argtypes = []
    cast, py_object = ctypes.cast, ctypes.py_object

    def get() -> Any:
        address = fn()
        return cast(address, py_object).value if address else None

    return get


_state_dict = _thread_state_dict_getter() if compat.THREAD_STATE_DICT_HOLDS_LOCALS else None


def available() -> bool:
    """Whether controlled threads can run on reused OS threads in this interpreter."""
    return (
        _state_dict is not None
        and isinstance(_active, dict)
        and _active_lock is not None
        and sys.implementation.name == "cpython"
    )


class Worker:
    """One parked OS thread."""

    __slots__ = ("go", "idle", "job", "name")

    def __init__(self) -> None:
        # Posted to run the job (or, with job None, to exit); the job's controlled thread
        # uses it as its baton, so it is unposted again whenever the worker is parked.
        self.go = batons.make()
        self.idle = _allocate_lock()  # held from the hand-over of a job until it is parked again
        self.job: Any = None
        self.name = ""


class WorkerPool:
    """Parked OS threads that run controlled ``threading.Thread`` objects one after another."""

    def __init__(self, *, keep: int = 32) -> None:
        self.free: list[Worker] = []
        self.busy: list[Worker] = []  # handed a job since the last wait_parked()
        self.keep = keep  # parked workers beyond this many exit instead
        self.closed = False
        self.started = 0  # OS threads started (for tests and benchmarks)
        # The engine waits on this for the end of each execution. Never closed explicitly: a
        # late post from a worker given up on must not reach a reused file descriptor (it is
        # closed when garbage).
        self.done = batons.make()
        # Which CPUs the workers run on: one, while that makes executions faster (engine.run_once
        # reports each execution's wall time).
        self.affinity = Affinity()
        # The real one: during an exploration ``_thread.start_new_thread`` is replaced by a
        # version that reports threads the scheduler cannot control.
        self._start_new_thread: Any = patch.original(_thread, "start_new_thread")

    # -- the spawning side ---------------------------------------------------------------------

    def start(self, pyobj: threading.Thread) -> batons.LockBaton | batons.EventBaton:
        """``Thread.start`` for a controlled thread: run ``pyobj`` on a parked worker.

        Returns the (unposted) baton the worker is parked on: it becomes the thread's baton, so
        the worker wakes only when the scheduler first lets the thread run, and then runs it
        at once (no extra switch to let a new thread reach its first wait).
        """
        if not pyobj._initialized:  # type: ignore[attr-defined]
            raise RuntimeError("thread.__init__() not called")
        if pyobj._started.is_set():  # type: ignore[attr-defined]
            raise RuntimeError("threads can only be started once")
        free = self.free
        w = free.pop() if free else None
        new = w is None
        if w is None:
            w = Worker()
        w.idle.acquire()  # a worker only re-enters ``free`` just before it releases ``idle``
        w.job = pyobj
        w.name = pyobj.name
        self.busy.append(w)
        if new:
            self._start_new_thread(self._loop, (w,))
            self.started += 1
        return w.go

    def wait_parked(self, timeout: float) -> list[str]:
        """Wait until every worker handed a job since the last call is parked again.

        Returns the names of the threads still running after ``timeout`` seconds (each): they
        were blocked outside the scheduler's control; their workers are abandoned.
        """
        stuck: list[str] = []
        for w in self.busy:
            if w.idle.acquire(True, timeout):
                w.idle.release()
            else:
                stuck.append(w.name)
        self.busy.clear()
        return stuck

    def close(self) -> None:
        """Let every parked worker exit (a worker still running exits when it finishes)."""
        self.closed = True
        self.affinity.release()
        free, self.free = self.free, []
        for w in free:
            w.job = None
            w.go.post()

    # -- the worker side -----------------------------------------------------------------------

    def _loop(self, w: Worker) -> None:
        ident = _get_ident()
        native = _get_native_id() if _get_native_id is not None else None
        state = _state_dict() if _state_dict is not None else None
        self.affinity.add_self()
        try:
            self._serve(w, ident, native, state)
        finally:
            self.affinity.discard_self()

    def _serve(self, w: Worker, ident: int, native: int | None, state: Any) -> None:
        while True:
            # A late asynchronous Aborted (meant for a thread stuck outside the scheduler's
            # control, engine._interrupt) is raised once the wait returned: the post was
            # consumed, carry on as woken.
            with contextlib.suppress(BaseException):
                w.go.wait()
            pyobj = w.job
            if pyobj is None:
                if self.closed:
                    w.go.close()
                    return
                # A stray post (an execution given up on posts every baton): this worker is
                # still in ``free`` and may be handed a job; park again.
                continue
            then: Any = None
            # Only an asynchronous Aborted that arrived late can escape ``_run``.
            with contextlib.suppress(BaseException):
                then = _run(pyobj, ident, native)
            parked = self._park(w, state, then is None)
            if then is not None:
                # The hand-over the thread's end decided on, now that the worker is done.
                with contextlib.suppress(RuntimeError):  # posted by a teardown meanwhile
                    then.post()
            if not parked:
                w.go.close()
                return

    def _park(self, w: Worker, state: Any, torn_down: bool) -> bool:
        """Make ``w`` available again; False when it should exit instead."""
        w.job = None
        if torn_down:
            # Park on an unposted ``go``: a thread torn down by an abort may leave its baton
            # posted (and nobody will wait on it again: the thread is finished).
            w.go.reset()
        if state is not None:
            state.clear()  # threading.local values die with the "thread", as on a real exit
        if self.closed or len(self.free) >= self.keep:
            w.idle.release()
            return False
        self.free.append(w)
        w.idle.release()
        return True


def _run(pyobj: Any, ident: int, native: int | None) -> Any:
    """What ``Thread._bootstrap_inner`` does around ``run()``, on a reused OS thread.

    Returns what the controlled thread's ``run`` returned: the baton to post next.
    """
    pyobj._ident = ident
    if native is not None:
        pyobj._native_id = native
    tstate = _allocate_lock()
    tstate.acquire()
    pyobj._tstate_lock = tstate
    pyobj._started.set()
    with _active_lock:
        _active[ident] = pyobj
    trace = getattr(threading, "_trace_hook", None)
    profile = getattr(threading, "_profile_hook", None)
    then = None
    try:
        if trace:
            sys.settrace(trace)
        if profile:
            sys.setprofile(profile)
        try:
            then = contextvars.Context().run(pyobj.run)
        except BaseException:
            pyobj._invoke_excepthook(pyobj)
    finally:
        sys.settrace(None)
        sys.setprofile(None)
        with _active_lock:
            if _active.get(ident) is pyobj:
                del _active[ident]
        tstate.release()
    return then
