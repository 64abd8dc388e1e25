"""stuck: find out why concurrent software is stuck, and catch it before it gets stuck.

``import stuck`` is cheap: the names below are loaded on first use, so a program that only calls
``stuck.install()`` never imports the command line, the dump parsers or the reports.

PYTEST_DONT_REWRITE: pytest rewrites the asserts of every package that provides a plugin, and
warns when such a package was imported before it could. Under ``stuck run -m pytest`` this
package is necessarily imported first; the marker tells pytest it has no asserts to rewrite, so
projects that turn warnings into errors (``filterwarnings = error``) still start.
"""

from __future__ import annotations

import importlib

from stuck.__about__ import __version__
from stuck.errors import DeadlockError, HangError, StallError, StuckError

# Not ``from typing import TYPE_CHECKING``: typing costs tens of milliseconds to import, and
# ``stuck run`` imports this package before it can make Ctrl-C end it cleanly (stuck.cli).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from stuck import explore
    from stuck.runtime import install, snapshot, uninstall
    from stuck.runtime.lockorder import order_by

__all__ = [
    "DeadlockError", "HangError", "StallError", "StuckError", "__version__", "explore", "install", "order_by", "snapshot",
    "uninstall",
]

# Public names that live in submodules, imported when first touched: name -> (module, attribute);
# attribute None means the module itself (``stuck.explore`` is a subpackage that can be called).
_LAZY: dict[str, tuple[str, str | None]] = {
    "install": ("stuck.runtime", "install"),
    "uninstall": ("stuck.runtime", "uninstall"),
    "snapshot": ("stuck.runtime", "snapshot"),
    "order_by": ("stuck.runtime.lockorder", "order_by"),
    "explore": ("stuck.explore", None),
}


def __getattr__(name: str) -> Any:
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module 'stuck' has no attribute {name!r}")
    module_name, attribute = spec
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
