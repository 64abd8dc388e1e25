"""What processes share besides pipes and sockets: file locks and process-shared memory.

**File locks.** A thread asleep in ``flock(fd, LOCK_EX)`` or ``fcntl(fd, F_SETLKW / F_OFD_SETLKW,
…)`` waits for a lock another open file description (flock, OFD) or process (POSIX) holds on the
same file. ``/proc/locks`` lists every lock (``N: FLOCK ADVISORY WRITE pid maj:min:inode start
end``), each followed by the requests it blocks (``N: -> …``); ``/proc/PID/fdinfo/FD`` lists the
locks held through that fd (``lock:`` lines, the same text). A lock is released by whoever holds
a fd on it (flock and OFD locks belong to the open file description, which a fork shares), so
the processes whose fds show the blocking lock are the ones that could end the wait. OFD locks
show pid -1 in ``/proc/locks``: their holders are found through fdinfo only.

**Process-shared futexes.** A futex wait without ``FUTEX_PRIVATE_FLAG`` (a process-shared
semaphore, such as every ``multiprocessing`` lock, or a ``PTHREAD_PROCESS_SHARED`` mutex) sits
on a word of a shared mapping, and any process mapping the same object may wake it. The mapping
(``/proc/PID/maps``: device, inode, file offset) names the object; its other mappers are found
by reading every process's maps.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

PROC = "/proc"
MAX_LOCK_LINES = 10_000
MAX_SHARED_MAPS = 4_096  # shared mappings kept per process


def _read(path: str, limit: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


# -- file locks ---------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class LockLine:
    """One line of ``/proc/locks`` (or an fdinfo ``lock:`` line)."""

    blocked: bool  # a request waiting ("->"), not a lock held
    index: str  # the table's number: a request follows the lock that blocks it
    kind: str  # FLOCK | POSIX | OFDLCK | LEASE | ...
    mode: str  # READ | WRITE
    pid: int  # -1 for OFD locks
    file_id: str  # maj:min:inode
    text: str  # the line without its number: compares a table line with an fdinfo line


def parse_lock(line: str) -> LockLine | None:
    """``"1: -> FLOCK  ADVISORY  WRITE 26831 fe:00:2474759 0 EOF"`` -> LockLine; None when it
    is not a lock line (the text is untrusted: saved evidence)."""
    head, sep, rest = line.strip().partition(":")
    if not sep or not head.strip().isdigit():
        return None
    words = rest.split()
    blocked = bool(words) and words[0] == "->"
    if blocked:
        words = words[1:]
    if len(words) < 5:
        return None
    try:
        pid = int(words[3])
    except ValueError:
        return None
    if words[4].count(":") != 2:
        return None
    return LockLine(blocked=blocked, index=head.strip(), kind=words[0], mode=words[2],
                    pid=pid, file_id=words[4], text=" ".join(words))


def lock_table() -> str:
    """``/proc/locks`` as read ('' when unreadable)."""
    try:
        return "\n".join(_read(f"{PROC}/locks").splitlines()[:MAX_LOCK_LINES])
    except OSError:
        return ""


def locked_files(table: str) -> set[str]:
    """The files (maj:min:inode) some lock in the table is on."""
    return {lk.file_id for line in table.splitlines() if (lk := parse_lock(line)) is not None}


def file_id(path: str) -> str | None:
    """``maj:min:inode`` of the file behind ``path`` (a ``/proc/PID/fd/N`` link), written as
    ``/proc/locks`` writes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def fd_locks(pid: int, fd: int) -> list[str]:
    """The locks held through ``fd`` of ``pid`` (its fdinfo ``lock:`` lines)."""
    out: list[str] = []
    with contextlib.suppress(OSError):
        for line in _read(f"{PROC}/{pid}/fdinfo/{fd}").splitlines():
            if line.startswith("lock:"):
                out.append(line[5:].strip())
    return out


