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

_FRAME_TOKEN = re.compile(r"([\w.$]+)\+0x[0-9a-f]+")


def _row(line: str) -> list[str] | None:
    """The tokens of a ``PID TID COMM TDNAME frames…`` row, or None."""
    tokens = line.split()
    if len(tokens) < 5 or not (tokens[0] + tokens[1]).isascii() or not tokens[0].isdigit() or not tokens[1].isdigit():
        return None
    if not any(t == "<running>" or _FRAME_TOKEN.fullmatch(t) for t in tokens[4:]):
        return None
    return tokens


# disjoint character classes in sequence: each line start is tried once, in linear time
# A thread row: PID, TID, command, thread name, then a kernel stack of "function+0x..." words.
# Searched from each newline (a literal the regex engine jumps between), not with "^" under
# MULTILINE, which is tried at every character.
_ROW = r"[ \t]*\d+[ \t]+\d+[ \t]+\S+[ \t]+\S+[ \t]+(?:[\w.$]+\+0x|<running>)"
_DETECT_FIRST = re.compile(_ROW)
_DETECT = re.compile("\n" + _ROW)


def detect(text: str) -> bool:
    return _DETECT_FIRST.match(text) is not None or _DETECT.search(text) is not None


def parse(text: str) -> ParseResult:
    procs: dict[int, Process] = {}
    for line in iter_lines(text):
        if not line or not (line[0].isdigit() or line[0] == " "):
            continue
        row = _row(line)
        if row is None:
            continue
        tokens = row
        pid, tid, comm = int(tokens[0]), int(tokens[1]), tokens[2]
        first = next((i for i in range(3, len(tokens))
                      if _FRAME_TOKEN.fullmatch(tokens[i]) or tokens[i] == "<running>"), len(tokens))
        tdname = " ".join(tokens[3:first])
        frames = []
        running = False
        for tok in tokens[first:]:
            if tok == "<running>":
                running = True
                continue
            m = _FRAME_TOKEN.fullmatch(tok)
            if m:
                frames.append(Frame(m.group(1), module="kernel"))
        proc = procs.get(pid)
        if proc is None:
            proc = procs[pid] = Process(pid=pid, name=comm)
        name = tdname if tdname and tdname != "-" else comm
        proc.threads.append(Thread(id=str(tid), tid=tid, name=name, frames=frames,
                                   state="running" if running else "unknown"))
    return ParseResult(processes=list(procs.values()))
