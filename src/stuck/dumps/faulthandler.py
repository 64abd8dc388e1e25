"""Python ``faulthandler`` dumps: ``faulthandler.dump_traceback(all_threads=True)``, a fatal
error, ``dump_traceback_later`` or ``faulthandler.register(signal)`` output.

::

    Thread 0x00007fba3e2836c0 (most recent call first):
      File "app.py", line 25 in take_both
    Current thread 0x00007fba3fa03b80 (most recent call first):
      File ".../threading.py", line 327 in wait

Frames are innermost first. The thread id printed is ``threading.get_ident()`` (not the OS
thread id). There are no locals, so waits are read from the frames alone (see ``_python``).
A thread id seen again, or a ``Timeout (…)!`` / ``Fatal Python error`` line, starts another dump:
each dump is one Process, ids in later ones prefixed ``dump2:``, ... ``dump_traceback_later``'s
``Timeout (0:05:00)!`` header says the program made no progress for that long (a watchdog that
cancels it on progress): it becomes ``Process.no_progress_for``. Frames pasted without any
thread line are one thread ("?") of a process the text does not show whole.
"""

from __future__ import annotations

import re

from stuck.dumps import ParseResult
from stuck.dumps._python import MAX_LINE, PyFrame, PyThread, Resources, build
from stuck.dumps._text import has_any_line
from stuck.model import Frame, Process

NAME = "faulthandler"

_DETECT_LINE = re.compile(
    r"(?:Current thread|Thread) 0x[0-9a-fA-F]{1,16} \(most recent call first\):"
    r"|Stack \(most recent call first\):")
# A faulthandler frame ("File ..., line 5 in f": no comma before "in", unlike a Python
# exception's traceback, py-spy --locals, pystack or gdb's py-bt), pasted without the
# "Thread 0x... (most recent call first):" line above it.
_HEADERLESS = re.compile(r'\s*File "[^"\n]{1,2000}", line \d+ in \S{1,500}\s*$')
_DETECT = (("(most recent call first):", _DETECT_LINE), ('", line ', _HEADERLESS))
_HEADER = re.compile(r"(Current thread|Thread) (0x[0-9a-fA-F]{1,16}) \(most recent call first\):")
# dump_traceback_later's header: "Timeout (0:00:05)!" or "Timeout (1 day, 2:03:04.5)!"
_TIMEOUT = re.compile(r"Timeout \((?:(\d{1,6}) days?, )?(\d{1,2}):(\d\d):(\d\d(?:\.\d{1,6})?)\)!")
_FRAME = re.compile(r'File "([^"\n]{0,2000})", line (\d+) in (\S{1,500})$')


def _seconds(m: re.Match[str]) -> float:
    days = int(m.group(1) or 0)
    return days * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))


def detect(text: str) -> bool:
    """True when a faulthandler traceback appears anywhere in the text."""
    return has_any_line(text, _DETECT)


def parse(text: str) -> ParseResult:
    """Read every faulthandler dump in ``text``."""
    result = ParseResult()
    resources = Resources(result)
    dumps: list[list[PyThread]] = []
    threads: list[PyThread] | None = None
    seen: set[str] = set()
    current: PyThread | None = None
    timeouts: list[float | None] = []  # per dump: dump_traceback_later's timeout before it
    timeout_next: float | None = None
    lacking: dict[int, str] = {}  # dump index -> why the text visibly lacks threads
    for raw in text.split("\n"):  # only LF ends a line: a CR or U+2028 may be in a name
        if len(raw) > MAX_LINE:
            continue
        line = raw.strip()
        if line.startswith(("Timeout (", "Fatal Python error")):
            threads, current = None, None
            tm = _TIMEOUT.match(line)
            timeout_next = _seconds(tm) if tm else None
            continue
        m = _HEADER.match(line)
        if m or line == "Stack (most recent call first):":
            tid = m.group(2) if m else "current"
            if threads is None or tid in seen:
                threads, seen = [], set()
                dumps.append(threads)
                timeouts.append(timeout_next)
                timeout_next = None
            if not m:  # dump_traceback(all_threads=False): the calling thread alone
                lacking[len(dumps) - 1] = "only the thread that called faulthandler is shown"
            seen.add(tid)
            current = PyThread(id=tid, ident=int(tid, 16) if m else None,
                               hint="current" if m and m.group(1) == "Current thread" else None)
            threads.append(current)
            continue
        if line == "..." and not raw.startswith(" ") and dumps:
            lacking[len(dumps) - 1] = "'...' where threads were left out"  # the paste's own
            current = None
            continue
        if current is None:
            if threads is None and line.startswith("File ") and _FRAME.match(line):
                # frames pasted without their thread's line: one thread of an unknown process
                threads, seen = [], {"?"}
                dumps.append(threads)
                timeouts.append(timeout_next)
                timeout_next = None
                lacking[len(dumps) - 1] = ("frames without their 'Thread 0x... (most recent "
                                           "call first):' line, one thread's")
                current = PyThread(id="?", ident=None)
                threads.append(current)
            else:
                continue
        if line.startswith("File "):
            fm = _FRAME.match(line)
            if fm:
                current.frames.append(PyFrame(Frame(function=fm.group(3), file=fm.group(1),
                                                    line=int(fm.group(2)))))
                continue
            lacking[len(dumps) - 1] = (f"the stack of thread {current.id} ends in a broken "
                                       "line (a cut-off paste)")
        if line == "...":  # indented: faulthandler's own, a stack deeper than it prints
            result.notes.append(f"faulthandler truncated the stack of thread {current.id}")
            continue
        if line == "<no Python frame>":
            continue
        current = None
    for n, dump in enumerate(dumps, start=1):
        why = lacking.get(n - 1)
        process = Process(name="python", complete=why is None, no_progress_for=timeouts[n - 1])
        result.processes.append(process)
        if why is not None:
            result.notes.append(f"faulthandler dump {n}: the text lacks threads ({why}); for "
                                "the whole process: faulthandler.dump_traceback(all_threads="
                                "True), or py-spy dump --pid PID")
        build(dump, result, resources, process, prefix="" if n == 1 else f"dump{n}:")
    if len(dumps) > 1:
        result.notes.append("the text holds several faulthandler dumps; each is one process, "
                            "ids in later ones prefixed dump2:, dump3:, ...")
    return result
