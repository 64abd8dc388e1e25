"""The raw evidence a capture gathers, kept apart from what is concluded from it.

A capture first reads (``stuck.capture.proc``, ``peers``, ``gdb``, ``python``, ``jvm``) and
only then builds a Snapshot from what it read (``stuck.capture.merge``). Keeping the reading and
the building apart is what lets ``--save DIR`` store exactly what was seen and ``stuck analyze
DIR`` rebuild the same report later, on another machine: the evidence holds the kernel's own
text (``/proc/PID/task/TID/stat``, ``syscall``, ``stack``, fd links, ``fdinfo``) and each
tool's own output, never an interpretation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from stuck.errors import StuckError

FORMAT = "stuck.capture/1"


@dataclass(slots=True)
class ThreadEvidence:
    tid: int
    comm: str = ""
    stat: str = ""  # /proc/PID/task/TID/stat, first reading
    syscall: str = ""  # /proc/PID/task/TID/syscall, first reading
    wchan: str = ""
    stack: str | None = None  # kernel stack; None when unreadable
    switches: int | None = None  # voluntary + involuntary context switches, first reading
    # The second reading, taken after a short pause: a wait seen unchanged across both
    # (same syscall and arguments, no context switch) is a wait, not a passing moment.
    stat2: str = ""
    syscall2: str = ""
    switches2: int | None = None
    # The fds a poll, ppoll, select or pselect6 wait with no timeout watches, read from the
    # call's arguments in the process's memory (/proc/PID/mem) at the first reading; None
    # when the thread is in no such wait or the memory could not be read. (An epoll set is
    # in the epoll fd's fdinfo instead: ``FdEvidence.epoll``.)
    polled: list[int] | None = None
    # A connect(2) on a unix socket asleep (the listener's accept queue is full): the address
    # it connects to, read from its arguments in the process's memory ("@name" for an abstract
    # one), and the file that path names, as maj:min:inode (None: abstract, or not found).
    connect_to: str | None = None
    connect_file: str | None = None


@dataclass(slots=True)
class FdEvidence:
    fd: int
    target: str  # readlink of /proc/PID/fd/N: "pipe:[123]", "socket:[456]", a path
    flags: int | None = None  # from fdinfo (octal in the file): the open mode
    queued: int | None = None  # bytes in the pipe now (FIONREAD), pipes only
    capacity: int | None = None  # pipe buffer size (F_GETPIPE_SZ)
    # A file some lock is on (/proc/locks): its maj:min:inode, and the locks held through
    # this fd (fdinfo ``lock:`` lines, as the kernel wrote them).
    file_id: str | None = None
    locks: list[str] = field(default_factory=list)
    # An epoll instance of a Go or Python program: the fds it watches (fdinfo ``tfd:`` lines;
    # for Go the data word is the runtime's pollDesc for that fd).
    epoll: list[str] = field(default_factory=list)
    # An eventfd of a Go or Python program: its id (fdinfo ``eventfd-id``, unique on the
    # machine), by which the processes holding it are found (``Evidence.eventfds``).
    eventfd: int | None = None


@dataclass(slots=True)
class ProcessEvidence:
    pid: int
    comm: str = ""
    cmdline: list[str] = field(default_factory=list)
    ppid: int | None = None
    exe: str | None = None
    cwd: str | None = None  # readlink of /proc/PID/cwd: where its relative source paths start
    runtime: str = "native"  # native | python | jvm | go
    state: str = ""  # the process's own state letter (Z: zombie)
    threads: list[ThreadEvidence] = field(default_factory=list)
    fds: list[FdEvidence] = field(default_factory=list)
    # Its shared mappings (/proc/PID/maps lines with an "s" flag): a futex wait without the
    # private flag is on one of them, and whoever maps the same object may wake it.
    shared_maps: list[str] = field(default_factory=list)
    # The signals it catches: ``SigCgt`` of /proc/PID/status as the kernel wrote it (hex).
    signals_caught: str = ""
    # Each tool's own output, by tool name ("gdb", "py-spy", "jcmd"): the text as printed.
    tools: dict[str, str] = field(default_factory=dict)
    why_included: str = "asked"  # asked | child of N | peer of N
    missing: list[str] = field(default_factory=list)  # what could not be read, and why
    # How many threads /proc/PID/task listed (None: the list could not be read). Every one of
    # them read (``threads`` holds all but those that ended meanwhile) is the whole process, as
    # "thread apply all bt" is in a dump.
    threads_listed: int | None = None


@dataclass(slots=True)
class SocketEvidence:
    """A unix socket as the kernel's sock_diag shows it."""

    inode: int
    peer: int | None = None  # the other end's inode (a connected pair)
    rqueue: int | None = None  # bytes waiting to be read at this end
    wqueue: int | None = None
    listening: bool = False
    path: str = ""
    # A listening socket: the inodes of the client sockets whose connections wait in its
    # accept queue, not accepted yet (sock_diag ``UNIX_DIAG_ICONS``). Their threads wait for
    # whoever holds this socket to accept.
    pending: list[int] = field(default_factory=list)
    # The file a unix socket is bound to, as maj:min:inode (sock_diag ``UNIX_DIAG_VFS``): how
    # a connect to a path finds its listener, whatever the path's spelling.
    vfs: str | None = None


