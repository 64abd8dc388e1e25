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
  asyncio's primitives, ``threading.Lock`` from 3.13 on) is left alone and reported as escaped:
  rebinding it would change ``isinstance()`` for the objects made before, and subclasses already
  defined keep their original base anyway.

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
                found_escaped.append(f"{where} (bound to {entry[1]} before stuck was installed)")
            else:
                out.append((module, attribute, entry[2]))
                found_rebound.append(where)
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
