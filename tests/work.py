"""Counting the work a call does, instead of timing it: a test that compares the work done on
an input with the work done on one many times as large catches quadratic behaviour without
depending on how loaded the machine is.

Work is counted in two parts, both deterministic for a given input:

- bytecode instructions executed in stuck's own code (a line tracer with ``f_trace_opcodes``):
  a loop inside a loop shows here whatever it calls;
- characters handed to stuck's compiled regular expressions (every ``re.Pattern`` bound to a
  module-level name in a ``stuck`` module is swapped for a counting proxy while counting): a
  search over the whole remaining text for each line shows here, though it is one C call.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

_PATTERN_METHODS = ("match", "search", "fullmatch", "finditer", "findall", "sub", "subn",
                    "split")


@dataclass
class Work:
    opcodes: int = 0
    regex_chars: int = 0

    @property
    def total(self) -> int:
        return self.opcodes + self.regex_chars


class _CountingPattern:
    """A stand-in for a compiled pattern that adds the length of each subject to a counter."""

    def __init__(self, pattern: re.Pattern[Any], work: Work) -> None:
        self._pattern = pattern
        self._work = work
        for method in _PATTERN_METHODS:
            setattr(self, method, self._counting(method))

    def _counting(self, method: str) -> Callable[..., Any]:
        real = getattr(self._pattern, method)
        subject_at = 1 if method in ("sub", "subn") else 0

        def call(*args: Any, **kwargs: Any) -> Any:
            subject = args[subject_at] if len(args) > subject_at else kwargs.get("string", "")
            pos = args[subject_at + 1] if method not in ("sub", "subn", "split") \
                and len(args) > subject_at + 1 else kwargs.get("pos", 0)
            self._work.regex_chars += max(0, len(subject) - int(pos or 0))
            return real(*args, **kwargs)

        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pattern, name)


@contextmanager
def counting(prefix: str = "stuck") -> Iterator[Work]:
    """Count the work done inside the ``with`` block by code of the modules named ``prefix``
    or ``prefix.*``."""
    work = Work()
    swapped: list[tuple[dict[str, Any], str, Any]] = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == prefix or name.startswith(prefix + ".")):
            continue
        namespace = vars(module)
        for attr, value in list(namespace.items()):
            if isinstance(value, re.Pattern):
                swapped.append((namespace, attr, value))
                namespace[attr] = _CountingPattern(value, work)
    own_files: dict[str, bool] = {}

    def ours(frame: FrameType) -> bool:
        file = frame.f_code.co_filename
        known = own_files.get(file)
        if known is None:
            module = frame.f_globals.get("__name__") or ""
            known = own_files[file] = module == prefix or module.startswith(prefix + ".")
        return known

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            work.opcodes += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if not ours(frame):
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return local

    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield work
    finally:
        sys.settrace(before)
        for namespace, attr, value in swapped:
            namespace[attr] = value


def work_of(fn: Callable[..., Any], *args: Any, prefix: str = "stuck") -> int:
    """The work ``fn(*args)`` does in the modules named ``prefix`` (see ``counting``)."""
    with counting(prefix) as work:
        fn(*args)
    return work.total


def growth(fn: Callable[[Any], Any], small: Any, big: Any, prefix: str = "stuck") -> float:
    """How many times the work of ``fn(small)`` ``fn(big)`` takes. ``fn(small)`` runs once
    uncounted first, so modules imported on first use are in place (and their patterns
    counted) before counting starts."""
    fn(small)
    return work_of(fn, big, prefix=prefix) / max(1, work_of(fn, small, prefix=prefix))
