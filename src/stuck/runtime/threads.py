"""Thread.join tracking: a join is a wait on the joined thread, which only it can end; and
Thread.start, which notes each thread so that a report can name it after it ends.

``threading.Thread.join`` and ``start`` are patched as methods of the class (not by replacing
the class), so user subclasses defined before ``install()`` are tracked too.
"""

from __future__ import annotations

import _thread
import sys
import threading
from typing import Any

from stuck.runtime import detect, endings, registry
from stuck.runtime.patch import original
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

_orig_join: Any = original(threading.Thread, "join")
_orig_start: Any = original(threading.Thread, "start")
_note_thread = endings.note_thread


def start(self: threading.Thread) -> None:
    """``Thread.start``, after noting the Thread (weakly) so that a report can name it once
    it has ended (``endings.note_thread``)."""
    _note_thread(self)
    endings.watch_errors(self)
    _orig_start(self)
    endings.note_started(self)


def _thread_wakers(resource: object, op: str) -> list[int] | None:
    thread: threading.Thread = resource  # type: ignore[assignment]
    ident = thread.ident
    if ident is None or not thread.is_alive():
        return None
    return [ident]


def join(self: threading.Thread, timeout: float | None = None) -> None:
    me = _thread.get_ident()  # not threading.current_thread(): see stall._current_thread
    if self.ident is None or self.ident == me or not self.is_alive():
        _orig_join(self, timeout)  # let the original say what is wrong
        return
    record = registry.WaitRecord(self, "join", _thread_wakers, sys._getframe(1),
                                 None if timeout is None else float(timeout))
    previous = detect.block_begin(me, record, True)
    try:
        if not record.pending:
            _orig_join(self, timeout)
        else:
            def join_once(t: float | None) -> bool:
                _orig_join(self, t)
                return not self.is_alive()

            detect.wait(me, record, join_once, None if timeout is None else float(timeout),
                        True)
    finally:
        registry.end_wait(me, previous)


REPLACEMENTS: list[tuple[object, str, object]] = [(threading.Thread, "start", start),
                                                   (threading.Thread, "join", join)]


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
