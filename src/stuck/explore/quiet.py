"""Keep the program's own error reports quiet about explore's teardown.

An execution ends by raising ``Aborted`` in every controlled thread still blocked. Library code
that catches ``BaseException`` reports it as its own failure: a ``ThreadPoolExecutor`` worker
logs "Exception in worker" with the traceback, and a weak-reference callback interrupted by it
is printed as "Exception ignored in". Hundreds of those per exploration bury the one report that
matters, and none of them is the program's. While exploring, a filter on the logging handlers
of the process drops the records whose exception is ``Aborted``, and ``sys.unraisablehook``
leaves it out; everything else is passed on unchanged.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from stuck.explore.scheduler import Aborted

_state: dict[str, Any] = {"depth": 0}


def _is_teardown(exc: BaseException | None) -> bool:
    return isinstance(exc, Aborted)


class _DropTeardown(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        return not (info and _is_teardown(info[1]))


_filter = _DropTeardown()


def _unraisable(unraisable: Any) -> None:
    if _is_teardown(getattr(unraisable, "exc_value", None)):
        return
    _state["previous_unraisable"](unraisable)


def install() -> None:
    """Start dropping teardown reports (nests: each ``install`` needs an ``uninstall``)."""
    _state["depth"] += 1
    if _state["depth"] > 1:
        return
    # A logger's filters apply only to records logged on it, not to those of its children:
    # the filter goes on the loggers the standard library reports worker failures through.
    for name in ("concurrent.futures", "asyncio"):
        logging.getLogger(name).addFilter(_filter)
    _state["previous_unraisable"] = sys.unraisablehook
    sys.unraisablehook = _unraisable


def uninstall() -> None:
    _state["depth"] -= 1
    if _state["depth"] > 0:
        return
    for name in ("concurrent.futures", "asyncio"):
        logging.getLogger(name).removeFilter(_filter)
    if sys.unraisablehook is _unraisable:
        sys.unraisablehook = _state.pop("previous_unraisable")
