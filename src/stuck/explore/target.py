"""Resolve ``path.py::function`` and ``module:function`` into a callable."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from stuck.errors import StuckError


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
    return obj  # type: ignore[no-any-return]


def _required_parameters(func: object) -> list[str]:
    """The parameters ``func`` cannot be called without (pytest fixtures, usually)."""
    try:
        signature = inspect.signature(func)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return []
    return [p.name for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
