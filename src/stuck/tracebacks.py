"""stuck's own frames, kept out of what users see.

An exception that leaves a program's wait through a tracked primitive (a KeyboardInterrupt
during ``q.get()``, an error a signal handler raises, stuck's own ``DeadlockError`` under
``--policy raise``, ``HangError``) passes through stuck's tracked primitives, its deadlock walk
and its policy on the way out; those frames say nothing about the program, and plain Python
shows none of them (its primitives are C code, or the stdlib's own Python, which stuck's
frames call on to). Tracebacks are shown without them, whatever the exception, so a program's
traceback is the one plain Python prints (the same frames, the same lines): by the hooks
``stuck.runtime.install`` puts in front of ``sys.excepthook`` and ``threading.excepthook``
(the program's own hooks still run, given the shorter traceback), and in pytest by
``__tracebackhide__`` in each module of stuck's runtime.

``STUCK_DEBUG=1`` in the environment (``stuck run --debug`` sets it) keeps every frame, for
working on stuck itself. Standard library only.
"""

from __future__ import annotations

import os
import sys
import threading
from types import TracebackType
from typing import Any

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
DEBUG_VARIABLE = "STUCK_DEBUG"


def debugging() -> bool:
    """True when stuck's own frames are to be shown (``STUCK_DEBUG=1``)."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def hide_in_pytest() -> bool:
    """The value for a module's ``__tracebackhide__``: pytest leaves out frames of modules
    that set it true."""
    return not debugging()


def is_own(filename: str) -> bool:
    return os.path.abspath(filename).startswith(PACKAGE_DIR + os.sep)


def without_own_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback ``tb`` without entries in stuck's own files (all of them, when every entry
    is stuck's: better a traceback about stuck than none)."""
    kept = []
    entry = tb
    while entry is not None:
        if not is_own(entry.tb_frame.f_code.co_filename):
            kept.append(entry)
        entry = entry.tb_next
    if not kept or len(kept) == _length(tb):
        return tb
    rebuilt: TracebackType | None = None
    for e in reversed(kept):
        rebuilt = TracebackType(rebuilt, e.tb_frame, e.tb_lasti, e.tb_lineno)
    return rebuilt


def _length(tb: TracebackType | None) -> int:
    n = 0
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


def for_display(value: BaseException | None,
                tb: TracebackType | None) -> TracebackType | None:
    """The traceback to show for ``value``: without stuck's own frames, unless debugging."""
    if debugging():
        return tb
    _shorten_chained(value)
    short = without_own_frames(tb)
    if short is tb:
        return tb
    if value is not None:
        value.with_traceback(short)
    return short


def _shorten_chained(value: BaseException | None) -> None:
    """The exceptions ``value`` was raised from or during (printed above it): shortened too."""
    seen = {id(value)}
    chained = [value.__cause__, value.__context__] if value is not None else []
    while chained:
        exc = chained.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        short = without_own_frames(exc.__traceback__)
        if short is not exc.__traceback__:
            exc.with_traceback(short)
        chained.extend((exc.__cause__, exc.__context__))


_state: dict[str, Any] = {}


def _sys_hook(exc_type: type[BaseException], value: BaseException,
              tb: TracebackType | None) -> None:
    previous = _state.get("sys_previous") or sys.__excepthook__
    previous(exc_type, value, for_display(value, tb))


def thread_hook_args(args: Any) -> Any:
    """``threading.excepthook``'s argument with the shortened traceback (the same object when
    nothing changes)."""
    tb = for_display(args.exc_value, args.exc_traceback)
    if tb is args.exc_traceback:
        return args
    return threading.ExceptHookArgs([args.exc_type, args.exc_value, tb, args.thread])


def install() -> None:
    if "sys_installed" not in _state:
        _state["sys_previous"] = sys.excepthook
        _state["sys_installed"] = True
        sys.excepthook = _sys_hook


def uninstall() -> None:
    if _state.pop("sys_installed", None) and sys.excepthook is _sys_hook:
        sys.excepthook = _state.get("sys_previous") or sys.__excepthook__
    _state.clear()
