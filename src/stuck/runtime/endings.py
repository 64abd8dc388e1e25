"""How threads that are gone ended, so a report can name them: "producer ended (ValueError
at feed.py:12)" instead of the raw ident of a thread nobody can see any more.

A thread that dies of an exception passes through ``threading.excepthook``; ``install`` puts a
recorder in front of the program's hook (which still runs, given a traceback without stuck's
own frames when the error is stuck's: ``stuck.tracebacks``) that notes the thread's
name, the exception's type and the program's innermost line. Threads that ended normally are
found at report time among the ``threading.Thread`` objects stuck has seen (started after
install, alive at a check, or dead of an exception) that the program still references (a
thread keeps its ``ident`` after it ends). They are held weakly, one entry per Thread object
the program keeps, and never looked for by scanning the heap: ``gc.get_objects()`` in the
watchdog's thread hands out objects other threads are still building (a tuple filled from a
generator, whose resize then fails with "SystemError: bad argument to internal function"
once a second reference exists). Standard library only; nothing here runs on a lock
operation.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import threading
import weakref
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from stuck.runtime import registry

MAX_KEPT = 1000  # endings remembered; a program that starts threads forever forgets the oldest


@dataclass(frozen=True, slots=True)
class Ending:
    name: str
    error: str | None = None  # the exception's type name
    where: str | None = None  # file:line of the program's innermost frame of the traceback

    def words(self) -> str:
        """``ended (ValueError at x.py:12)``, or ``ended`` for a thread that returned."""
        if self.error is None:
            return "ended"
        return f"ended ({self.error}{f' at {self.where}' if self.where else ''})"


# ident -> the thread that died with that ident (weakly) and how. Idents are reused once a
# thread is gone, so an entry is only believed for the thread object it was recorded for.
_ended: dict[int, tuple[weakref.ref[threading.Thread], Ending]] = {}
_state: dict[str, Any] = {}
# id(Thread) -> the Thread, weakly: the threads stuck has seen (see the module's docstring).
# An entry leaves when its Thread object is freed.
_known: dict[int, weakref.ref[threading.Thread]] = {}
# id(Thread) -> (ident, name) of the threads started since install, while the Thread lives.
_started: dict[int, tuple[int, str]] = {}
# (ident, name) of started threads that have ended and been freed, latest last: the program
# dropped them, but a report can still name them (a thread that died before setting an Event).
_gone: collections.deque[tuple[int, str]] = collections.deque(maxlen=MAX_KEPT)


def note_thread(thread: threading.Thread) -> None:
    """Remember ``thread`` (weakly) so that, once it ends, a report can name it. Never
    raises; O(1)."""
    key = id(thread)
    if key in _known:
        return

    def forget(_ref: object, key: int = key) -> None:
        _known.pop(key, None)  # runs as the Thread is freed, before its id can be reused
        started = _started.pop(key, None)
        if started is not None:  # a started Thread is freed only once it has ended
            _gone.append(started)

    with contextlib.suppress(Exception):
        _known[key] = weakref.ref(thread, forget)


def known_threads() -> list[threading.Thread]:
    """The Thread objects stuck has seen that the program still references."""
    refs = list(_known.values())  # one C-level copy: other threads may add meanwhile
    return [t for r in refs if (t := r()) is not None]


def _program_line(tb: TracebackType | None) -> str | None:
    """The innermost traceback entry in the program's code (not stuck's, not the stdlib's)."""
    where = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not registry.is_library_file(filename):
            where = f"{filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _note_error(thread: threading.Thread | None, exc_type: type[BaseException] | None,
                tb: TracebackType | None) -> None:
    """Remember that ``thread`` died of ``exc_type`` (raised at ``tb``). Never raises."""
    with contextlib.suppress(Exception):
        if thread is not None and thread.ident is not None and exc_type is not None:
            if len(_ended) >= MAX_KEPT:
                _ended.pop(next(iter(_ended)))
            _ended[thread.ident] = (weakref.ref(thread), Ending(
                thread.name, exc_type.__name__, _program_line(tb)))
            note_thread(thread)


