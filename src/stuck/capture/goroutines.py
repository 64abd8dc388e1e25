"""A Go program's goroutines, read by gdb from the runtime's tables, in place of its OS threads.

A Go program's OS threads are the runtime's machinery (parked Ms, the netpoller, sysmon); what
waits is goroutines. The gdb script (``stuck.capture.gdb.GO_SCRIPT``) reads each goroutine's
status, wait reason and stack without stopping the program for longer than an attach, what it
is parked on where the runtime keeps it (a channel's sudog, a sync object's semaphore, a
sync.Cond's notify list in the argument slot Go's traceback reads), and for
each fd the runtime's epoll watches (the kernel's fdinfo gives the runtime's pollDesc address),
the goroutine parked reading or writing it. Those stacks are written as a Go traceback and read
by the same parser as a SIGQUIT dump (``stuck.dumps.go``), so the same Go rules apply. Then:

- a goroutine parked on a pipe or socket fd ("IO wait") waits on that pipe or socket as a
  blocked OS thread would, and the processes at the other end are linked the same way;
- a goroutine in a system call runs on an OS thread (its M, whose tid the runtime keeps): the
  kernel's view of that thread (a blocking read, a wait4) is the goroutine's wait;
- the other OS threads are left out: the goroutines are the program's threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stuck.capture.gdb import NOTIFY_WAITS, records
from stuck.model import Thread

STATUS = {1: "runnable", 2: "running", 3: "syscall", 9: "runnable"}


@dataclass(slots=True)
class Goroutine:
    goid: int
    g: int  # the runtime's g address
    status: int
    reason: str
    frames: list[tuple[str, str | None, int | None]]
    created: tuple[str, str | None, int | None] | None = None
    tid: int | None = None  # the OS thread running it (status running or syscall)
    chans: list[int] = field(default_factory=list)  # the channels it is parked on
    sema: int | None = None  # the semaphore it is parked on (runtime.semtable)
    notify: int | None = None  # a sync.Cond waiter: the Cond's notify list it is parked on


@dataclass(slots=True)
class GoView:
    goroutines: list[Goroutine] = field(default_factory=list)
    # pollDesc address -> fd, rg, wg (the goroutine parked reading / writing, or a state), and
    # whether a read / write deadline is set (the netpoller then ends the wait by itself)
    polls: dict[int, tuple[int, int, int, bool, bool]] = field(default_factory=dict)
    complete: bool = False  # the walk ended (``{"go": "read"}``)
    problem: str | None = None
    timers: int | None = None  # timers pending in the runtime (None: not read)


def _frame(v: object) -> tuple[str, str | None, int | None] | None:
    if not isinstance(v, list) or len(v) != 3 or not isinstance(v[0], str):
        return None
    return (v[0][:300], v[1][:500] if isinstance(v[1], str) else None,
            v[2] if isinstance(v[2], int) else None)


def read(text: str) -> GoView | None:
    """The goroutines in gdb's output (untrusted: saved evidence); None when none were read."""
    view = GoView()
    seen = False
    for d in records(text):
        if "go" in d:
            seen = True
            if d["go"] == "read":
                view.complete = True
                timers = d.get("timers")
                view.timers = timers if isinstance(timers, int) and timers >= 0 else None
            elif isinstance(d["go"], str):
                view.problem = d["go"][:200]
        gid, g, status = d.get("goroutine"), d.get("g"), d.get("status")
        if isinstance(gid, int) and isinstance(g, int) and isinstance(status, int):
            raw = d.get("frames")
            frames = [f for f in (_frame(x) for x in (raw if isinstance(raw, list) else []))
                      if f is not None]
            reason = d.get("reason")
            tid = d.get("tid")
            chans = d.get("chans")
            sema = d.get("sema")
            notify = d.get("notify")
            view.goroutines.append(Goroutine(
                goid=gid, g=g, status=status, reason=reason[:80] if isinstance(reason, str)
                else "", frames=frames, created=_frame(d.get("created")),
                tid=tid if isinstance(tid, int) and tid > 0 else None,
                chans=[c for c in chans[:8] if isinstance(c, int) and c > 0]
                if isinstance(chans, list) else [],
                sema=sema if isinstance(sema, int) and sema > 0 else None,
                notify=notify if isinstance(notify, int) and notify > 0 else None))
        pd, fd, rg, wg = d.get("pd"), d.get("fd"), d.get("rg"), d.get("wg")
        if isinstance(pd, int) and isinstance(fd, int) and isinstance(rg, int) \
                and isinstance(wg, int):
            rd, wd = d.get("rd"), d.get("wd")  # 0: no deadline; unread: assume one
            view.polls[pd] = (fd, rg, wg, rd != 0, wd != 0)
    return view if seen and view.goroutines else None


