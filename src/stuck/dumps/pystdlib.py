"""The standard library's own source: whether a thread's wait has a timeout.

py-spy and faulthandler print no arguments, so ``stop.wait(2.0)`` and ``stop.wait()`` look the
same in their dumps: ``Condition.wait (threading.py:331)``. They do print the line of the
innermost frame, and the standard library writes the two forms of several blocking calls on
different lines: ``Condition.wait`` blocks in ``waiter.acquire()`` with no timeout and in
``waiter.acquire(True, timeout)`` with one; ``Queue.get`` in ``self.not_empty.wait()`` or
``self.not_empty.wait(remaining)``. Every timed wait of threading and queue (``Event.wait``,
``Semaphore.acquire``, ``Barrier.wait``, ``Queue.get``/``put`` with a timeout) ends in the
timed line of ``Condition.wait``. A thread on a timed line can run again by itself: its wait
is not durable, and it is never stuck.

The line is read from the same standard library on this machine, only when it is known to be
the one that ran:

- a path the dump prints whole (faulthandler, pystack: ``/usr/lib/python3.11/threading.py``),
  its ``pythonX.Y`` matching the version the dump names, when it names one;
- a bare file name (py-spy: ``threading.py``) under the library of the interpreter py-spy's
  header names (``Python v3.11.7 (/usr/bin/python3.11)``), when this machine shows that
  library is of that exact version (it is the running interpreter's, or its ``patchlevel.h``
  says so);
- under a ``--source DIR`` (the user's word that it is the code that ran).

Whatever the source, the line must lie in the function the frame names and hold the blocking
call, and the function must hold that call's other form on another line; otherwise nothing is
concluded and the wait stays as the dump shows it. Files are read, never executed.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field

from stuck.stacks.python import bare

MAX_SOURCE = 2 << 20  # bytes: a larger file is not read

# Blocking calls and the positional argument that carries their timeout (1-based):
# acquire(blocking, timeout), wait(timeout), wait_for(predicate, timeout), get(block, timeout),
# put(item, block, timeout), join(timeout), result(timeout).
_TIMEOUT_AT = {"acquire": 2, "wait": 1, "wait_for": 2, "get": 2, "put": 3, "join": 1,
               "result": 1}
# The positional argument that says whether the call blocks at all: acquire(False) and
# get(False) return at once.
_BLOCKING_AT = {"acquire": 1, "get": 1, "put": 2}
_CALL = re.compile(r"\.(acquire|wait|wait_for|get|put|join|result)\(")
_KEYWORD = re.compile(r"([A-Za-z_]\w*)\s*=(?!=)(.*)$", re.DOTALL)
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)\s*\(")
_LIB_VERSION = re.compile(r"/lib/python(\d+\.\d+)/")
_PATCHLEVEL = re.compile(r'#define\s+PY_VERSION\s+"([^"]{1,40})"')


@dataclass(frozen=True, slots=True)
class Call:
    """A blocking call on one line: its method, and whether it passes a timeout."""

    method: str
    timed: bool  # a timeout is passed (or the call does not block)


def _args(code: str, start: int) -> list[str] | None:
    """The top-level arguments of the call whose ``(`` is at ``start``, on this line only."""
    depth = 0
    parts: list[str] = []
    last = start + 1
    for j in range(start, len(code)):
        c = code[j]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                parts.append(code[last:j])
                return [p.strip() for p in parts if p.strip()]
        elif c == "," and depth == 1:
            parts.append(code[last:j])
            last = j + 1
    return None


def blocking_call(line: str) -> Call | None:
    """The blocking call on a line of code, with its timeout read from the arguments; None
    when the line has none, or more than one."""
    code = line.split("#", 1)[0]
    found = list(_CALL.finditer(code))
    if len(found) != 1:
        return None
    m = found[0]
    args = _args(code, m.end() - 1)
    if args is None:
        return None
    method = m.group(1)
    named: dict[str, str] = {}
    positional: list[str] = []
    for a in args:
        kw = _KEYWORD.match(a)
        if kw:
            named[kw.group(1)] = kw.group(2).strip()
        else:
            positional.append(a)
    blocking = named.get("blocking", named.get("block"))
    at = _BLOCKING_AT.get(method)
    if blocking is None and at is not None and len(positional) >= at:
        blocking = positional[at - 1]
    if blocking in ("False", "0"):
        return Call(method, True)
    timeout = named.get("timeout")
    need = _TIMEOUT_AT[method]
    if timeout is None and len(positional) >= need:
        timeout = positional[need - 1]
    return Call(method, timeout is not None and timeout not in ("None", "-1"))


def _function_lines(lines: list[str], line: int, function: str) -> range | None:
    """The 1-based lines of the ``def`` of ``function`` that contains ``line``, or None when
    the line is not inside a function of that name (another version of the file)."""
    here = lines[line - 1]
    level = len(here) - len(here.lstrip())
    start = None
    for n in range(line - 1, max(0, line - 400), -1):
        text = lines[n - 1]
        m = _DEF.match(text)
        if m and len(m.group(1)) < level:
            if m.group(2) != function:
                return None
            start, level = n, len(m.group(1))
            break
    if start is None:
        return None
    end = start + 1
    while end <= len(lines) and end - start < 1000:
        text = lines[end - 1]
        if text.strip() and len(text) - len(text.lstrip()) <= level:
            break
        end += 1
    return range(start, end)


def timed_line(lines: list[str], line: int, function: str) -> bool | None:
    """True when ``line`` of a file is a timed blocking call in ``function`` whose untimed
    form is on another line of it; False when the line is the untimed form; None when the
    file cannot say (not in that function, no blocking call, one form only)."""
    if not 1 <= line <= len(lines):
        return None
    call = blocking_call(lines[line - 1])
    if call is None:
        return None
    body = _function_lines(lines, line, function)
    if body is None:
        return None
    others = [c for n in body if n != line and (c := blocking_call(lines[n - 1])) is not None
              and c.method == call.method]
    if call.timed:
        return True if any(not c.timed for c in others) else None
    return False


def _running_stdlib() -> tuple[str, str]:
    version = ".".join(str(n) for n in sys.version_info[:3])
    return version, os.path.realpath(sysconfig.get_paths()["stdlib"])


def _library_version(libdir: str) -> str | None:
    """The exact Python version of a standard library directory (``.../lib/python3.11``), as
    this machine can show it without running anything."""
    version, running = _running_stdlib()
    if os.path.realpath(libdir) == running:
        return version
    prefix = os.path.dirname(os.path.dirname(libdir))
    header = os.path.join(prefix, "include", os.path.basename(libdir), "patchlevel.h")
    try:
        with open(header, encoding="utf-8", errors="replace") as fh:
            m = _PATCHLEVEL.search(fh.read(200_000))
    except OSError:
        return None
    return m.group(1) if m else None


@dataclass
class StdlibReader:
    """Standard-library files found for one process's dump, each read at most once."""

    version: str | None = None  # "3.11.7", when the dump names it
    executable: str | None = None  # the interpreter the dump names
    dirs: list[str] = field(default_factory=list)  # --source DIRs
    cache: dict[str, list[str] | None] = field(default_factory=dict)

    def candidates(self, path: str) -> Iterable[str]:
        if os.path.isabs(path):
            m = _LIB_VERSION.search(path)
            if self.version is None or (m is not None and self._same_minor(m.group(1))):
                yield path
        elif self.version is not None and self.executable:
            minor = ".".join(self.version.split(".")[:2])
            prefix = os.path.dirname(os.path.dirname(self.executable))
            libdir = os.path.join(prefix, "lib", f"python{minor}")
            if _library_version(libdir) == self.version:
                yield os.path.join(libdir, path)
        for d in self.dirs:
            yield os.path.join(d, os.path.basename(path))

    def _same_minor(self, minor: str) -> bool:
        return self.version is not None and (self.version + ".").startswith(minor + ".")

    def lines(self, path: str) -> list[str] | None:
        if path in self.cache:
            return self.cache[path]
        found = None
        if path.endswith(".py") and len(self.cache) < 64:
            for cand in self.candidates(path):
                try:
                    if not os.path.isfile(cand) or os.path.getsize(cand) > MAX_SOURCE:
                        continue
                    with open(cand, encoding="utf-8", errors="replace") as fh:
                        found = fh.read().splitlines()
                    break
                except OSError:
                    continue
        self.cache[path] = found
        return found

    def timed(self, file: str | None, line: int | None, function: str) -> bool | None:
        """Whether a standard-library frame stands on the timed form of a blocking call
        (``timed_line``); None when its source cannot be read or cannot say."""
        if not file or line is None:
            return None
        lines = self.lines(file)
        return None if lines is None else timed_line(lines, line, bare(function))


__all__ = ["Call", "StdlibReader", "blocking_call", "timed_line"]
