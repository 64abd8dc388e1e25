"""Primitives a target uses that were made before the exploration started.

Explore controls a lock, condition, event or queue only if it was made inside a controlled
run (``stuck.explore.primitives``): that is what lets it choose who runs when the primitive is
taken, and start every execution from the same state. A primitive made earlier -- a
module-level ``LOCK = threading.Lock()`` imported before exploring, or one captured from an
enclosing function -- is an ordinary lock to every explored thread: the interleavings around
it are never tried, and a deadlock through it is never found. A "pass" over such a target
would promise more than was searched, so the exploration names them instead.

The search is a bounded walk from the target: the global names its code (and the code of the
functions nested in it) reads, the functions and classes of the same module those names lead
to, and the values captured in closures. A value is a primitive made outside when it is one of
the original lock types or a standard library primitive built on one (``Event``,
``Condition``, ``Semaphore``, ``queue.Queue``...), or an object holding one directly among its
attributes (an ``Account`` whose ``lock`` is a module-level instance).
"""

from __future__ import annotations

import _thread
import queue
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

# Captured at import, before any exploration replaces the factories.
_LOCK_TYPES: tuple[type, ...] = (type(_thread.allocate_lock()), _thread.RLock)
_STDLIB: tuple[type, ...] = (threading.Condition, threading.Event, threading.Semaphore,
                             threading.Barrier, queue.Queue, queue.SimpleQueue)

_MAX_VISITS = 2_000  # objects looked at per target; the walk stops there


def is_made_outside(value: object) -> bool:
    """Whether ``value`` is a primitive explore does not control, or directly holds one."""
    if isinstance(value, _LOCK_TYPES + _STDLIB):
        return True
    attrs = getattr(value, "__dict__", None)
    if not isinstance(attrs, dict) or isinstance(value, (type, types.ModuleType)):
        return False
    return any(isinstance(v, _LOCK_TYPES + _STDLIB) for v in list(attrs.values())[:64])


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def made_outside(target: Callable[..., object]) -> list[str]:
    """Names (``module.NAME``) of the primitives made outside that ``target`` can reach."""
    found: dict[str, None] = {}
    seen: set[int] = set()
    todo: list[object] = [target]
    home = getattr(target, "__module__", None)
    while todo and len(seen) < _MAX_VISITS:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        func: Any = obj
        if isinstance(obj, (types.MethodType, staticmethod, classmethod)):
            func = obj.__func__
        if isinstance(func, types.FunctionType):
            g = func.__globals__
            module = g.get("__name__", "?")
            for code in _codes(func.__code__):
                for name in code.co_names:
                    if name not in g:
                        continue
                    value = g[name]
                    if is_made_outside(value):
                        found[f"{module}.{name}"] = None
                    elif _worth_following(value, home):
                        todo.append(value)
            cells = zip(func.__code__.co_freevars, func.__closure__ or (), strict=False)
            for var, cell in cells:
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if is_made_outside(value):
                    found[f"{func.__qualname__}: {var}"] = None
                elif _worth_following(value, home):
                    todo.append(value)
        elif isinstance(obj, type):
            for name, value in list(vars(obj).items()):
                if is_made_outside(value):
                    found[f"{obj.__module__}.{obj.__qualname__}.{name}"] = None
                elif isinstance(value, (types.FunctionType, staticmethod, classmethod)):
                    todo.append(value)
    return list(found)


def _worth_following(value: object, home: str | None) -> bool:
    """Functions and classes of the target's own module: what its code calls, whose code
    may take a module-level lock. Other modules are the program's libraries: not walked."""
    if isinstance(value, (types.FunctionType, type)):
        return getattr(value, "__module__", None) == home
    return False


def describe(names: list[str]) -> str:
    """The note an exploration shows for primitives made outside it."""
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return (f"not controlled: {shown} (made before exploring, so explore never chose who "
            "takes them and their interleavings were not searched); make them inside the "
            "explored function, or in the target's own module, which stuck explore TARGET "
            "runs afresh in every execution")
