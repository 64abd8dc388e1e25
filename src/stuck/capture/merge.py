"""Evidence -> one Snapshot: every captured process, thread, pipe and socket in one model.

Each thread's state comes from the kernel (``stat``, and the system call it sleeps in); the
runtime's own view (gdb frames and mutex owners, py-spy frames, a JVM's thread dump) refines
it. A wait is trusted only when the thread was seen in the same call, with the same arguments
and no context switch, in both readings.

Waits between processes are modelled like any other wait: a thread blocked writing a full pipe
waits on a ``pipe`` resource whose owners are the threads of the processes holding the read
end; those are the threads that could end the wait. Such a wait counts as blocked only while
none of its possible enders can run, now or once woken: a reader that is itself running,
sleeping or in other I/O, or could be woken by a thread that is, could still drain the pipe, so
the writer is then shown as in plain I/O with no wait the graph follows (computed to a fixed
point, so chains through several processes settle too). A socket whose connection waits in a
listener's accept queue (or a unix connect asleep on a full one) waits the same way on every
thread of the processes holding the listening socket (``_accept_wait``). What is left blocked is a set of
threads each waiting for others in the set, and the one rules engine names the cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stuck.capture import eventloop, goroutines, shared, syscalls
from stuck.capture.evidence import Evidence, ProcessEvidence, ThreadEvidence
from stuck.capture.naming import thread_id, thread_name
from stuck.capture.peers import Channel, channels
from stuck.capture.proc import stat_fields
from stuck.model import Finding, Frame, Process, Resource, Snapshot, Source, Thread, Wait
from stuck.rules.knot import can_progress

if TYPE_CHECKING:
    pass

PIPE_BUF = 4096  # Linux: writes up to this size are atomic, so less room than this is full
SHARED_FUTEX = "shared-futex"  # Wait.direction of a futex wait other processes may end
LOCK_WORDS = {"FLOCK": "flock", "POSIX": "POSIX (fcntl) lock", "OFDLCK": "OFD (fcntl) lock"}


@dataclass(slots=True)
class Built:
    """The snapshot with what analysis needs besides it."""

    snapshot: Snapshot
    stated: list = field(default_factory=list)  # type: ignore[type-arg]
    inferred: dict[str, str] = field(default_factory=dict)
    missing: dict[int, list[str]] = field(default_factory=dict)  # pid -> gaps
    # Resources whose possible wakers may be incomplete -> why: a finding resting on one is at
    # most probable (stuck.capture.report).
    unsure: dict[str, str] = field(default_factory=dict)
    goroutines: set[int] = field(default_factory=set)  # Go processes whose goroutines were read
    may_run: set[str] = field(default_factory=set)  # blocked threads that may run again anyway
    # The findings a program's own stuck runtime handed over (stuck.capture.python), ids joined
    # to the capture's.
    live_findings: list[Finding] = field(default_factory=list)


@dataclass(slots=True)
class _IoWait:
    thread: Thread
    pid: int
    channel: Channel
    op: str  # read | write | wait-child
    rid: str


def build(ev: Evidence, sources: tuple[str, ...] = ()) -> Built:
    """``sources``: where the programs' source files can be read besides the paths their
    stacks print (``--source DIR``)."""
    snap = Snapshot(source=Source(kind="proc", format="proc",
                                  files=[f"pid {p.pid}" for p in ev.processes]),
                    taken_at=ev.taken_at)
    built = Built(snapshot=snap)
    chans = channels(ev)
    by_pid = {p.pid: p for p in ev.processes}
    threads_of: dict[int, list[Thread]] = {}
    io_waits: list[_IoWait] = []
    child_waits: list[tuple[Thread, int, int]] = []
    lock_waits: list[tuple[Thread, ProcessEvidence, int]] = []
    for pe in ev.processes:
        proc = Process(pid=pe.pid, name=pe.comm or None, complete=_every_thread_read(pe))
        snap.processes.append(proc)
        gaps = built.missing.setdefault(pe.pid, [])
        gaps.extend(pe.missing)
        view = goroutines.read(pe.tools.get("gdb", "")) if pe.runtime == "go" else None
        by_goid: dict[int, Thread] = {}
        if view is not None:
            by_goid = _go_threads(pe, view, proc, built)
            built.goroutines.add(pe.pid)
        on_m = {g.tid: g.goid for g in view.goroutines if g.tid is not None and g.status == 3} \
            if view is not None else {}
        for te in pe.threads:
            t = _thread(pe, te, ev)
            if view is not None:
                # An OS thread of a Go program: its wait is that of the goroutine in a system
                # call on it; the others are the runtime's machinery, left out.
                g = by_goid.get(on_m.get(te.tid, -1))
                if g is None:
                    continue
                g.state, g.detail, g.waits = t.state, f"{g.detail}; {t.detail}", t.waits
                g.frames = g.frames or t.frames
                t = g
            else:
                proc.threads.append(t)
            call = syscalls.parse(te.syscall, ev.machine)
            if call is not None and call.meaning == "connect" and t.state == "io" \
                    and t.detail == call.name:  # asleep in it both times (``_from_call``)
                _connect_wait(ev, pe, te, t, chans, io_waits)
            if t.state != "blocked" or call is None:
                continue
            fd = call.fd()
            if call.meaning in ("read", "write") and fd is not None:
                target = next((f.target for f in pe.fds if f.fd == fd), None)
                ch = chans.get(target) if target else None
                if ch is None or ch.listening:
                    t.state = "io"
                    t.detail = f"{call.name} on {target or f'fd {fd}'}"
                    continue
                io_waits.append(_IoWait(t, pe.pid, ch, call.meaning,
                                        f"{ch.key}:{call.meaning}"))
            elif call.meaning == "wait-child":
                child_waits.append((t, pe.pid, call.child()))
            elif call.meaning == "file-lock" and fd is not None:
                lock_waits.append((t, pe, fd))
        if view is not None:
            _netpoll_waits(pe, view, by_goid, chans, io_waits)
        threads_of[pe.pid] = proc.threads
    _link_io(ev, built, chans, io_waits, threads_of, by_pid)
    _link_locks(ev, built, lock_waits, threads_of, by_pid)
    _runtime_views(ev, built, threads_of, sources)
    _link_children(built, child_waits, threads_of, by_pid)
    _link_runtime_child_waits(built, threads_of, by_pid)
    live = _settle(snap, built.may_run)
    eventloop.quiet_loops(ev, built, threads_of, chans)
    _full_pipes(built, chans, threads_of, by_pid, live)
    snap.notes.extend(ev.notes)
    for gaps in built.missing.values():
        snap.notes.extend(g for g in gaps if g not in snap.notes)
    snap.notes.extend(m for m in ev.missing if m not in snap.notes)
    return built


def _every_thread_read(pe: ProcessEvidence) -> bool | None:
    """True when the capture shows every thread of ``pe``: each one /proc listed was read (one
    that ended meanwhile is gone, not missing), as "thread apply all bt" shows a whole process
    in a dump. The rules weigh "no other thread can run" as a fact about the process only
    then. A Go program's threads are its goroutines: whole only when gdb read the runtime's
    table (``_go_threads``)."""
    from stuck.capture.proc import MAX_THREADS

    if pe.runtime == "go" or pe.threads_listed is None or not pe.threads:
        return None
    return True if pe.threads_listed <= MAX_THREADS else None


def _go_threads(pe: ProcessEvidence, view: goroutines.GoView, proc: Process,
                built: Built) -> dict[int, Thread]:
    """A Go process's goroutines (read by the Go dump parser from gdb's walk) as its threads,
    with ids and resources made unique per process; by goroutine id."""
    from stuck.dumps import go

    result = go.parse(goroutines.traceback(view))
    if not result.processes:
        return {}
    rid = {r.id: f"go{pe.pid}:{r.id}" for r in result.resources}
    rename: dict[str, str] = {}
    out: dict[int, Thread] = {}
    for t in result.processes[0].threads:
        gid = goroutines.gid_of(t)
        if gid is None:
            continue
        rename[t.id] = goroutines.goroutine_id(gid, pe.pid)
        t.id = rename[t.id]
        t.name = None  # the id says it: goroutine N (pid P)
        t.holds = [rid.get(h, h) for h in t.holds]
        if t.waits is not None:
            t.waits.resource = rid.get(t.waits.resource, t.waits.resource)
            if goroutines.timer_may_wake(t, view):
                # A pending timer may end it: it may run again (and, say, write a pipe). The
                # Go rules weigh that themselves; the links between processes need it here.
                built.may_run.add(t.id)
        proc.threads.append(t)
        out[gid] = t
    for r in result.resources:
        r.id = rid[r.id]
        r.owners = [rename.get(o, o) for o in r.owners]
        if r.wakers is not None:
            r.wakers = [rename.get(w, w) for w in r.wakers]
        if r.referenced_by is not None:
            r.referenced_by = [rename.get(w, w) for w in r.referenced_by]
        r.acquired_at = {rename.get(k, k): v for k, v in r.acquired_at.items()}
        built.snapshot.resources.append(r)
    for k, v in result.inferred.items():
        built.inferred[rid.get(k, k)] = v
    proc.complete = True if view.complete else None
    return out


def _netpoll_waits(pe: ProcessEvidence, view: goroutines.GoView, by_goid: dict[int, Thread],
                   chans: dict[str, Channel], io_waits: list[_IoWait]) -> None:
    """A goroutine parked in the netpoller on a pipe or socket fd waits on it as a thread
    blocked reading or writing it would (linked to the other end afterwards)."""
    for gid, (fd, op) in goroutines.fd_waits(view).items():
        t = by_goid.get(gid)
        target = next((f.target for f in pe.fds if f.fd == fd), None)
        ch = chans.get(target) if target else None
        if t is None or ch is None or ch.listening:
            continue
        t.state = "blocked"
        t.detail = f"{t.detail}; {op} on {target} (parked in the netpoller)"
        io_waits.append(_IoWait(t, pe.pid, ch, op, f"{ch.key}:{op}"))


def _thread(pe: ProcessEvidence, te: ThreadEvidence, ev: Evidence) -> Thread:
    fields1 = stat_fields(te.stat)
    fields2 = stat_fields(te.stat2) if te.stat2 else []
    letter = fields1[0] if fields1 else "?"
    name = te.comm or pe.comm
    t = Thread(id=thread_id(te.tid), tid=te.tid, name=thread_name(name, pe.pid, pe.comm))
    call = syscalls.parse(te.syscall, ev.machine)
    again = syscalls.parse(te.syscall2, ev.machine) if te.syscall2 else None
    still = (call is not None and call.same(again) and te.switches is not None
             and te.switches == te.switches2 and bool(fields2) and fields2[0] in ("S", "D"))
    if letter == "R":
        t.state, t.detail = "running", "running"
    elif letter in ("Z", "X"):
        t.state, t.detail = "dead", "exited"
    elif letter in ("T", "t"):
        t.state, t.detail = "unknown", "stopped (by a signal or a debugger)"
    elif call is None:
        t.state, t.detail = "unknown", f"state {letter}, not in a system call"
    elif not te.stat2 or (fields2 and fields2[0] in ("Z", "X")):
        t.state, t.detail = "dead", "ended during the capture"
    elif not still:
        t.state, t.detail = "running", f"moved between the two readings ({call.name})"
    else:
        _from_call(t, call, pe)
    if te.stack:
        t.frames = _kernel_frames(te.stack)
    return t


def _from_call(t: Thread, call: syscalls.Call, pe: ProcessEvidence) -> None:
    """State (and for a futex, the wait) of a thread seen asleep in ``call`` both times."""
    meaning = call.meaning
    t.detail = call.name
    if meaning in ("read", "write", "wait-child", "file-lock"):
        t.state = "blocked"  # linked to its peers (or turned into plain I/O) afterwards
    elif meaning == "futex":
        if call.futex_timed():
            t.state, t.detail = "sleeping", "futex wait with a timeout"
        else:
            t.state = "blocked"
            m = shared.mapping_of(pe.shared_maps, call.args[0]) \
                if call.futex_shared() else None
            if m is not None:  # one word of a shared object, whoever maps it
                rid = f"futex:shm:{m.object}:{call.args[0] - m.start + m.offset:#x}"
                t.waits = Wait(resource=rid, durable=True, direction=SHARED_FUTEX)
            else:
                t.waits = Wait(resource=f"futex:{pe.pid}:{call.args[0]:#x}", durable=True)
    elif meaning == "sleep":
        t.state = "sleeping"
    elif meaning == "signal":
        t.state = "io"
        t.detail = f"{call.name}: waits for a signal"
    else:
        t.state = "io"


def _kernel_frames(stack: str) -> list[Frame]:
    frames = []
    for line in stack.splitlines()[:64]:
        fn = line.split("]", 1)[-1].strip().split("+", 1)[0]
        if fn:
            frames.append(Frame(function=fn, module="[kernel]"))
    return frames


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n:,}"


def _link_io(ev: Evidence, built: Built, chans: dict[str, Channel], io_waits: list[_IoWait],
             threads_of: dict[int, list[Thread]], by_pid: dict[int, ProcessEvidence]) -> None:
    snap = built.snapshot
    made: dict[str, Resource] = {}
    for w in io_waits:
        ch = w.channel
        other_end: Channel | None
        if w.op == "connect":
            _accept_wait(ev, built, [ch], w, threads_of, by_pid, made)
            continue
        if ch.kind == "socket" and ch.peer is None and ch.accept_on:
            _accept_wait(ev, built, [chans[k] for k in ch.accept_on if k in chans], w,
                         threads_of, by_pid, made)
            continue
        if ch.kind == "pipe":
            need = "r" if w.op == "write" else "w"
            enders = [e.pid for e in ch.ends if need in e.mode]
            other_end = ch
        else:
            other_end = chans.get(ch.peer) if ch.peer else None
            enders = [e.pid for e in other_end.ends] if other_end is not None else []
        enders = list(dict.fromkeys(enders))
        if not enders:
            w.thread.state = "io"
            w.thread.detail = (f"{w.op} on {ch.key}: its other end is not held by any captured "
                               "process" + (" (the peer may be outside the capture, or "
                                            "unreadable)" if ch.kind == "socket" else ""))
            continue
        res = made.get(w.rid)
        if res is None:
            res = Resource(id=w.rid, kind="pipe" if ch.kind == "pipe" else "socket",
                           label=_label(ch, other_end, w.op, enders, by_pid),
                           inode=ch.inode, queued=(other_end.queued if other_end is not None
                                                   and ch.kind == "socket" and w.op == "write"
                                                   else ch.queued),
                           capacity=ch.capacity)
            owners = [t.id for pid in enders for t in threads_of.get(pid, [])]
            res.owners = owners
            res.wakers = list(owners)
            made[w.rid] = res
            snap.resources.append(res)
        w.thread.waits = Wait(resource=w.rid, durable=True, direction=w.op)
        w.thread.detail = f"{w.op} on {ch.key}"
    # A thread blocked on a resource cannot also be what ends it: take waiters out of owners.
    for rid, res in made.items():
        waiting = {w.thread.id for w in io_waits if w.rid == rid}
        res.owners = [o for o in res.owners if o not in waiting]
        res.wakers = list(res.owners)
    for pid, threads in threads_of.items():
        if by_pid[pid].runtime != "go" or pid in built.goroutines:
            continue
        ids = {t.id for t in threads}
        for rid, res in made.items():
            if any(o in ids for o in res.owners):
                built.inferred.setdefault(
                    rid, f"pid {pid} is a Go program: which goroutine would end the wait, and "
                    "whether one still could, is not readable from outside")


def _connect_wait(ev: Evidence, pe: ProcessEvidence, te: ThreadEvidence, t: Thread,
                  chans: dict[str, Channel], io_waits: list[_IoWait]) -> None:
    """A thread asleep connecting to a unix listener whose accept queue is full waits for
    room in it: for whoever holds the listener to accept (``_accept_wait``)."""
    from stuck.capture.peers import listener_for

    u = listener_for(ev.unix, te)
    ch = chans.get(f"socket:[{u.inode}]") if u is not None else None
    if u is None or ch is None:
        return
    if u.rqueue is None or u.wqueue is None or u.rqueue <= u.wqueue:
        t.detail = f"connect to {te.connect_to}, whose accept queue has room"
        return
    t.state = "blocked"
    io_waits.append(_IoWait(t, pe.pid, ch, "connect", f"room:{ch.key}"))


def _accept_wait(ev: Evidence, built: Built, listeners: list[Channel], w: _IoWait,
                 threads_of: dict[int, list[Thread]], by_pid: dict[int, ProcessEvidence],
                 made: dict[str, Resource]) -> None:
    """A thread on a socket whose connection waits in a listener's accept queue waits for
    whoever holds the listening socket to accept it (and then answer): every thread of those
    processes; so does one connecting to a unix listener whose queue is full (``connect``:
    an accept makes room). One in ``accept`` on it, or in a poll or epoll wait, or running,
    can still do so, and ``_settle`` then makes the wait plain I/O; when all of them are
    blocked, the wait closes on them. No snapshot proves a thread will never accept, so a
    finding through the queue is at most probable, and says what it rests on."""
    ch = w.channel
    connecting = w.op == "connect"
    enders = list(dict.fromkeys(e.pid for lc in listeners for e in lc.ends))
    if not connecting and ev.queued_again is not None and ch.inode not in ev.queued_again:
        w.thread.state = "io"
        w.thread.detail = (f"{w.op} on {ch.key}: its connection was accepted between the two "
                           "readings")
        return
    if not enders:
        w.thread.state = "io"
        w.thread.detail = (f"{w.op} on {ch.key}: its connection waits to be accepted on a "
                           "listening socket no captured process holds")
        return
    w.rid = ("room:" if connecting else "accept:") + ",".join(lc.key for lc in listeners)
    res = made.get(w.rid)
    if res is None:
        who = ", ".join(f"pid {p} ({by_pid[p].comm})" if p in by_pid else f"pid {p}"
                        for p in enders[:4]) + (" …" if len(enders) > 4 else "")
        first = listeners[0]
        where = f" ({first.where})" if first.where else ""
        waiting = sum(lc.queued or 0 for lc in listeners)
        queue = f"{waiting} connection{'s' if waiting != 1 else ''} in its accept queue; " \
            if waiting else ""
        if connecting:
            queue = f"full: {queue}" if queue else "full; "
        others = f" (and {len(listeners) - 1} more listening on its port)" \
            if len(listeners) > 1 else ""
        what = "a place in the accept queue of" if connecting \
            else "a connection to be accepted on"
        res = Resource(id=w.rid, kind="socket",
                       label=f"{what} listening socket {first.inode}"
                       f"{where}{others} ({queue}listening socket held by {who})",
                       inode=first.inode, queued=waiting or None)
        res.owners = [t.id for pid in enders for t in threads_of.get(pid, [])]
        res.wakers = list(res.owners)
        made[w.rid] = res
        built.snapshot.resources.append(res)
        pause = f"{ev.interval:g} s apart, " if ev.interval else ""
        again = ("still connecting at the second reading" if connecting
                 else "with the connection still queued at the second reading"
                 if ev.queued_again is not None else "the queue itself was read once")
        built.unsure[w.rid] = (
            f"whether a thread of {who} will ever accept on listening socket {first.inode} is "
            f"not in /proc: this rests on two readings ({pause}every thread holding it blocked "
            f"elsewhere both times, {again}); a blocking call with a timeout the kernel does "
            "not show (SO_RCVTIMEO, SO_SNDTIMEO) or a signal handler could still return and "
            "accept it (a later capture showing the same is stronger evidence)")
    w.thread.waits = Wait(resource=w.rid, durable=True, direction=w.op)
    w.thread.detail = f"connect to {ch.key}, whose accept queue is full" if connecting \
        else f"{w.op} on {ch.key}, whose connection is not accepted yet"


def _label(ch: Channel, other: Channel | None, op: str, enders: list[int],
           by_pid: dict[int, ProcessEvidence]) -> str:
    who = ", ".join(f"pid {p} ({by_pid[p].comm})" if p in by_pid else f"pid {p}"
                    for p in enders[:4]) + (" …" if len(enders) > 4 else "")
    if ch.kind == "pipe":
        fill = "bytes queued unknown"
        if ch.queued is not None:
            full = ch.capacity is not None and ch.queued >= ch.capacity
            fill = (f"{'full: ' if full else ''}{_size(ch.queued)}"
                    + (f" of {_size(ch.capacity)}" if ch.capacity else "") + " bytes queued")
            if ch.queued == 0:
                fill = "empty"
        # The kind leads the label: sentences that name a resource by its label alone
        # ("waits for …, held by …") then still say it is a pipe.
        if op == "write":
            return f"pipe {ch.inode} to be read ({fill}; read end held by {who})"
        return f"pipe {ch.inode} to be written ({fill}; write end held by {who})"
    where = f" ({ch.where})" if ch.where else ""
    queued = ""
    if op == "write" and other is not None and other.queued is not None:
        queued = f"; {_size(other.queued)} bytes unread there"
    elif op == "read" and ch.queued is not None:
        queued = f"; {_size(ch.queued)} bytes queued here"
    peer = f"its peer {other.inode}" if other is not None else "its peer"
    verb = "read at" if op == "write" else "written by"
    return f"socket {ch.inode}{where} to be {verb} {peer} (held by {who}{queued})"


def _link_locks(ev: Evidence, built: Built,
                lock_waits: list[tuple[Thread, ProcessEvidence, int]],
                threads_of: dict[int, list[Thread]], by_pid: dict[int, ProcessEvidence]) -> None:
    """A thread asleep taking a file lock waits for the processes holding, through one of
    their fds, a lock that blocks it (``/proc/locks`` says which; fdinfo says through which
    fds): any of their threads could unlock it or close the fd."""
    snap = built.snapshot
    for t, pe, fd in lock_waits:
        fe = next((f for f in pe.fds if f.fd == fd), None)
        path = fe.target if fe is not None else f"fd {fd}"
        blocking = shared.blockers(ev.locks, fe.file_id, pe.pid) \
            if fe is not None and fe.file_id else []
        holders = [p.pid for p in ev.processes if p.pid in threads_of and any(
            f.file_id == fe.file_id and shared.holds(f.locks, blocking) for f in p.fds)] \
            if fe is not None and blocking else []
        if not holders:
            t.state = "io"
            t.detail = (f"waits to lock {path}; the process holding the lock is not captured "
                        "(or /proc/locks did not show it)")
            continue
        assert fe is not None and fe.file_id is not None
        word = LOCK_WORDS.get(blocking[0].kind, f"{blocking[0].kind.lower()} lock")
        rid = f"filelock:{fe.file_id}:{blocking[0].text}"
        if snap.resource(rid) is None:
            who = ", ".join(f"pid {p} ({by_pid[p].comm})" for p in holders[:4]) + (
                " …" if len(holders) > 4 else "")
            owners = [x.id for p in holders for x in threads_of.get(p, [])]
            snap.resources.append(Resource(
                id=rid, kind="mutex" if all(b.mode == "WRITE" for b in blocking) else "rwlock",
                label=f"the {word} on {path} (held by {who})", owners=owners,
                wakers=list(owners)))
        t.waits = Wait(resource=rid, durable=True, direction="lock")
        t.detail = f"waits for the {word} on {path}"


def _link_children(built: Built, child_waits: list[tuple[Thread, int, int]],
                   threads_of: dict[int, list[Thread]],
                   by_pid: dict[int, ProcessEvidence]) -> None:
    snap = built.snapshot
    for t, pid, which in child_waits:
        kids = [p for p, pe in by_pid.items() if pe.ppid == pid and pe.state not in ("Z", "X")]
        if which > 0:
            kids = [k for k in kids if k == which]
        zombies = [p for p, pe in by_pid.items() if pe.ppid == pid and pe.state == "Z"]
        if zombies and (which <= 0 or which in zombies):
            t.state, t.detail = "io", "waits for a child that has already exited"
            continue
        if not kids:
            t.state = "io"
            t.detail = "waits for a child process that is not captured (use --tree)"
            continue
        rid = f"exit:{pid}:{which if which > 0 else 'any'}"
        names = " or ".join(f"child pid {k} ({by_pid[k].comm})" for k in kids[:4])
        if snap.resource(rid) is None:
            owners = [x.id for k in kids for x in threads_of.get(k, [])]
            snap.resources.append(Resource(
                id=rid, kind="process", label=f"{names} to exit", owners=owners,
                wakers=list(owners)))
        t.waits = Wait(resource=rid, durable=True, direction="wait-child")
        t.detail = f"waits for {names} to exit"


def _link_runtime_child_waits(built: Built, threads_of: dict[int, list[Thread]],
                              by_pid: dict[int, ProcessEvidence]) -> None:
    """A runtime's wait for a child process it does not name (a JVM's ``Process.waitFor``: a
    dump shows the Process object, not its pid) is a wait for that process's only live child,
    when it has one and it is captured: the child's exit is what ends the wait."""
    for pid, threads in threads_of.items():
        kids = [p for p, pe in by_pid.items() if pe.ppid == pid and pe.state not in ("Z", "X")]
        if len(kids) != 1 or kids[0] not in threads_of:
            continue
        kid = kids[0]
        for t in threads:
            res = built.snapshot.resource(t.waits.resource) if t.waits is not None else None
            if t.waits is None or res is None or res.kind != "process" or res.owners \
                    or t.waits.direction != "wait-child" or t.state != "blocked":
                continue
            res.owners = [x.id for x in threads_of[kid]]
            res.wakers = list(res.owners)
            res.label = f"{res.label}: child pid {kid} ({by_pid[kid].comm}), its only child"
            t.waits.durable = True