def blockers(table: str, file: str, pid: int) -> list[LockLine]:
    """The locks on ``file`` that block a request of ``pid``: those followed by a request line
    with its pid, or (an OFD request, pid -1, names no process) by any OFD request."""
    out: list[LockLine] = []
    held: dict[str, LockLine] = {}
    for line in table.splitlines():
        lk = parse_lock(line)
        if lk is None or lk.file_id != file:
            continue
        if not lk.blocked:
            held[lk.index] = lk
        elif lk.pid in (pid, -1) and lk.index in held and held[lk.index] not in out:
            out.append(held[lk.index])
    return out


def holds(fd_lines: list[str], locks: list[LockLine]) -> bool:
    """Does a fd whose fdinfo shows ``fd_lines`` hold one of ``locks``?"""
    texts = {lk.text for lk in locks}
    return any((lk := parse_lock(line)) is not None and not lk.blocked and lk.text in texts
               for line in fd_lines)


def fd_links() -> Iterator[tuple[int, int, str]]:
    """(pid, fd, link target) of every open fd of every other process on the machine; a
    process or fd that cannot be read is skipped."""
    me = os.getpid()
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) == me:
            continue
        base = f"{PROC}/{name}/fd"
        try:
            fds = os.listdir(base)
        except OSError:
            continue
        for fd in fds:
            if not fd.isdigit():
                continue
            try:
                yield int(name), int(fd), os.readlink(f"{base}/{fd}")
            except OSError:
                continue


def lock_holders(paths: set[str]) -> dict[str, list[int]]:
    """Processes on the machine holding a lock through a fd on one of ``paths`` (fd link
    targets), by path. Processes whose fds are unreadable are skipped."""
    out: dict[str, list[int]] = {}
    if not paths:
        return out
    for pid, fd, target in fd_links():
        if target in paths and fd_locks(pid, fd):
            pids = out.setdefault(target, [])
            if pid not in pids:
                pids.append(pid)
    return out


# -- process-shared memory ----------------------------------------------------------------

def shared_maps(maps: str) -> list[str]:
    """The shared mappings (``rw-s``) of a ``/proc/PID/maps`` text."""
    out = []
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) >= 5 and len(parts[1]) == 4 and parts[1][3] == "s":
            out.append(line)
            if len(out) >= MAX_SHARED_MAPS:
                break
    return out


@dataclass(slots=True, frozen=True)
class Mapping:
    start: int
    end: int
    offset: int
    object: str  # maj:min:inode of what is mapped
    path: str


def parse_mapping(line: str) -> Mapping | None:
    parts = line.split(None, 5)
    if len(parts) < 5:
        return None
    lo, sep, hi = parts[0].partition("-")
    try:
        start, end, offset = int(lo, 16), int(hi, 16), int(parts[2], 16)
        inode = int(parts[4])
    except ValueError:
        return None
    if not sep or inode <= 0:
        return None
    return Mapping(start, end, offset, f"{parts[3]}:{inode}",
                   parts[5].strip() if len(parts) > 5 else "")


def mapping_of(lines: list[str], address: int) -> Mapping | None:
    """The shared mapping among ``lines`` that holds ``address``."""
    for line in lines:
        m = parse_mapping(line)
        if m is not None and m.start <= address < m.end:
            return m
    return None


def mappers(objects: set[str]) -> tuple[dict[str, list[int]], list[int]]:
    """The processes on the machine with a shared mapping of each object (maj:min:inode), and
    the processes whose maps could not be read (any of them may be a mapper too)."""
    out: dict[str, list[int]] = {}
    unread: list[int] = []
    if not objects:
        return out, unread
    me = os.getpid()
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            maps = _read(f"{PROC}/{name}/maps", 8 << 20)
        except FileNotFoundError:
            continue  # exited
        except OSError:
            unread.append(int(name))
            continue
        for line in shared_maps(maps):
            m = parse_mapping(line)
            if m is not None and m.object in objects:
                pids = out.setdefault(m.object, [])
                if int(name) not in pids:
                    pids.append(int(name))
    return out, unread
