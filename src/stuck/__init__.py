"""stuck: find out why concurrent software is stuck, and catch it before it gets stuck.

``import stuck`` is cheap: the names below are loaded on first use, so a program that only calls
``stuck.install()`` never imports the command line, the dump parsers or the reports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stuck.__about__ import __version__
from stuck.errors import DeadlockError, StuckError

if TYPE_CHECKING:
    from stuck.runtime import install, snapshot, uninstall

__all__ = ["DeadlockError", "StuckError", "__version__", "install", "snapshot", "uninstall"]

# Public names that live in submodules, imported when first touched.
_LAZY = {
    "install": "stuck.runtime",
    "uninstall": "stuck.runtime",
    "snapshot": "stuck.runtime",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stuck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