def _settle(snap: Snapshot, may_run: set[str] | None = None) -> set[str]:
    """A wait between processes is blocked only while none who could end it can run, now or
    once woken: a thread blocked inside its own process counts as able to run when what it
    waits for could be ended by a thread that can (its mutex's owner, or for a wait whose waker
    is unknown, any other thread of its process). Computed to a fixed point; only the waits
    between processes change (to I/O), the rest is left for the rules."""
    resources = snap.resource_map()
    process_of: dict[str, int] = {}
    members: list[list[Thread]] = []
    for i, p in enumerate(snap.processes):
        members.append(p.threads)
        for t in p.threads:
            process_of[t.id] = i
    threads = snap.thread_map()
    live = {t.id for t in threads.values() if can_progress(t) or t.id in (may_run or ())}
    live_in = [sum(1 for t in ts if t.id in live) for ts in members]
    changed = True
    rounds = 0
    while changed and rounds < 10_000:
        changed = False
        rounds += 1
        for t in threads.values():
            if t.id in live or t.waits is None:
                continue
            res = resources.get(t.waits.resource)
            if t.waits.direction is not None:
                wakes = res is not None and any(
                    o in live for o in (res.owners or res.wakers or []))
            elif res is not None and res.owners:
                wakes = any(o in live for o in res.owners)
            else:
                wakes = live_in[process_of[t.id]] > 0
            if wakes:
                live.add(t.id)
                live_in[process_of[t.id]] += 1
                changed = True
    for t in threads.values():
        if t.waits is not None and t.waits.direction is not None and t.id in live \
                and t.state == "blocked":
            # Plain I/O: not a wait the wait-for graph may follow (its other end can move).
            t.state, t.waits = "io", None
            t.detail = f"{t.detail}; a thread that could end it can still run"
    return live


