"""py-spy dumps: ``py-spy dump`` text (with ``--locals``, ``--native``) and ``--json``::

    Process 7561: /usr/bin/python app.py
    Thread 7603 (idle): "worker"
        Condition.wait (threading.py:327)
            Arguments:
                self: <Condition at 0x7f6111505f10>
        t3 (app.py:14)

Frames are innermost first. The thread number is the OS thread id in recent py-spy versions
and the ``threading`` ident (``0x7F76…``) in older ones. ``(idle)`` / ``(active)`` /
``(active+gil)`` is py-spy's sampling of whether the thread was on a CPU: a hint only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from stuck.dumps import ParseResult
from stuck.dumps._python import (
    MAX_LINE,
    PyFrame,
    PyThread,
    Resources,
    build,
    file_line,
    split_frame,
)
from stuck.dumps._text import has_any_line
from stuck.model import Frame, Process

NAME = "pyspy"

_THREAD = re.compile(r'Thread (0x[0-9a-fA-F]{1,16}|\d{1,12}) \(([a-z+]{1,30})\)(?:: "(.{0,500})")?$')
# A thread line a paste shortened to the thread's name ("Thread MainThread (idle):",
# "Thread-3 (idle):"): the thread is known by its name only.
_NAMED_THREAD = re.compile(r'(?:Thread )?([\w.<>-]{1,200}) \((idle|active|active\+gil|gil)\):$')
_DETECT_LINE = re.compile(
    r'Thread (?:0x[0-9a-fA-F]{1,16}|\d{1,12}) \((?:idle|active|active\+gil|gil)\)'
    r'|[ \t]*(?:Thread )?[\w.<>-]{1,200} \((?:idle|active|active\+gil|gil)\):[ \t]*$'
    r'|.*"os_thread_id"\s*:')
_DETECT = tuple((needle, _DETECT_LINE) for needle in ('"os_thread_id"', " (idle)", " (active",
                                                     " (gil)"))
_PROCESS = re.compile(r"Process (\d+): ")
_PYTHON = re.compile(r"Python v(\d{1,3}\.\d{1,3}\.\d{1,3}\S{0,20}) \((.{1,1000})\)$")
_VAR = re.compile(r"([A-Za-z_]\w{0,200}): (.*)$")


def detect(text: str) -> bool:
    """True when a py-spy dump (text or --json) appears anywhere in the text."""
    return has_any_line(text, _DETECT)


def _thread_from_header(ident: str, hint: str, name: str | None) -> PyThread:
    if ident.startswith("0x"):
        return PyThread(id=ident, name=name, ident=int(ident, 16), hint=hint)
    return PyThread(id=ident, tid=int(ident), name=name, hint=hint)


@dataclass
class _Dump:
    pid: int | None
    threads: list[PyThread] = field(default_factory=list)
    elided: bool = False  # "..." where threads or frames were left out
    cut: str | None = None  # the id of a thread whose stack ends in a broken line
    unnamed: bool = False  # thread lines shortened to the thread's name (an edited paste)
    unread: str | None = None  # the first thread line that could not be read (its thread is lost)
    python: tuple[str, str] | None = None  # (version, interpreter) from the header


def _lacks(dump: _Dump) -> str | None:
    """Why the text visibly lacks threads of the process (an excerpt), or None.

    py-spy prints every Python thread of the process; a paste may not: an ellipsis where
    threads were left out, a stack ending in half a line (a cut-off paste), or, with OS thread
    ids, no thread whose id is the process id (the main thread, on Linux)."""
    if dump.elided:
        return "'...' where threads or frames were left out"
    if dump.unnamed:
        return "thread lines without their ids, an edited paste"
    if dump.cut is not None:
        return f"the stack of thread {dump.cut} ends in a broken line (a cut-off paste)"
    if dump.unread is not None:
        return (f"a thread line not understood, {dump.unread!r}: that thread and its stack "
                "are not shown")
    tids = [t.tid for t in dump.threads]
    if dump.pid is not None and tids and None not in tids and dump.pid not in tids:
        return f"no thread {dump.pid}: the main thread of process {dump.pid} is not shown"
    return None


def _joins_unseen(process: Process, resources: Resources) -> bool:
    """A thread joins another that the text does not show: the only thread shown joins (a
    thread cannot join itself), or the joined thread's address matches no thread shown."""
    for t in process.threads:
        res = resources.by_id.get(t.waits.resource) if t.waits is not None else None
        if res is None or res.kind != "thread":
            continue
        if len(process.threads) == 1:
            return True
        if res.address is not None and not res.owners:
            return True
    return False