@dataclass(slots=True)
class Evidence:
    taken_at: float
    machine: str  # os.uname().machine: syscall numbers depend on it
    interval: float  # seconds between the two readings
    processes: list[ProcessEvidence] = field(default_factory=list)
    unix: list[SocketEvidence] = field(default_factory=list)
    net_tcp: str = ""  # /proc/net/tcp and tcp6 as read
    locks: str = ""  # /proc/locks as read (the lines on files a captured thread waits to lock)
    # Objects of shared memory a captured futex wait is on (maj:min:inode) -> every process on
    # the machine seen to map it; ``maps_unread``: processes whose maps could not be read then
    # (any of them may map it too).
    mappers: dict[str, list[int]] = field(default_factory=dict)
    maps_unread: list[int] = field(default_factory=list)
    # Eventfds a captured event loop waits on (id, as text) -> every process on the machine
    # seen to hold one (an event loop's wake-up eventfd, as libuv's: who could write it).
    eventfds: dict[str, list[int]] = field(default_factory=dict)
    # Client sockets (inodes) whose connection still waited in a listener's accept queue at
    # the second reading (``peers.accept_queue``), read only when one did at the first; None
    # when not read. A wait for an accept counts only when the connection sat there both times.
    queued_again: list[int] | None = None
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any, default: str = "") -> str:
    return v if isinstance(v, str) else default


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _strs(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def _ints(v: Any) -> list[int] | None:
    return [x for x in v if isinstance(x, int) and not isinstance(x, bool)] \
        if isinstance(v, list) else None


def _dicts(v: Any) -> list[dict[str, Any]]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


class EvidenceFormatError(StuckError, ValueError):
    """The text is not saved capture evidence."""


def from_dict(d: Any) -> Evidence:
    """Read saved evidence back, checking each field's type (the file is untrusted input)."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise EvidenceFormatError(f"not {FORMAT} evidence")
    taken = d.get("taken_at")
    interval = d.get("interval")
    ev = Evidence(taken_at=float(taken) if isinstance(taken, (int, float)) else 0.0,
                  machine=_str(d.get("machine"), "x86_64"),
                  interval=float(interval) if isinstance(interval, (int, float)) else 0.0,
                  net_tcp=_str(d.get("net_tcp")), missing=_strs(d.get("missing")),
                  notes=_strs(d.get("notes")), locks=_str(d.get("locks")))
    unread = d.get("maps_unread")
    ev.maps_unread = [p for p in unread if isinstance(p, int) and not isinstance(p, bool)] \
        if isinstance(unread, list) else []
    ev.queued_again = _ints(d.get("queued_again"))
    held = d.get("eventfds")
    if isinstance(held, dict):
        ev.eventfds = {k: [p for p in v if isinstance(p, int) and not isinstance(p, bool)]
                       for k, v in held.items() if isinstance(k, str) and isinstance(v, list)}
    mapped = d.get("mappers")
    if isinstance(mapped, dict):
        ev.mappers = {k: [p for p in v if isinstance(p, int) and not isinstance(p, bool)]
                      for k, v in mapped.items() if isinstance(k, str) and isinstance(v, list)}
    for p in _dicts(d.get("processes")):
        pid = _int_or_none(p.get("pid"))
        if pid is None:
            continue
        tools = p.get("tools")
        pe = ProcessEvidence(
            pid=pid, comm=_str(p.get("comm")), cmdline=_strs(p.get("cmdline")),
            ppid=_int_or_none(p.get("ppid")), exe=p.get("exe") if isinstance(p.get("exe"), str)
            else None, cwd=p.get("cwd") if isinstance(p.get("cwd"), str) else None,
            runtime=_str(p.get("runtime"), "native"), state=_str(p.get("state")),
            tools={k: v for k, v in tools.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(tools, dict) else {},
            why_included=_str(p.get("why_included"), "asked"), missing=_strs(p.get("missing")),
            shared_maps=_strs(p.get("shared_maps")),
            signals_caught=_str(p.get("signals_caught")),
            threads_listed=_int_or_none(p.get("threads_listed")))
        for t in _dicts(p.get("threads")):
            tid = _int_or_none(t.get("tid"))
            if tid is None:
                continue
            stack = t.get("stack")
            pe.threads.append(ThreadEvidence(
                tid=tid, comm=_str(t.get("comm")), stat=_str(t.get("stat")),
                syscall=_str(t.get("syscall")), wchan=_str(t.get("wchan")),
                stack=stack if isinstance(stack, str) else None,
                switches=_int_or_none(t.get("switches")), stat2=_str(t.get("stat2")),
                syscall2=_str(t.get("syscall2")), switches2=_int_or_none(t.get("switches2")),
                polled=_ints(t.get("polled")), connect_to=_str_or_none(t.get("connect_to")),
                connect_file=_str_or_none(t.get("connect_file"))))
        for f in _dicts(p.get("fds")):
            fd = _int_or_none(f.get("fd"))
            if fd is None:
                continue
            fid = f.get("file_id")
            pe.fds.append(FdEvidence(fd=fd, target=_str(f.get("target")),
                                     flags=_int_or_none(f.get("flags")),
                                     queued=_int_or_none(f.get("queued")),
                                     capacity=_int_or_none(f.get("capacity")),
                                     file_id=fid if isinstance(fid, str) else None,
                                     locks=_strs(f.get("locks")),
                                     epoll=_strs(f.get("epoll")),
                                     eventfd=_int_or_none(f.get("eventfd"))))
        ev.processes.append(pe)
    for s in _dicts(d.get("unix")):
        ino = _int_or_none(s.get("inode"))
        if ino is None:
            continue
        ev.unix.append(SocketEvidence(inode=ino, peer=_int_or_none(s.get("peer")),
                                      rqueue=_int_or_none(s.get("rqueue")),
                                      wqueue=_int_or_none(s.get("wqueue")),
                                      listening=s.get("listening") is True,
                                      path=_str(s.get("path")),
                                      pending=_ints(s.get("pending")) or [],
                                      vfs=_str_or_none(s.get("vfs"))))
    return ev