def _full_pipes(built: Built, chans: dict[str, Channel], threads_of: dict[int, list[Thread]],
                by_pid: dict[int, ProcessEvidence], live: set[str]) -> None:
    """A full pipe whose readers are all stuck is a sign of a writer the kernel cannot show
    waiting (a goroutine parked on it, a non-blocking writer polling): say so in the notes."""
    for ch in chans.values():
        if ch.kind != "pipe" or ch.queued is None or not ch.capacity \
                or ch.capacity - ch.queued >= PIPE_BUF:
            continue  # room for another atomic write: not backed up
        readers = list(dict.fromkeys(e.pid for e in ch.ends if "r" in e.mode))
        writers = list(dict.fromkeys(e.pid for e in ch.ends if "w" in e.mode))
        if not readers or not writers:
            continue
        if any(t.id in live for pid in readers for t in threads_of.get(pid, [])):
            continue
        if any(t.waits is not None and t.waits.resource == f"{ch.key}:write"
               for pid in writers for t in threads_of.get(pid, [])):
            continue  # a writer blocked on it is in the graph already
        names = ", ".join(f"pid {p} ({by_pid[p].comm})" for p in writers[:4])
        built.snapshot.notes.append(
            f"{ch.key} is full ({ch.queued:,} of {ch.capacity:,} bytes) and every process "
            "reading it is stuck; "
            f"{names} holds its write end: whatever there writes to it next (a goroutine, a "
            "non-blocking writer) will wait for them too, though no thread is seen waiting")


