"""The program's Python signal handlers, read when a snapshot is taken.

CPython runs a Python signal handler in the main thread between bytecodes, and interrupts a
lock wait of the main thread to do so: the handler can end a wait anywhere in the program (set
an Event, release a Semaphore, put to a queue, ``loop.call_soon_threadsafe(stop.set)``). The
graceful-shutdown pattern rests on it: the main thread waits for an Event that the SIGTERM
handler sets. The rules must know these handlers to not call such a wait proven
(``stuck.rules.confidence.signal_handler_doubt``), so the live snapshot records them as a fact
of its process (``model.Process.signal_handlers``), and a saved report keeps them.

Reading them is cheap (``signal.getsignal`` for each valid signal, about 60 look-ups of the
signal module's table, no system call). stuck's own handlers (the snapshot signal, the
``raise`` policy's) are not the program's and are left out. A handler installed from C (not
through ``signal.signal``) is not seen: ``getsignal`` returns None for it.
"""

from __future__ import annotations

import signal
import types
from typing import Any

from stuck.model import SignalHandler


def _code_of(handler: Any) -> tuple[str, str | None, str | None]:
    """The qualified name, file:line and module of a handler: a function, a bound method, a
    ``functools.partial`` of one, or an object with ``__call__``."""
    inner = handler
    for _ in range(5):  # partial of partial ...
        func = getattr(inner, "func", None)
        if func is None or not callable(func):
            break
        inner = func
    inner = getattr(inner, "__func__", inner)  # a bound method
    code = getattr(inner, "__code__", None)
    if code is None and isinstance(inner, types.BuiltinFunctionType):
        name = getattr(inner, "__qualname__", None) or inner.__name__
    elif code is None:  # an object with __call__
        call = type(inner).__dict__.get("__call__")
        call = getattr(call, "__func__", call)
        code = getattr(call, "__code__", None)
        name = getattr(type(inner), "__qualname__", None) or repr(inner)
    else:
        name = getattr(inner, "__qualname__", None) or getattr(inner, "__name__", None) \
            or code.co_name
    where = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else None
    module = getattr(inner, "__module__", None) or getattr(type(inner), "__module__", None)
    return str(name), where, str(module) if module is not None else None


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(int(sig))


def _valid_signals() -> tuple[int, ...]:
    try:
        return tuple(sorted(int(s) for s in signal.valid_signals()))
    except (AttributeError, OSError, ValueError):
        return ()


_VALID = _valid_signals()  # fixed for the process: read once


def python_signal_handlers() -> list[SignalHandler]:
    """The signals with a handler written in Python, other than stuck's own, in signal order.
    Never raises: a handler that cannot be read is left out."""
    out: list[SignalHandler] = []
    for sig in _VALID:
        try:
            handler = signal.getsignal(sig)
            if not callable(handler) or handler is signal.default_int_handler:
                continue  # SIG_DFL, SIG_IGN, None (set from C), Python's own SIGINT default
            name, where, module = _code_of(handler)
        except Exception:  # a strange handler object must not break a report
            continue
        if module is not None and (module == "stuck" or module.startswith("stuck.")):
            continue  # the snapshot signal's handler, the raise policy's
        if name == "_sighandler_noop" and (module or "").startswith("asyncio."):
            # loop.add_signal_handler: the signal wakes the loop, which runs the callback
            # given there (kept by the loop, read by stuck.runtime.aio); it can end a wait too.
            name, where = "a callback set with loop.add_signal_handler", None
        out.append(SignalHandler(signal=_signal_name(sig), handler=name, where=where,
                                 module=module))
    return out
