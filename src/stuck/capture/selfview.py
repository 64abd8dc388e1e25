"""What the kernel says one of this process's own threads is waiting for, in words.

The live watchdog sees Python frames only: a thread inside ``os.read`` on a pipe looks like code
that runs without progress. The kernel knows better: the thread sleeps in ``read`` on a pipe,
and the other end of that pipe is held by a child process. Standard library only, and only
called once a thread has already stopped making progress.
"""

from __future__ import annotations

import os

from stuck.capture import syscalls
from stuck.capture.proc import PROC, children, stat_fields


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(4096)


def _other_end_holders(target: str, op: str, me: int) -> list[int]:
    """Children of this process holding ``target`` (a pipe: the end ``op`` does not use)."""
    out = []
    for pid in children(me, depth=1):
        try:
            for fd in os.listdir(f"{PROC}/{pid}/fd"):
                try:
                    if os.readlink(f"{PROC}/{pid}/fd/{fd}") != target:
                        continue
                    if target.startswith("pipe:"):
                        flags = 0
                        for line in _read(f"{PROC}/{pid}/fdinfo/{fd}").splitlines():
                            if line.startswith("flags:"):
                                flags = int(line.split()[1], 8)
                        mode = flags & 3
                        if (op == "read" and mode == 0) or (op == "write" and mode == 1):
                            continue  # the same end as ours: not who would end the wait
                    out.append(pid)
                    break
                except (OSError, ValueError, IndexError):
                    continue
        except OSError:
            continue
    return out


def _comm(pid: int) -> str:
    try:
        return _read(f"{PROC}/{pid}/comm").strip()
    except OSError:
        return "?"


def os_wait(native_id: int) -> str | None:
    """``"read on pipe:[123], which only child pid 456 (python) can end"``, or None when the
    thread is not asleep in a system call that waits on something outside the process."""
    me = os.getpid()
    base = f"{PROC}/self/task/{native_id}"
    try:
        fields = stat_fields(_read(f"{base}/stat"))
        call = syscalls.parse(_read(f"{base}/syscall"), os.uname().machine)
    except OSError:
        return None
    if not fields or fields[0] not in ("S", "D") or call is None:
        return None
    if call.meaning == "wait-child":
        which = call.child()
        return (f"{call.name}: waiting for child pid {which} ({_comm(which)}) to exit"
                if which > 0 else f"{call.name}: waiting for a child process to exit")
    fd = call.fd()
    if fd is None or call.meaning not in ("read", "write"):
        return f"{call.name}" if call.meaning in ("poll", "accept", "connect", "signal") \
            else None
    try:
        target = os.readlink(f"{PROC}/self/fd/{fd}")
    except OSError:
        return f"{call.name} on fd {fd}"
    text = f"{call.meaning} on {target}"
    if target.startswith(("pipe:", "socket:")):
        holders = _other_end_holders(target, call.meaning, me)
        if holders:
            names = ", ".join(f"child pid {p} ({_comm(p)})" for p in holders[:4])
            text += f", I/O to {names}"
    return text