def _shared_futex(ev: Evidence, built: Built, res: Resource, t: Thread,
                  threads_of: dict[int, list[Thread]]) -> None:
    """A futex word in shared memory: any thread of a process mapping the object may wake it.
    When its mappers were looked for and every one found was captured, those threads are its
    possible wakers (processes whose maps could not be read make a finding on it unsure);
    else the wait is shown as one this capture cannot judge."""
    _, _, maj, mnr, ino, off = res.id.split(":", 5)
    obj = f"{maj}:{mnr}:{ino}"
    path = ""
    for pe in ev.processes:
        for line in pe.shared_maps:
            m = shared.parse_mapping(line)
            if m is not None and m.object == obj:
                path = m.path
                break
        if path:
            break
    mappers = ev.mappers.get(obj)
    where = f"{path or obj}"
    if mappers is None or any(p not in threads_of for p in mappers):
        res.label = f"futex at {off} of shared {where}"
        t.state, t.waits = "io", None
        t.detail = (f"futex wait in memory shared with other processes ({where}); not every "
                    "process mapping it could be read, so who could wake it is unknown")
        return
    res.label = (f"futex at {off} of shared {where} (mapped by "
                 + ", ".join(f"pid {p}" for p in mappers[:4])
                 + (" …" if len(mappers) > 4 else "") + ")")
    res.wakers = [x.id for p in mappers for x in threads_of.get(p, [])]
    if ev.maps_unread:
        pids = ", ".join(str(p) for p in ev.maps_unread[:6]) + (
            " …" if len(ev.maps_unread) > 6 else "")
        built.unsure[res.id] = (
            f"the memory maps of pid {pids} could not be read: if one of them maps {where}, "
            "it could still wake the wait (run stuck capture as root to read them)")


