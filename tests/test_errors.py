"""Every exception stuck defines is a StuckError, so ``except stuck.StuckError`` catches
whatever stuck raises (each keeps its standard base too: a ReportFormatError is still a
ValueError). A new exception class that forgets it fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import stuck
from stuck.errors import StuckError

# Control flow inside the controlled scheduler, never seen by a program: it unwinds a thread
# of an execution that is given up on (a BaseException, like SystemExit, on purpose).
INTERNAL = {"stuck.explore.scheduler.Aborted"}


def test_every_exception_stuck_defines_is_a_stuck_error() -> None:
    defined: list[type] = []
    for info in pkgutil.walk_packages(stuck.__path__, "stuck."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == info.name and issubclass(obj, BaseException):
                defined.append(obj)
    assert len(defined) >= 8  # the walk found stuck's modules
    stray = sorted(f"{c.__module__}.{c.__qualname__}" for c in defined
                   if not issubclass(c, StuckError)
                   and f"{c.__module__}.{c.__qualname__}" not in INTERNAL)
    assert stray == []