def _parse_text(text: str) -> list[_Dump]:
    dumps: list[_Dump] = []
    threads: list[PyThread] | None = None
    seen: set[str] = set()
    pid: int | None = None
    current: PyThread | None = None
    frame: PyFrame | None = None
    in_vars = False
    dump: _Dump | None = None
    python: tuple[str, str] | None = None
    for raw in text.split("\n"):  # only LF ends a line: a CR or U+2028 may be in a name
        if len(raw) > MAX_LINE:
            continue
        line = raw.strip()
        if not line:
            continue
        pm = _PROCESS.match(line)
        if pm:
            pid, threads, current, python = int(pm.group(1)), None, None, None
            continue
        vm = _PYTHON.match(line) if line.startswith("Python v") else None
        if vm:
            python = (vm.group(1), vm.group(2))
            continue
        m = _THREAD.match(line)
        short = None if m or not line.endswith("):") else _NAMED_THREAD.match(line)
        if m or short:
            ident = m.group(1) if m else short.group(1)  # type: ignore[union-attr]
            if threads is None or ident in seen:
                threads, seen = [], set()
                dump = _Dump(pid, threads, python=python)
                dumps.append(dump)
            seen.add(ident)
            if m:
                current = _thread_from_header(ident, m.group(2), m.group(3))
            else:
                assert short is not None and dump is not None
                current = PyThread(id=ident, name=ident, hint=short.group(2))
                dump.unnamed = True
            threads.append(current)
            frame, in_vars = None, False
            continue
        if line in ("...", "…", "[...]"):
            if dump is not None:
                dump.elided = True
            current, frame = None, None
            continue
        if raw.startswith("Thread ") and dump is not None:
            # py-spy starts every thread with such a line, unindented; one that does not match
            # (a name cut or mangled in the paste) loses its thread: say so, never silently.
            if dump.unread is None:
                dump.unread = line[:80] + ("…" if len(line) > 80 else "")
            current, frame = None, None
            continue
        if current is None:
            continue
        if line in ("Arguments:", "Locals:") and frame is not None:
            in_vars = True
            continue
        indent = len(raw) - len(raw.lstrip())
        if in_vars and indent > 8:
            vm = _VAR.match(line)
            if vm and frame is not None:
                frame.local_vars[vm.group(1)] = vm.group(2)
                continue
        in_vars = False
        func, where = split_frame(line)
        if where is None or not func:
            if indent >= 4 and dump is not None and dump.cut is None:
                dump.cut = current.id  # an indented line of the stack, broken off
                head, paren, _ = line.partition(" (")
                if paren and head and " " not in head:  # "run_filter (p": the name is whole
                    current.frames.append(PyFrame(Frame(function=head)))
            current, frame = None, None
            continue
        file, num = file_line(where)
        native = num is None and not file.endswith(".py")
        frame = PyFrame(Frame(function=func, file=None if native else file, line=num,
                              module=file if native else None), native=native)
        current.frames.append(frame)
    return dumps


def _json_payload(text: str) -> Any:
    start = text.find("[")
    end = text.rfind("]")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(text[start:end + 1])
    except (ValueError, RecursionError):
        return None


def _parse_json(data: Any) -> list[_Dump]:
    by_pid: dict[int | None, list[PyThread]] = {}
    if not isinstance(data, list):
        return []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("frames"), list):
            continue
        os_tid = item.get("os_thread_id")
        ident = item.get("thread_id")
        tid = os_tid if isinstance(os_tid, int) else None
        name = item.get("thread_name")
        active, gil = item.get("active"), item.get("owns_gil")
        pt = PyThread(
            id=str(tid if tid is not None else ident),
            tid=tid,
            name=name if isinstance(name, str) else None,
            ident=ident if isinstance(ident, int) else None,
            hint="gil" if gil is True else ("active" if active is True else "idle"),
        )
        for f in item["frames"]:
            if not isinstance(f, dict):
                continue
            func = f.get("name")
            file = f.get("filename")
            num = f.get("line")
            local_vars: dict[str, str] = {}
            raw_locals = f.get("locals")
            if isinstance(raw_locals, list):
                for var in raw_locals:
                    if isinstance(var, dict) and isinstance(var.get("name"), str):
                        value = var.get("repr")
                        local_vars[var["name"]] = value if isinstance(value, str) else ""
            pt.frames.append(PyFrame(
                Frame(function=func if isinstance(func, str) else "?",
                      file=file if isinstance(file, str) else None,
                      line=num if isinstance(num, int) and num > 0 else None,
                      module=f.get("module") if isinstance(f.get("module"), str) else None),
                local_vars=local_vars,
            ))
        pid = item.get("pid")
        by_pid.setdefault(pid if isinstance(pid, int) else None, []).append(pt)
    return [_Dump(pid, threads) for pid, threads in by_pid.items()]


def parse(text: str) -> ParseResult:
    """Read the py-spy dumps in ``text`` (text format, or the --json list)."""
    result = ParseResult()
    resources = Resources(result)
    dumps = _parse_text(text)
    if not dumps and '"os_thread_id"' in text:
        dumps = _parse_json(_json_payload(text))
    for n, dump in enumerate(dumps, start=1):
        lacks = _lacks(dump)
        process = Process(pid=dump.pid, name="python", complete=lacks is None,
                          python_version=dump.python[0] if dump.python else None,
                          executable=dump.python[1] if dump.python else None)
        result.processes.append(process)
        build(dump.threads, result, resources, process, prefix="" if n == 1 else f"dump{n}:")
        if lacks is None and _joins_unseen(process, resources):
            lacks = "a thread joins one that is not shown"
            process.complete = False
        if lacks is not None:
            result.notes.append(f"py-spy dump {n}: the text lacks threads ({lacks}); for the "
                                "whole process: py-spy dump --pid PID")
    if len(dumps) > 1:
        result.notes.append("the text holds several py-spy dumps; each is one process, "
                            "ids in later ones prefixed dump2:, dump3:, ...")
    return result