def _runtime_views(ev: Evidence, built: Built, threads_of: dict[int, list[Thread]],
                   sources: tuple[str, ...] = ()) -> None:
    from stuck.capture import gdb, jvm, python  # each refines the threads it read

    for pe in ev.processes:
        threads = threads_of.get(pe.pid, [])
        if "gdb" in pe.tools:
            gdb.apply(pe, threads, built, ev)
        if "py-spy" in pe.tools or "pystack" in pe.tools:
            python.apply(pe, threads, built)
        if "jcmd" in pe.tools or "jstack" in pe.tools:
            jvm.apply(pe, threads, built)
    # Futex waits gdb did not name: a resource per address, so waiters on one word meet.
    have = {r.id for r in built.snapshot.resources}
    words: set[str] = set()
    for threads in threads_of.values():
        for t in threads:
            if t.waits is not None and t.waits.resource not in have \
                    and t.waits.resource.startswith("futex:"):
                rid = t.waits.resource
                addr = rid.rsplit(":", 1)[1]
                res = Resource(id=rid, kind="unknown", label=f"futex {addr}", address=addr)
                if t.waits.direction == SHARED_FUTEX:
                    _shared_futex(ev, built, res, t, threads_of)
                built.snapshot.resources.append(res)
                have.add(rid)
                words.add(rid)
    for pe in ev.processes:
        if "py-spy" in pe.tools or "pystack" in pe.tools:
            python.read_sources(pe, threads_of.get(pe.pid, []), built, sources)
    # A futex wait the source named (a Python lock's acquire) no longer needs its word.
    waited = {t.waits.resource for ts in threads_of.values() for t in ts if t.waits is not None}
    built.snapshot.resources = [r for r in built.snapshot.resources
                                if r.id not in words or r.id in waited]
