"""pystack dumps: ``pystack remote PID`` and ``pystack core CORE`` (with ``--locals``,
``--native``)::

    Traceback for thread 8427 (python) [Has the GIL] (most recent call last):
        (Python) File "/app/x.py", line 11, in t2
            with a: pass
          Locals:
            a: <_thread.lock at 0x7f4eae8beb00>
        (C) File "./Modules/_threadmodule.c", line 179, in lock_PyThread_acquire_lock (libpython3.11.so)

Frames are printed outermost first (reversed here). The thread number is the OS thread id; the
bracket holds pystack's markers (``Has the GIL``, ``Garbage collecting``, ...). pystack prints
each frame's source line, which often names the lock being acquired (``with lock_b:``).
"""

from __future__ import annotations

import re

from stuck.dumps import ParseResult
from stuck.dumps._python import MAX_LINE, PyFrame, PyThread, Resources, build
from stuck.dumps._text import has_any_line
from stuck.model import Frame, Process

NAME = "pystack"

_DETECT = (("Traceback for thread ", re.compile(r"\s*Traceback for thread \d+ ")),)
_HEADER = re.compile(r"Traceback for thread (\d+)(?: \(([^)\n]{0,200})\))? \[([^\]\n]{0,200})\]")
_FRAME = re.compile(r'\((Python|C)\) File "([^"\n]{0,2000})", line (-?\d+), in (.{1,2000})$')
_VAR = re.compile(r"([A-Za-z_]\w{0,200}): (.*)$")
_PID = re.compile(r"pid: (\d+)")


def detect(text: str) -> bool:
    """True when a pystack traceback appears anywhere in the text."""
    return has_any_line(text, _DETECT)


def parse(text: str) -> ParseResult:
    """Read every pystack dump in ``text``; lines it does not know are skipped."""
    result = ParseResult()
    resources = Resources(result)
    dumps: list[tuple[int | None, list[PyThread]]] = []
    threads: list[PyThread] | None = None
    seen: set[str] = set()
    pid: int | None = None
    current: PyThread | None = None
    frame: PyFrame | None = None
    mode = "none"  # after a frame: "source" expected; "vars" inside Arguments/Locals
    lacking: dict[int, str] = {}  # dump index -> why the text visibly lacks threads
    for raw in text.split("\n"):  # only LF ends a line: a CR or U+2028 may be in a name
        if len(raw) > MAX_LINE:
            continue
        line = raw.strip()
        if not line:
            continue
        m = _HEADER.match(line)
        if m:
            tid = m.group(1)
            if threads is None or tid in seen:
                threads, seen = [], set()
                dumps.append((pid, threads))
            seen.add(tid)
            markers = m.group(3).strip()
            current = PyThread(id=tid, tid=int(tid), name=m.group(2),
                               hint="gil" if "Has the GIL" in markers else (markers or None))
            threads.append(current)
            frame, mode = None, "none"
            continue
        if line == "..." and dumps:  # a paste that left threads out
            lacking[len(dumps) - 1] = "'...' where threads were left out"
            current, frame, mode = None, None, "none"
            continue
        if current is None:
            pm = _PID.match(line)
            if pm:
                pid, threads = int(pm.group(1)), None
            continue
        fm = _FRAME.match(line)
        if fm:
            func, lib = fm.group(4), None
            if fm.group(1) == "C" and func.endswith(")") and " (" in func:
                i = func.rfind(" (")
                func, lib = func[:i], func[i + 2:-1]
            if func.endswith(" (inlined)"):
                func = func[:-10]
            num = int(fm.group(3))
            frame = PyFrame(Frame(function=func, file=fm.group(2), line=num if num > 0 else None,
                                  module=lib), native=fm.group(1) == "C")
            current.frames.append(frame)
            mode = "source"
            continue
        if frame is None:
            continue
        if line in ("Arguments:", "Locals:"):
            mode = "vars"
            continue
        if mode == "source" and not line.startswith(("(Python) File", "(C) File")):
            frame.source = line
            mode = "none"
            continue
        if mode == "vars":
            vm = _VAR.match(line)
            if vm:
                frame.local_vars[vm.group(1)] = vm.group(2)
                continue
        if line.startswith(("(Python) File", "(C) File")) and dumps:
            lacking[len(dumps) - 1] = (f"the stack of thread {current.id} ends in a broken "
                                       "line (a cut-off paste)")
        current, frame, mode = None, None, "none"
    for n, (dump_pid, dump) in enumerate(dumps, start=1):
        for pt in dump:
            pt.frames.reverse()  # pystack prints the innermost frame last
        why = lacking.get(n - 1)
        process = Process(pid=dump_pid, name="python", complete=why is None)
        result.processes.append(process)
        if why is not None:
            result.notes.append(f"pystack dump {n}: the text lacks threads ({why}); for the "
                                "whole process: pystack remote PID")
        build(dump, result, resources, process, prefix="" if n == 1 else f"dump{n}:")
    if len(dumps) > 1:
        result.notes.append("the text holds several pystack dumps; each is one process, "
                            "ids in later ones prefixed dump2:, dump3:, ...")
    return result