def problem(text: str) -> str | None:
    """Why gdb's walk of the goroutines failed, as the script said it (None: it did not say)."""
    for d in records(text):
        why = d.get("go")
        if isinstance(why, str) and why != "read":
            return why[:200]
    return None


def _clean(s: str) -> str:
    return "".join(ch if ch.isprintable() and ch not in "[]\n" else "?" for ch in s)


# The runtime's channel operations, whose first argument a Go traceback prints as the channel.
_CHANNEL_CALLS = frozenset({"runtime.chansend", "runtime.chanrecv"})


# Where each sync type keeps the semaphore a waiter sleeps on, from the frame that waits:
# Mutex{state int32; sema uint32}; RWMutex{w Mutex; writerSem, readerSem uint32; ...};
# WaitGroup{noCopy; state uint64; sema uint32} (Go 1.18 to current, 64-bit).
_SEMA_OFFSETS = {
    "sync.(*Mutex).lockSlow": 4, "sync.(*Mutex).Lock": 4,
    "internal/sync.(*Mutex).lockSlow": 4, "internal/sync.(*Mutex).Lock": 4,
    "sync.(*RWMutex).Lock": 8, "sync.(*RWMutex).RLock": 12, "sync.(*WaitGroup).Wait": 8,
}


def traceback(view: GoView) -> str:
    """The goroutines as Go prints them (GOTRACEBACK=system), for ``stuck.dumps.go``."""
    out: list[str] = []
    for g in view.goroutines:
        reason = g.reason if g.status == 4 else STATUS.get(g.status, "unknown")
        out.append(f"goroutine {g.goid} [{_clean(reason) or 'waiting'}]:")
        chan = g.chans[0] if len(g.chans) == 1 else None
        sema = g.sema
        notify = g.notify
        for name, path, line in g.frames:
            if chan is not None and name in _CHANNEL_CALLS:
                # its first argument is the channel, as Go prints it
                out.append(f"{_clean(name)}({chan:#x}, ...)")
                chan = None
            elif notify is not None and name in NOTIFY_WAITS:
                # its first argument is the Cond's notify list, as Go prints it
                out.append(f"{_clean(name)}({notify:#x}, ...)")
                notify = None
            elif sema is not None and name in _SEMA_OFFSETS:
                # the sync object whose semaphore it waits on: its receiver, as Go prints it
                out.append(f"{_clean(name)}({sema - _SEMA_OFFSETS[name]:#x}, ...)")
                sema = None
            else:
                out.append(f"{_clean(name)}(...)")
            out.append(f"\t{_clean(path or '?')}:{line or 0}")
        if g.created is not None and g.goid != 1:  # Go names no creator for main's goroutine
            name, path, line = g.created
            out.append(f"created by {_clean(name)}")
            out.append(f"\t{_clean(path or '?')}:{line or 0}")
        out.append("")
    return "\n".join(out)


def fd_waits(view: GoView) -> dict[int, tuple[int, str]]:
    """goroutine id -> (fd, "read" | "write") for goroutines parked in the netpoller on a fd
    with no deadline (a deadline ends the wait by itself: that goroutine may run again)."""
    by_g = {g.g: g for g in view.goroutines}
    out: dict[int, tuple[int, str]] = {}
    for fd, rg, wg, rd, wd in view.polls.values():
        for word, op, deadline in ((rg, "read", rd), (wg, "write", wd)):
            g = by_g.get(word)
            if g is not None and g.status == 4 and not deadline:
                out[g.goid] = (fd, op)
    return out


# Waits a runtime timer can end without any goroutine (a Ticker's channel, time.After in a
# select): while a timer is pending, a goroutine in one may run again.
TIMER_SERVED = ("chan receive", "select")


def timer_may_wake(t: Thread, view: GoView) -> bool:
    detail = t.detail or ""
    return view.timers != 0 and detail.startswith(TIMER_SERVED) \
        and not detail.startswith("select (no cases)")


def goroutine_id(goid: int, pid: int) -> str:
    """A goroutine's thread id: unique across captured processes; starts as the Go rules
    expect (``goroutine N``)."""
    return f"goroutine {goid} (pid {pid})"


def gid_of(t: Thread) -> int | None:
    rest = t.id.removeprefix("goroutine ").split(" ", 1)[0]
    return int(rest) if t.id.startswith("goroutine ") and rest.isdigit() else None
