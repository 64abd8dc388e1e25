"""Resolve ``path.py::function`` and ``module:function`` into a callable."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any


class TargetError(ValueError):
    """The target cannot be found; the message says what to write instead."""


def resolve(spec: str) -> Callable[[], object]:
    if "::" in spec:
        path, _, name = spec.partition("::")
        if not os.path.isfile(path):
            raise TargetError(f"no such file: {path!r} (TARGET is path.py::function)")
        directory = os.path.dirname(os.path.abspath(path))
        if directory not in sys.path:
            sys.path.insert(0, directory)
        modname = "stuck_explore_target_" + os.path.splitext(os.path.basename(path))[0]
        if modname in sys.modules:
            module: Any = sys.modules[modname]
        else:
            loc = importlib.util.spec_from_file_location(modname, os.path.abspath(path))
            if loc is None or loc.loader is None:
                raise TargetError(f"cannot import {path!r}")
            module = importlib.util.module_from_spec(loc)
            sys.modules[modname] = module
            try:
                loc.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[modname]
                raise TargetError(f"importing {path!r} failed: {type(exc).__name__}: {exc}") from exc
    elif ":" in spec:
        modname, _, name = spec.partition(":")
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
    return obj  # type: ignore[no-any-return]
