"""FreeBSD ``procstat -kk`` (kernel stacks): one thread per line, ``PID TID COMM TDNAME KSTACK``
with frames as ``func+0xOFF`` innermost first. States come from the frames (``pipe_read`` is
I/O, ``_sx_xlock_hard`` a lock wait, ``mi_switch`` from ``ast`` a preempted, runnable thread).
"""

from __future__ import annotations

import re

from stuck.dumps import ParseResult
from stuck.dumps._text import iter_lines
from stuck.model import Frame, Process, Thread

NAME = "procstat"

_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+\S+\s+\S.*?\s(?:[\w.$]+\+0x[0-9a-f]+|<running>)")
_FRAME_TOKEN = re.compile(r"^([\w.$]+)\+0x[0-9a-f]+$")


def detect(text: str) -> bool:
    if "+0x" not in text:
        return False
    return any(_ROW.match(line) for line in iter_lines(text)
               if line[:1].isspace() or line[:1].isdigit())


def parse(text: str) -> ParseResult:
    procs: dict[int, Process] = {}
    for line in iter_lines(text):
        if not line or not (line[0].isdigit() or line[0] == " "):
            continue
        if not _ROW.match(line):
            continue
        tokens = line.split()
        pid, tid, comm = int(tokens[0]), int(tokens[1]), tokens[2]
        first = next((i for i in range(3, len(tokens))
                      if _FRAME_TOKEN.match(tokens[i]) or tokens[i] == "<running>"), len(tokens))
        tdname = " ".join(tokens[3:first])
        frames = []
        running = False
        for tok in tokens[first:]:
            if tok == "<running>":
                running = True
                continue
            m = _FRAME_TOKEN.match(tok)
            if m:
                frames.append(Frame(m.group(1), module="kernel"))
        proc = procs.get(pid)
        if proc is None:
            proc = procs[pid] = Process(pid=pid, name=comm)
        name = tdname if tdname and tdname != "-" else comm
        proc.threads.append(Thread(id=str(tid), tid=tid, name=name, frames=frames,
                                   state="running" if running else "unknown"))
    return ParseResult(processes=list(procs.values()))
