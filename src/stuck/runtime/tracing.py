"""A program's own trace and profile functions do not see stuck's frames.

The original primitives are written in C: a function set with ``sys.settrace`` never sees a
``lock.acquire``, and one set with ``sys.setprofile`` sees a single ``c_call``. The tracked ones
are Python code, so a program that traces itself (a debugger, a tracer, a call counter) would
get thousands of events from stuck's frames it never asked for. While stuck is installed,
``sys.settrace``, ``sys.setprofile``, ``threading.settrace`` and ``threading.setprofile`` wrap
a function written in Python in a filter that leaves stuck's frames out (a ``call`` event in
one of them gets no local trace function, so its lines are not reported either), and the
matching ``get`` functions hand back what the program set. A trace function written in C (the
one coverage.py uses) is passed on as it is: wrapping it would slow it down many times, and it
is a tool's, not the program's.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType, FunctionType, MethodType
from typing import Any

from stuck.runtime.patch import original
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

# The runtime's own files (not the rest of stuck: ``stuck run`` calls the program from its
# runner, and the program's frames are the program's).
_STUCK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIB_DIR = os.path.dirname(os.path.abspath(threading.__file__)) + os.sep
# The modules whose primitives stuck stands in for: their frames run under plain Python too
# (a tracked Event's wait runs threading's), so the program's tracer sees them as before.
_PLUMBING = tuple(_LIB_DIR + name for name in (
    "threading.py", "queue.py", "concurrent" + os.sep, "asyncio" + os.sep))
OURS, PLUMBING, OTHER = 0, 1, 2
_kinds: dict[str, int] = {}
_MAX_WALK = 12  # frames looked at outwards from a call, to find whether stuck made it

_orig_settrace: Any = original(sys, "settrace")
_orig_setprofile: Any = original(sys, "setprofile")
_orig_gettrace: Any = original(sys, "gettrace")
_orig_getprofile: Any = original(sys, "getprofile")
_orig_thread_settrace: Any = original(threading, "settrace")
_orig_thread_setprofile: Any = original(threading, "setprofile")


def _kind(frame: FrameType) -> int:
    filename = frame.f_code.co_filename
    kind = _kinds.get(filename)
    if kind is None:
        path = os.path.abspath(filename)
        kind = (OURS if path.startswith(_STUCK_DIR)
                else PLUMBING if path.startswith(_PLUMBING) else OTHER)
        if len(_kinds) > 4096:
            _kinds.clear()
        _kinds[filename] = kind
    return kind


def in_library_internals(frame: FrameType | None) -> bool:
    """Is ``frame`` stuck's runtime or the plumbing it stands in for (threading, queue,
    concurrent.futures, asyncio)? Their steps (take a lock, queue an item, wake a waiter) an
    exception arriving between two of them can leave half done; the watchdog raises no
    ``HangError`` there. (None: an ended thread, with nothing to break.)"""
    return frame is not None and _kind(frame) != OTHER


def in_own_steps(frame: FrameType | None) -> bool:
    """Is ``frame`` stuck's runtime, or code it called? Waiting there or not, its steps (take
    the real lock, then record the owner) are not safe against an exception arriving between
    two of them: one arriving just after a wait returns with the lock leaves it held by a
    thread whose ``with`` block never began. (The plumbing's own waits are: threading and queue
    clean up on an exception there, as they must for Ctrl-C.)"""
    return frame is not None and _is_ours(frame)


def _is_ours(frame: FrameType) -> bool:
    """A frame of stuck's, or one stuck's code called (``dis`` reading a call site, a
    ``WeakSet`` listing a primitive): what plain Python would not have run. Frames of the
    plumbing stuck stands in for, and whatever they call, are the program's as before."""
    f: FrameType | None = frame
    for _ in range(_MAX_WALK):
        if f is None:
            return False
        kind = _kind(f)
        if kind != OTHER:
            return kind == OURS
        f = f.f_back
    return False


class _Filtered:
    """A program's trace or profile function, minus the events of stuck's frames."""

    __slots__ = ("func",)

    def __init__(self, func: Any) -> None:
        self.func = func

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if _is_ours(frame):
            return None
        return self.func(frame, event, arg)


def _wrap(func: Any) -> Any:
    # A function, a method, or an object whose __call__ is written in Python.
    call = vars(type(func)).get("__call__") if func is not None else None
    if isinstance(func, (FunctionType, MethodType)) or isinstance(call, FunctionType):
        return _Filtered(func)
    return func  # None, or a tracer written in C


def _unwrap(func: Any) -> Any:
    return func.func if isinstance(func, _Filtered) else func


def settrace(func: Any) -> None:
    _orig_settrace(func if isinstance(func, _Filtered) else _wrap(func))


def setprofile(func: Any) -> None:
    _orig_setprofile(func if isinstance(func, _Filtered) else _wrap(func))


def gettrace() -> Any:
    return _unwrap(_orig_gettrace())


def getprofile() -> Any:
    return _unwrap(_orig_getprofile())


def thread_settrace(func: Any) -> None:
    # threading stores the function for the threads started from now on; each of them calls
    # sys.settrace with it, which is then already filtered.
    _orig_thread_settrace(func if isinstance(func, _Filtered) else _wrap(func))


def thread_setprofile(func: Any) -> None:
    _orig_thread_setprofile(func if isinstance(func, _Filtered) else _wrap(func))


def thread_gettrace() -> Any:
    return _unwrap(getattr(threading, "_trace_hook", None))


def thread_getprofile() -> Any:
    return _unwrap(getattr(threading, "_profile_hook", None))


for _func, _name in ((settrace, "settrace"), (setprofile, "setprofile"),
                     (gettrace, "gettrace"), (getprofile, "getprofile")):
    _func.__name__ = _func.__qualname__ = _name
    _func.__module__ = "sys"
for _func, _name in ((thread_settrace, "settrace"), (thread_setprofile, "setprofile"),
                     (thread_gettrace, "gettrace"), (thread_getprofile, "getprofile")):
    _func.__name__ = _func.__qualname__ = _name
    _func.__module__ = "threading"

REPLACEMENTS: list[tuple[object, str, object]] = [
    (sys, "settrace", settrace), (sys, "setprofile", setprofile),
    (sys, "gettrace", gettrace), (sys, "getprofile", getprofile),
    (threading, "settrace", thread_settrace), (threading, "setprofile", thread_setprofile),
]
if hasattr(threading, "gettrace"):  # 3.10+
    REPLACEMENTS += [(threading, "gettrace", thread_gettrace),
                     (threading, "getprofile", thread_getprofile)]


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
