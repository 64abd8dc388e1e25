"""Resolve ``path.py::function`` and ``module:function`` into a callable.

When the target reaches locks, events or queues its own module makes at import
(``LOCK = threading.Lock()``), the callable runs the module's code afresh in every execution
before calling the function, as a new process would: those primitives are then made inside
the controlled run, so explore controls them and each execution starts from their initial
state. Other modules are not run again (they are the program's libraries); what the target
still reaches from them is named in the exploration's notes (``stuck.explore.outside``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from stuck.errors import StuckError
from stuck.explore.outside import made_outside


class TargetError(StuckError, ValueError):
    """The target cannot be found; the message says what to write instead."""


def _module_of(path: str) -> tuple[str, str]:
    """The directory to import from and the dotted module name of a file, as pytest does:
    climb while the directory is a package, so ``tests/zoo/a.py`` in package ``zoo`` is
    ``zoo.a`` imported from ``tests/`` and its own ``from zoo.x import y`` works."""
    directory, filename = os.path.split(path)
    parts = [os.path.splitext(filename)[0]]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.append(package)
    return directory, ".".join(reversed(parts))


def resolve(spec: str) -> Callable[[], object]:
    if "::" in spec:
        path, _, name = spec.partition("::")
        if not os.path.isfile(path):
            raise TargetError(f"no such file: {path!r} (TARGET is path.py::function)")
        basedir, modname = _module_of(os.path.abspath(path))
        if basedir not in sys.path:
            sys.path.insert(0, basedir)
        try:
            module: Any = importlib.import_module(modname)
        except Exception as exc:
            raise TargetError(f"importing {path!r} failed: {type(exc).__name__}: {exc}") from exc
        if os.path.abspath(getattr(module, "__file__", "") or "") != os.path.abspath(path):
            raise TargetError(f"importing {path!r} as {modname!r} found another module "
                              f"({module.__file__}); rename one of them")
    elif ":" in spec:
        modname, _, name = spec.partition(":")
        # As ``python -m``: modules in the current directory can be named.
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(modname)
        except Exception as exc:
            raise TargetError(f"cannot import module {modname!r}: {type(exc).__name__}: {exc}") from exc
    else:
        raise TargetError(f"TARGET must be path.py::function or module:function, not {spec!r}")
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise TargetError(f"{spec!r}: no function {name!r} in {module.__name__}")
    if not callable(obj):
        raise TargetError(f"{spec!r} is not callable")
    needed = _required_parameters(obj)
    if needed:
        names = ", ".join(needed)
        raise TargetError(
            f"{spec!r} needs arguments ({names}) and stuck explore calls TARGET with none; "
            "if they are pytest fixtures, mark the test with @pytest.mark.stuck_explore and "
            "run it with pytest, which provides them")
    outside = made_outside(obj)
    if outside:
        return _afresh(module, name, outside) or obj
    return obj  # type: ignore[no-any-return]


def _attribute(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _module_code(module: types.ModuleType) -> types.CodeType | None:
    """The module's code object: from its loader, or compiled from its ``.py`` file when the
    loader gives none (pytest's assertion-rewriting importer has no ``get_code``)."""
    spec = module.__spec__
    loader: Any = spec.loader if spec is not None else None
    try:
        code = loader.get_code(module.__name__)
        if code is not None:
            return code  # type: ignore[no-any-return]
    except Exception:
        pass
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None
    try:
        return importlib.machinery.SourceFileLoader(module.__name__, path).get_code(
            module.__name__)
    except Exception:
        return None


def _afresh(module: types.ModuleType, name: str,
            outside: list[str]) -> Callable[[], object] | None:
    """A callable that runs ``module``'s code in a new module object and calls its ``name``
    (None when the module's code cannot be had from its loader)."""
    code = _module_code(module)
    if code is None:  # no source to run again: call the imported function as it is
        return None

    def new_module() -> types.ModuleType:
        fresh = types.ModuleType(module.__name__, module.__doc__)
        for attr in ("__file__", "__spec__", "__loader__", "__package__", "__path__"):
            if hasattr(module, attr):
                setattr(fresh, attr, getattr(module, attr))
        exec(code, fresh.__dict__)  # the target's own module, run as importing it ran it
        return fresh

    # Once, outside any controlled run: which of the primitives are made by the module's own
    # code (a new object each time it runs) and which it imports from elsewhere (the same).
    try:
        trial = new_module()
    except Exception:
        return None
    prefix = module.__name__ + "."

    def made_elsewhere(found: str) -> bool:
        """Still the same object once the module has run again: not its own code's."""
        if not found.startswith(prefix):
            return True  # another module's, or captured by a closure
        rest = found[len(prefix):]
        if "." in rest:
            return False  # a class attribute: the class is made again
        return trial.__dict__.get(rest) is module.__dict__.get(rest)

    remaining = [n for n in outside if made_elsewhere(n)]

    def afresh() -> object:
        return _attribute(new_module(), name)()

    afresh.__module__ = module.__name__
    afresh.__qualname__ = afresh.__name__ = name
    afresh.__stuck_outside__ = remaining  # type: ignore[attr-defined]
    return afresh


def _required_parameters(func: object) -> list[str]:
    """The parameters ``func`` cannot be called without (pytest fixtures, usually)."""
    try:
        signature = inspect.signature(func)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return []
    return [p.name for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