def watch_errors(thread: threading.Thread) -> None:
    """Learn the exception ``thread`` dies of, whatever ``threading.excepthook`` is then.

    A test runner replaces the hook while each test runs (pytest does), and a program may
    too, so ``_record`` in front of the hook set at install time does not see every death.
    The thread's own ``_invoke_excepthook`` (called by ``Thread._bootstrap_inner`` with the
    exception being handled) is wrapped on this instance: it notes the error, then calls the
    hook as before. The traceback the hook prints is the same: it was made before the call."""
    with contextlib.suppress(Exception):
        invoke = getattr(thread, "_invoke_excepthook", None)
        if invoke is None or getattr(invoke, "_stuck_notes", False):
            return

        def invoke_and_note(t: threading.Thread, invoke: Any = invoke) -> None:
            exc_type, _, tb = sys.exc_info()
            _note_error(t, exc_type, tb)
            invoke(t)

        invoke_and_note._stuck_notes = True  # type: ignore[attr-defined]
        thread._invoke_excepthook = invoke_and_note  # type: ignore[attr-defined]


def note_started(thread: threading.Thread) -> None:
    """Remember the ident and name of ``thread``, just started, so that a report can still
    name it once it has ended and the program has dropped it (``gone_threads``)."""
    with contextlib.suppress(Exception):
        if thread.ident is not None:
            _started[id(thread)] = (thread.ident, thread.name)


def _record(args: Any) -> None:
    _note_error(args.thread, args.exc_type, args.exc_traceback)
    previous = _state.get("previous")
    if previous is not None:
        from stuck.tracebacks import thread_hook_args

        previous(thread_hook_args(args))  # stuck's own frames left out of its errors


def install() -> None:
    if _state.get("installed") is None:
        _state["previous"] = threading.excepthook
        _state["installed"] = _record
        threading.excepthook = _record


def uninstall() -> None:
    if _state.get("installed") is not None and threading.excepthook is _state["installed"]:
        threading.excepthook = _state["previous"]
    _state.clear()
    _ended.clear()
    _known.clear()
    _started.clear()
    _gone.clear()


def ending_of(thread: threading.Thread) -> Ending:
    """How ``thread`` (an ended Thread object) ended: the error it died of when stuck saw it
    die, else it returned. Exact for the object, whatever thread now has its ident."""
    recorded = _ended.get(thread.ident) if thread.ident is not None else None
    if recorded is not None and recorded[0]() is thread:
        return recorded[1]
    return Ending(thread.name)


def ending(ident: int, alive: set[int]) -> Ending | None:
    """How the thread ``ident`` ended; None when it is alive, unknown, or when several ended
    threads had that ident (the system reuses idents) so that which one is meant is unknown."""
    if ident in alive:
        return None
    dead: list[threading.Thread] = []
    with contextlib.suppress(Exception):
        for obj in known_threads():
            if obj.ident == ident and not obj.is_alive():
                dead.append(obj)
    recorded = _ended.get(ident)
    if recorded is not None:
        thread = recorded[0]()
        if (thread is None and not dead) or (thread is not None and dead == [thread]):
            return recorded[1]
        return None
    return Ending(dead[0].name) if len(dead) == 1 else None


def gone_threads(limit: int = 5) -> list[tuple[int, Ending]]:
    """Ended threads whose Thread objects are gone, with how they ended, latest first: those
    that died of an exception first (what killed them is what a report most needs), then
    those that returned. (ident, ending); an ident may belong to a running thread now."""
    out: list[tuple[int, Ending]] = []
    with contextlib.suppress(Exception):
        died = [(ident, end) for ident, (ref, end) in list(_ended.items()) if ref() is None]
        out.extend(reversed(died))
        errors = {(ident, end.name) for ident, end in died}
        for ident, name in reversed(list(_gone)):
            if len(out) >= limit:
                break
            if (ident, name) not in errors:
                out.append((ident, Ending(name)))
    return out[:limit]
