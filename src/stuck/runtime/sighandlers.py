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
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest


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


def _instance_dict(obj: Any) -> dict[str, Any] | None:
    """``obj.__dict__`` read without running the program's code (no ``__getattr__``, no
    property)."""
    try:
        d = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None
    return d if isinstance(d, dict) else None


def _named_objects(handler: Any) -> list[Any]:
    """The objects a handler's code names directly: its globals and closure cells named in its
    code (and in the functions and lambdas written inside it), its defaults, a partial's
    arguments, a bound method's object, and the attributes of those its code names
    (``self.stop.set()``: ``self``, then ``stop``). Read from dicts and cells only: no code of
    the program runs."""
    found: list[Any] = []
    inner = handler
    for _ in range(5):  # partial of partial ...
        func = getattr(inner, "func", None)
        if func is None or not callable(func):
            break
        found.extend(getattr(inner, "args", ()) or ())
        found.extend((getattr(inner, "keywords", None) or {}).values())
        inner = func
    bound = getattr(inner, "__self__", None)
    if bound is not None and not isinstance(bound, types.ModuleType):
        found.append(bound)
    inner = getattr(inner, "__func__", inner)
    code = getattr(inner, "__code__", None)
    if code is None:
        return found
    names: set[str] = set()
    stack, seen_codes = [code], 0
    while stack and seen_codes < 20:
        c = stack.pop()
        seen_codes += 1
        names.update(c.co_names)
        names.update(c.co_freevars)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    globals_ = getattr(inner, "__globals__", None) or {}
    for name in names:
        if name in globals_:
            found.append(globals_[name])
    for cell in getattr(inner, "__closure__", None) or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    found.extend(getattr(inner, "__defaults__", None) or ())
    found.extend((getattr(inner, "__kwdefaults__", None) or {}).values())
    # One level of attributes the code names: self.stop, app.shutdown_event.
    for obj in list(found):
        d = _instance_dict(obj)
        if d is not None:
            found.extend(d[n] for n in names if n in d)
    return found


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


def python_signal_handlers(rid_of: dict[int, str] | None = None) -> list[SignalHandler]:
    """The signals with a handler written in Python, other than stuck's own, in signal order.
    ``rid_of``: resource ids of the snapshot by object id; each handler's ``names`` are those
    of them its code names directly. Never raises: a handler that cannot be read is left out."""
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
        names: list[str] = []
        if rid_of:
            try:
                for obj in _named_objects(handler):
                    rid = rid_of.get(id(obj))
                    if rid is not None and rid not in names:
                        names.append(rid)
            except Exception:  # reading a strange object must not break a report
                names = []
        out.append(SignalHandler(signal=_signal_name(sig), handler=name, where=where,
                                 module=module, names=names))
    return out


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
