"""Names a program bound to the standard primitives before stuck was installed.

``from threading import RLock`` in a module imported before ``install()`` keeps the original
RLock: every lock that module makes afterwards escapes tracking, and a run that finds nothing
would claim more than it checked (under ``pytest --stuck`` a project's conftest often imports
the code under test before the plugin installs). So ``install()`` searches the modules already
loaded for module-level names bound to an original primitive:

- a name bound to a *factory function* (``threading.Lock`` and ``threading.RLock`` before
  Python 3.13, ``_thread.allocate_lock``) is rebound to the replacement through the patch layer,
  so ``uninstall()`` restores it. A function can only be called, and the replacement returns an
  object that behaves the same, so the program sees no difference;
- a name bound to a *class* (``Condition``, ``Semaphore``, ``Event``, ``Barrier``, the queues,
  asyncio's primitives) is rebound the same way, to a subclass of the replacement whose
  ``isinstance()`` and ``issubclass()`` also accept the original's instances and subclasses:
  an object the module made before install is still an instance of the name, and what it makes
  from now on is tracked. A class that cannot be subclassed (``threading.Lock`` from 3.13 on,
  like ``_thread.lock``) is left alone and reported as escaped;
- a class the program derived from an original before install (``class Gate(Condition)``)
  keeps the original as its base: changing a class's bases under objects already made is not
  safe, so it stays untracked and is reported as escaped. ``threading.Thread`` subclasses are
  not concerned: ``join`` is tracked on ``Thread`` itself (``stuck.runtime.threads``).

Only names spelled as the primitive is (``Lock``, ``RLock``, ``Condition``, ...) count: that
is what ``from threading import ...`` binds. The standard library, stuck itself, test tooling
and green-thread libraries are not searched: what they make is plumbing, tracked (or
deliberately not) at the level that means something to the program.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from types import ModuleType

Replacement = tuple[object, str, object]

# Top-level packages whose primitives are tooling, not the program's.
_TOOLING = frozenset({"stuck", "_pytest", "pytest", "pluggy", "xdist", "execnet", "coverage",
                      "py", "_pydevd_bundle", "pydevd", "debugpy", "hypothesis", "gevent",
                      "eventlet", "greenlet"})
_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ()))
_MAX_MODULES = 20000  # a bound on the search, for programs with very many modules

# What install() found: "module.name" of the names rebound, and of those left as they were.
rebound: list[str] = []
escaped: list[str] = []


def _searched(name: str, module: object) -> bool:
    top = name.partition(".")[0]
    return (isinstance(module, ModuleType) and top not in _STDLIB and top not in _TOOLING
            and not top.startswith("_frozen"))


class _AcceptsOriginal(type):
    """The metaclass of a class rebound in a module (see ``_accepting``): an instance or a
    subclass of the original counts as one of the rebound class."""

    _stuck_original: type

    def __instancecheck__(cls, obj: object) -> bool:
        return type.__instancecheck__(cls, obj) or isinstance(obj, cls._stuck_original)

    def __subclasscheck__(cls, sub: type) -> bool:
        return type.__subclasscheck__(cls, sub) or issubclass(sub, cls._stuck_original)


_accepting_cache: dict[int, tuple[type, type]] = {}


def _accepting(original: type, replacement: object) -> type | None:
    """The class to bind where a module bound ``original``: the replacement, under the same
    names, seen by ``isinstance``/``issubclass`` as the original too. None when the
    replacement cannot be subclassed."""
    cached = _accepting_cache.get(id(original))
    if cached is not None and cached[0] is original:
        return cached[1]
    if not isinstance(replacement, type) or type(replacement) is not type:
        return None
    try:
        made = _AcceptsOriginal(replacement.__name__, (replacement,), {
            "__module__": replacement.__module__, "__qualname__": replacement.__qualname__,
            "__doc__": replacement.__doc__, "_stuck_original": original})
    except Exception:
        return None
    _accepting_cache[id(original)] = (original, made)
    return made


def _early_subclasses(original: type) -> list[str]:
    """``module.Class`` of the classes derived from ``original`` by searched modules (the
    program's), which keep the original as their base."""
    out: list[str] = []
    todo: list[type] = list(type.__subclasses__(original))
    seen: set[int] = set()
    while todo and len(out) < 100:
        sub = todo.pop()
        if id(sub) in seen or isinstance(sub, _AcceptsOriginal):
            continue
        seen.add(id(sub))
        todo.extend(type.__subclasses__(sub))
        module_name = sub.__dict__.get("__module__")
        if isinstance(module_name, str) and _searched(module_name,
                                                      sys.modules.get(module_name)):
            out.append(f"{module_name}.{sub.__qualname__}")
    return out


def scan(originals: dict[int, tuple[object, str, object]]) -> list[Replacement]:
    """Search loaded modules for names bound to an original (``id(original)`` -> (original,
    what it is called, its replacement)). Record what is found in ``rebound`` and ``escaped``
    and return the replacements to install for the names that can safely be rebound."""
    out: list[Replacement] = []
    found_rebound: list[str] = []
    found_escaped: list[str] = []
    for count, (name, module) in enumerate(list(sys.modules.items())):
        if count >= _MAX_MODULES:
            break
        if not _searched(name, module):
            continue
        try:
            items = list(vars(module).items())
        except TypeError:  # a module object without a __dict__
            continue
        for attribute, value in items:
            entry = originals.get(id(value))
            if entry is None or entry[0] is not value:
                continue
            if attribute != entry[1].rpartition(".")[2]:
                # ``from threading import Lock`` binds the public name. A private alias
                # (``_allocate_lock = _thread.allocate_lock``) is a library's deliberate use
                # of the raw primitive (gevent's hub does it): left alone, not reported.
                continue
            where = f"{name}.{attribute}"
            if isinstance(value, type):
                accepting = _accepting(value, entry[2])
                if accepting is None:
                    found_escaped.append(f"{where} (bound to {entry[1]} before stuck was "
                                         "installed; it cannot be subclassed)")
                    continue
                out.append((module, attribute, accepting))
            else:
                out.append((module, attribute, entry[2]))
            found_rebound.append(where)
    for value, public, _ in originals.values():
        if isinstance(value, type) and public != "threading.Thread":
            found_escaped.extend(f"{sub} (a subclass of {public} defined before stuck was "
                                 "installed)" for sub in _early_subclasses(value))
    rebound[:] = found_rebound
    escaped[:] = found_escaped
    return out


def originals_of(replacements: Iterable[Replacement],
                 original: object) -> dict[int, tuple[object, str, object]]:
    """``id(original value)`` -> (original, its public name, replacement), for the module-level
    replacements (not methods patched on a class). ``original`` is ``patch.original``."""
    out: dict[int, tuple[object, str, object]] = {}
    for owner, attribute, replacement in replacements:
        if not isinstance(owner, ModuleType):
            continue
        value = original(owner, attribute)  # type: ignore[operator]
        out.setdefault(id(value), (value, f"{owner.__name__}.{attribute}", replacement))
    return out


def forget() -> None:
    rebound.clear()
    escaped.clear()
