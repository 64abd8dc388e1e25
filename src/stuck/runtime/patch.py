"""The patching layer: swap attributes of the standard library for replacements, and back.

One *backend* is active at a time. The live backend (``stuck.runtime``) installs tracked
primitives that behave exactly like the originals and report to the registry; the controlled
scheduler of ``stuck explore`` installs primitives that yield to its scheduler. Both go through
here, so both see the same set of patch points, and ``original()`` always hands back the real
object, which is what stuck's own code uses for its leaf locks.

The layer only replaces attributes; it never rewrites code. Code that captured a primitive
before installation (``from threading import Lock`` at import time) keeps the original: that is
the documented limit, and the reason ``stuck run`` installs before the program is imported.
"""

from __future__ import annotations

import _thread
from collections.abc import Iterable

from stuck.errors import StuckError
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

# A leaf lock: nothing is called while it is held.
_mutex = _thread.allocate_lock()
_active_backend: str | None = None
_saved: list[tuple[object, str, object, bool]] = []  # owner, attribute, old value, was own attr
_originals: dict[tuple[int, str], object] = {}

Replacement = tuple[object, str, object]  # (module or class, attribute name, new value)


class PatchError(StuckError, RuntimeError):
    """Another backend is already installed, or none is installed to remove."""


def active() -> str | None:
    """The name of the installed backend, or None."""
    return _active_backend


def original(owner: object, attribute: str) -> object:
    """The value ``owner.attribute`` had before any backend replaced it."""
    with _mutex:
        saved = _originals.get((id(owner), attribute))
    if saved is not None:
        return saved
    return getattr(owner, attribute)


def install(backend: str, replacements: Iterable[Replacement]) -> None:
    """Install ``replacements`` as backend ``backend``; all or nothing."""
    global _active_backend
    items = list(replacements)
    with _mutex:
        if _active_backend is not None:
            raise PatchError(
                f"stuck: the {_active_backend!r} instrumentation is already installed; "
                f"uninstall it before installing {backend!r}"
            )
        for owner, attribute, value in items:
            own = attribute in getattr(owner, "__dict__", {})
            old = getattr(owner, attribute)
            _saved.append((owner, attribute, old, own))
            _originals[(id(owner), attribute)] = old
            setattr(owner, attribute, value)
        _active_backend = backend


def extend(backend: str, replacements: Iterable[Replacement]) -> bool:
    """Add ``replacements`` to the installed backend ``backend`` (for a module the program
    imports later); False, and nothing replaced, when ``backend`` is not the one installed.
    ``uninstall`` restores them with the rest."""
    items = list(replacements)
    with _mutex:
        if _active_backend != backend:
            return False
        for owner, attribute, value in items:
            if (id(owner), attribute) in _originals:
                continue  # already replaced
            own = attribute in getattr(owner, "__dict__", {})
            old = getattr(owner, attribute)
            _saved.append((owner, attribute, old, own))
            _originals[(id(owner), attribute)] = old
            setattr(owner, attribute, value)
        return True


def uninstall(backend: str) -> None:
    """Restore everything ``backend`` replaced, in reverse order."""
    global _active_backend
    with _mutex:
        if _active_backend != backend:
            raise PatchError(f"stuck: {backend!r} is not installed (active: {_active_backend!r})")
        while _saved:
            owner, attribute, old, own = _saved.pop()
            if own:
                setattr(owner, attribute, old)
            else:
                # The attribute was inherited (say, a method of a base class): remove our
                # override instead of pinning the inherited value onto the subclass.
                delattr(owner, attribute)
        _originals.clear()
        _active_backend = None


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
