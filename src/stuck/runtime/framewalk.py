"""Reading other threads' frames without crashing the interpreter.

A frame object taken from ``sys._current_frames()`` belongs to a thread that keeps running.
On CPython 3.11 reading ``f_back`` of such a frame once its thread has moved on can follow a
pointer into freed memory and kill the process with SIGSEGV (the crash sampling profilers run
into: python/cpython#111363, getsentry/sentry-python#2386, DataDog/dd-trace-py#13567). While
this thread holds the GIL the other threads do not move, so a frame is safe to walk between the
moment it is taken and the next switch to another thread. The stress test of the walk
(tests/runtime/test_frame_walk.py's program, 8 s a run, on a loaded machine) crashed in 7 runs
of 25 when the frames were taken first and walked later, and in none of 25 with every pass
done at once as below.

So every read of other threads' stacks follows two rules, and goes through this module:

- **Take and walk in one pass** (``with still(): frames = current(); ...``): the frames are
  taken and their ``f_back`` chains read, into plain data or into lists of frame objects,
  inside the block. Nothing in the block waits on a lock or does I/O, which would let other
  threads run. After the block, only ``f_code``, ``f_lineno``, ``f_lasti`` and ``f_globals``
  of frames read in it may be used (a frame whose thread has returned from it keeps its own
  copy of those); never ``f_back``.
- **Do not switch during the pass**: ``still()`` raises the interpreter's switch interval for
  the length of the block, so that the interpreter does not hand the GIL to another thread in
  the middle of it. A thread already waiting for the GIL may still get it once; the pass is
  short, so that is rare, not impossible: the walk keeps the window small, it cannot close it.

The caller's own stack (``sys._getframe()``) is never a hazard and does not need this.
"""

from __future__ import annotations

import _thread
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

# The switch interval during a pass. Long enough that no switch is due during one (a pass over
# 200 threads' stacks takes a few milliseconds), short enough that a thread which got the GIL
# in the middle of a pass gives it back soon.
HOLD = 0.25

_guard = _thread.allocate_lock()  # a leaf lock: held for a few lines, never around a call out
_depth = 0
_saved: float | None = None


@contextmanager
def still() -> Iterator[None]:
    """A pass over other threads' stacks: no switch to another thread is due while it lasts."""
    global _depth, _saved
    with _guard:
        if _depth == 0:
            _saved = sys.getswitchinterval()
            sys.setswitchinterval(max(HOLD, _saved))
        _depth += 1
    try:
        yield
    finally:
        with _guard:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                if sys.getswitchinterval() == max(HOLD, _saved):  # the program set none meanwhile
                    sys.setswitchinterval(_saved)
                _saved = None


def current() -> dict[int, FrameType]:
    """Every thread's innermost frame, by ident: only inside ``still()``."""
    if _depth == 0:
        raise RuntimeError("framewalk.current() outside framewalk.still()")
    return sys._current_frames()


def read(convert: Callable[[FrameType], T]) -> dict[int, T]:
    """``convert`` of every thread's innermost frame, by ident, in one pass."""
    with still():
        return {ident: convert(frame) for ident, frame in sys._current_frames().items()}


def read_one(ident: int | None, convert: Callable[[FrameType | None], T]) -> T:
    """``convert`` of one thread's innermost frame (None if it has none), in one pass."""
    with still():
        frame = sys._current_frames().get(ident) if ident is not None else None
        return convert(frame)


def idents() -> set[int]:
    """The idents of the threads that run Python now (no frame is read)."""
    return set(sys._current_frames())


def chain(frame: FrameType | None, limit: int = 64) -> list[FrameType]:
    """``frame`` and its callers, innermost first, at most ``limit``: to be called inside a
    pass; the list may be used after it (see the module's doc)."""
    out: list[FrameType] = []
    while frame is not None and len(out) < limit:
        out.append(frame)
        frame = frame.f_back
    return out
