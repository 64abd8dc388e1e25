"""Thread.join tracking: a join is a wait on the joined thread, which only it can end; and
Thread.start, which notes each thread so that a report can name it after it ends.

``threading.Thread.join`` and ``start`` are patched as methods of the class (not by replacing
the class), so user subclasses defined before ``install()`` are tracked too.
"""

from __future__ import annotations

import _thread
import contextlib
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


_orig_thread_start: Any = original(_thread, "start_new_thread")
threads_starting = registry.threads_starting  # the count lives in the registry, read by detect
_begun = registry.thread_begun


def _unraisable_args_type() -> Any:
    """The type of ``sys.unraisablehook``'s argument (not exposed by name)."""
    got: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = got.append
    try:
        class _Probe:
            def __del__(self) -> None:
                raise RuntimeError

        _Probe()
    finally:
        sys.unraisablehook = previous
    return type(got[0]) if got else None


_UnraisableArgs: Any = _unraisable_args_type()  # at import: before the program's threads


def _report_as_thread_does(exc: BaseException, function: Any) -> None:
    tb = exc.__traceback__
    tb = tb.tb_next if tb is not None else None  # the wrapper's own frame: not the program's
    if _UnraisableArgs is None:
        raise exc.with_traceback(tb)
    sys.unraisablehook(_UnraisableArgs((type(exc), exc, tb,
                                        "Exception ignored in thread started by", function)))


def start_counted(function: Any, args: Any, kwargs: Any = None) -> int:
    """``_thread.start_new_thread``, counting the thread as starting until it runs: it returns
    before the new thread runs, and on a loaded machine that can be a long while."""
    def begin(*a: Any, **kw: Any) -> None:
        _begun()
        try:
            function(*a, **kw)
        except SystemExit:
            pass  # as _thread does: the thread ends quietly
        except BaseException as exc:  # reported as _thread does, without this frame
            _report_as_thread_does(exc, function)

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):  # its name in errors
        with contextlib.suppress(AttributeError, TypeError):
            setattr(begin, name, getattr(function, name))
    registry.thread_starting()
    try:
        if kwargs is None:
            return int(_orig_thread_start(begin, args))
        return int(_orig_thread_start(begin, args, kwargs))
    except BaseException:
        _begun()
        raise


REPLACEMENTS: list[tuple[object, str, object]] = [(threading.Thread, "start", start),
                                                   (threading.Thread, "join", join),
                                                   (_thread, "start_new_thread", start_counted)]


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
