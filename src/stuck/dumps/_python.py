"""What the Python dump formats share: reading a thread's innermost frames as a wait.

faulthandler, py-spy and pystack print the same thing in different shapes: a thread's Python
frames, sometimes with locals (``--locals``), native frames (``--native``) or the source line.
None of them says outright what a thread waits for, so it is read from the innermost frames:

- ``wait`` in threading.py (``Condition.wait``) under ``Event.wait`` -> an event; under ``get``
  in queue.py -> a queue (and an idle pool worker when ``_worker`` of concurrent/futures is
  further out); under ``result`` in concurrent/futures -> a future; otherwise a condition;
- ``_wait_for_tstate_lock`` / ``join`` in threading.py -> a thread;
- ``select`` / ``poll`` / ``recv`` / ``accept`` / ``read`` -> I/O; ``sleep`` -> sleeping;
- user code at the top: the source line (pystack prints it: ``with lock_b:``,
  ``x.acquire()``, ``time.sleep(1)``) or the native frames (``lock_PyThread_acquire_lock``,
  ``rlock_acquire``, ``clock_nanosleep``) say which C call the thread is inside.

With locals, the ``self`` of the waiting frame (``<Condition at 0x7f..>``) or the local named
in the source line gives the object's address, which is the resource's identity across threads.
The full repr of an RLock (``<locked _thread.RLock object owner=140.. count=1 at 0x..>``) names
its owner's thread ident. Without an address, each waiting thread gets its own resource
(``<thread id>/wait``): two threads are never claimed to wait for the same object on a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stuck.dumps import ParseResult
from stuck.dumps.pysource import literal_timeout
from stuck.model import Frame, Process, Resource, ResourceKind, Thread, ThreadState, Wait
from stuck.rules.facts import WATCHDOG_NAME
from stuck.stacks.python import (
    CHILD_WAITS,
    IO_FUNCTIONS,
    NATIVE_IO,
    NATIVE_LOCK,
    NATIVE_SLEEP,
    SIGNAL_WAITS,
    is_stdlib,
)
from stuck.stacks.python import bare as _bare

MAX_LINE = 10_000  # longer lines are not dump lines

_ADDRESS = re.compile(r"\bat (0x[0-9a-fA-F]{1,16})>")
_RLOCK_OWNER = re.compile(r"owner=(\d{1,24})")
_WITH = re.compile(r"(?:async )?with ([A-Za-z_][\w.]{0,200})\s*(?:as \w+\s*)?:")
_CALL = re.compile(r"(?:[\w.]{0,200}\.)?(\w+)\(")
_CALLEE = re.compile(r"([A-Za-z_][\w.]{0,200})$")
_ACQUIRE_TIMED = re.compile(r"\.acquire\(\s*\w+\s*,\s*\w+")


@dataclass
class PyFrame:
    """A frame as a Python dump shows it, with what --locals / the source line add."""

    frame: Frame
    native: bool = False
    source: str | None = None
    local_vars: dict[str, str] = field(default_factory=dict)


@dataclass
class PyThread:
    id: str
    tid: int | None = None
    name: str | None = None
    ident: int | None = None  # threading.get_ident(), when the format prints it
    frames: list[PyFrame] = field(default_factory=list)  # innermost first
    hint: str | None = None  # "active", "idle", "gil", ...: the tool's own word


WATCHDOG_FILE = "stuck/runtime/watchdog.py"


def _is(pf: PyFrame, function: str, file_suffix: str) -> bool:
    f = pf.frame
    return _bare(f.function) == function and (f.file or "").endswith(file_suffix)


class Resources:
    """The resources of one ParseResult, merged by id."""

    def __init__(self, result: ParseResult) -> None:
        self.result = result
        self.by_id: dict[str, Resource] = {}
        self.rlock_owners: list[tuple[str, int]] = []  # (resource id, owner ident)

    def get(self, rid: str, kind: ResourceKind, label: str, address: str | None) -> str:
        res = self.by_id.get(rid)
        if res is None:
            res = Resource(id=rid, kind=kind, label=label, address=address)
            self.by_id[rid] = res
            self.result.resources.append(res)
        elif res.kind == "unknown":
            res.kind = kind
        return rid

    def from_repr(self, value: str, kind: ResourceKind, label: str, prefix: str) -> str | None:
        """The resource a repr names by address (``<Condition at 0x7f..>``), if any."""
        m = _ADDRESS.search(value[:400])
        if m is None:
            return None
        address = m.group(1).lower()
        if "RLock" in value:
            kind, label = "rlock", f"_thread.RLock at {address}"
        elif "_thread.lock" in value:
            kind, label = "mutex", f"_thread.lock at {address}"
        rid = self.get(prefix + address, kind, label, address)
        if value.startswith("<locked ") and "RLock" in value:
            owner = _RLOCK_OWNER.search(value[:400])
            if owner is not None and owner.group(1) != "0":
                self.rlock_owners.append((rid, int(owner.group(1))))
        return rid


@dataclass
class _Reading:
    state: ThreadState = "unknown"
    kind: ResourceKind | None = None  # set when the thread waits for something in-process
    label: str = ""
    obj_frame: PyFrame | None = None  # the frame whose ``self`` is the waited object
    obj_repr: str | None = None
    timeout: float | None = None
    timed: bool = False  # a timeout is passed, of a value the dump does not print
    at: Frame | None = None
    direction: str | None = None  # a wait on a pipe: "read" or "write"
    from_outside: bool = False  # ended from outside the process (a signal): never durable


def _timeout_of(pf: PyFrame | None) -> float | None:
    if pf is None:
        return None
    raw = pf.local_vars.get("timeout")
    if raw is None or raw == "None":
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _read_frames(t: PyThread) -> _Reading:
    py = [pf for pf in t.frames if not pf.native]
    native_top = []
    for pf in t.frames:
        if not pf.native:
            break
        native_top.append(_bare(pf.frame.function))
    r = _Reading()
    if not py:
        return r
    top = py[0]
    nxt = py[1] if len(py) > 1 else None
    r.at = top.frame
    if _is(top, "_loop", WATCHDOG_FILE) and _is_watchdog(py):
        r.state = "idle"  # stuck's watchdog in its pause between two checks (a timed wait)
        return r
    fn = _bare(top.frame.function)
    # multiprocessing.Queue.put on a full queue: a slot is freed only when a reader, usually
    # in another process, takes an item from the pipe behind it; no thread of this process
    # shows that reader (it blocks on the queue's semaphore, which the source line reads as a
    # plain acquire).
    mp_put = next((pf for pf in py[:2] if _is(pf, "put", "multiprocessing/queues.py")), None)
    if mp_put is not None:
        r.state, r.kind, r.obj_frame, r.direction = "blocked", "pipe", mp_put, "write"
        r.label = "multiprocessing.Queue (full) to be read by another process"
        r.timeout = _timeout_of(mp_put)
        r.at = next((pf.frame for pf in py if not _stdlib(pf) and pf is not mp_put),
                    mp_put.frame)
        return r
    if _is(top, "wait", "threading.py"):
        r.state = "blocked"
        r.kind, r.label, r.obj_frame = "condition", "threading.Condition", top
        r.timeout = _timeout_of(top)
        # pystack prints the line: Condition.wait blocks in ``waiter.acquire()`` forever and in
        # ``waiter.acquire(True, timeout)`` for a while.
        r.timed = _ACQUIRE_TIMED.search(top.source or "") is not None
        for i, pf in enumerate(py[1:5], start=1):
            if _is(pf, "wait_for", "threading.py"):
                continue  # Condition.wait_for: its caller says what the condition serves
            if _is(pf, "wait", "threading.py"):
                r.kind, r.label, r.obj_frame = "event", "threading.Event", pf
            elif _is(pf, "get", "queue.py"):
                r.kind, r.label, r.obj_frame = "queue", "queue.Queue", pf
                if any(_is(q, "_worker", "thread.py") for q in py[i + 1:i + 3]):
                    r.state = "idle"
            elif _is(pf, "put", "queue.py"):  # a bounded queue, full: waits for a getter
                r.kind, r.label, r.obj_frame = "queue", "queue.Queue (full)", pf
            elif _is(pf, "result", "_base.py") or _is(pf, "as_completed", "_base.py"):
                r.kind, r.label, r.obj_frame = "future", "concurrent.futures.Future", pf
            elif _is(pf, "acquire", "threading.py"):
                r.kind, r.label, r.obj_frame = "semaphore", "threading.Semaphore", pf
            elif _is(pf, "_wait", "threading.py"):
                r.kind, r.label, r.obj_frame = "barrier", "threading.Barrier", pf
            elif _is(pf, "_feed", "multiprocessing/queues.py"):
                r.state = "idle"  # a multiprocessing.Queue's feeder, waiting for items to send
                break
            else:
                break
            r.timeout = _timeout_of(pf) if r.timeout is None else r.timeout
            r.at = pf.frame
            if r.kind == "barrier":
                break  # Barrier.wait, further out, is no Event.wait
        if nxt is not None:
            r.at = next((pf.frame for pf in py[1:] if not _stdlib(pf)), r.at)
        return r
    if _is(top, "_wait_for_tstate_lock", "threading.py") or _is(top, "join", "threading.py"):
        r.state, r.kind, r.label = "blocked", "thread", "threading.Thread"
        r.obj_frame = next((pf for pf in py[:2] if _is(pf, "join", "threading.py")), top)
        r.timeout = _timeout_of(r.obj_frame)
        return r
    child = next((pf for pf in py[:4] if (pf.frame.file or "").endswith("subprocess.py")
                  and _bare(pf.frame.function) in CHILD_WAITS), None)
    if child is not None:  # Popen.wait / communicate: another process must exit
        r.state, r.kind, r.obj_frame = "blocked", "process", child
        r.label = ("a child process (subprocess.Popen) to exit"
                   if _bare(child.frame.function) not in ("communicate", "_communicate") else
                   "a child process (subprocess.Popen.communicate) to close its output and exit")
        r.at = next((pf.frame for pf in py if not _stdlib(pf)), child.frame)
        return r
    if fn in SIGNAL_WAITS and (top.frame.file or "").endswith("signal.py"):
        return _signal_wait(r, top, py)
    if _is(top, "_worker", "thread.py"):
        r.state = "idle"  # work_queue.get() on a SimpleQueue: a C call, no frame of its own
        return r
    if _is(top, "get", "queue.py"):
        r.state, r.kind, r.label, r.obj_frame = "blocked", "queue", "queue.Queue", top
        return r
    if fn == "sleep":
        r.state = "sleeping"
        return r
    if fn in IO_FUNCTIONS and _stdlib(top):
        r.state = "io"
        return r
    # A standard-library wrapper blocked in its own lock's acquire: logging.Handler.acquire
    # (the handler's RLock, held around every emit), importlib's _ModuleLock.acquire (a
    # module's import lock). Which object it is, the dump shows only with --locals.
    if fn == "acquire" and _stdlib(top) and not _is(top, "acquire", "threading.py"):
        logging = (top.frame.file or "").endswith("logging/__init__.py")
        r.state, r.kind, r.obj_frame = "blocked", "rlock" if logging else "mutex", top
        r.label = "a logging handler's lock" if logging else f"the lock of {top.frame.function}"
        r.at = next((pf.frame for pf in py[1:] if not _stdlib(pf)), top.frame)
        return r
    # User code at the top: the thread is inside a C call; the native frames or the source
    # line say which.
    for name in native_top:
        if name in NATIVE_LOCK:
            r.state, r.kind = "blocked", NATIVE_LOCK[name]
            r.label = "threading.RLock" if r.kind == "rlock" else "threading.Lock"
            break
        if name.startswith(NATIVE_SLEEP):
            r.state = "sleeping"
            break
        if name.startswith(NATIVE_IO):
            r.state = "io"
            break
    src = (top.source or "").strip()
    if src:
        w = _WITH.match(src)
        call = _CALL.search(src[:400])
        method = call.group(1) if call else ""
        # the object the call is made on: ``got = cache_lock.acquire(...)`` -> cache_lock
        callee = _CALLEE.search(src[:call.start(1)].rstrip(".")) if call and not w else None
        expr = w.group(1) if w else (callee.group(1) if callee else "")
        if w or method == "acquire":
            r.state = "blocked"
            r.kind = r.kind or "mutex"
            r.label = expr
            if not w:  # ``lock.acquire(timeout=0.5)``: the wait ends by itself
                r.timeout = literal_timeout(src)
            r.obj_repr = top.local_vars.get(expr.split(".", 1)[0]) if "." not in expr else None
            if r.obj_repr is None and "." not in expr:
                r.obj_repr = top.local_vars.get(expr)
        elif method == "sleep":
            r.state = "sleeping"
        elif method in SIGNAL_WAITS and r.state == "unknown":
            return _signal_wait(r, top, py)
        elif method in IO_FUNCTIONS:
            r.state = "io"
        elif method == "join":
            r.state, r.kind, r.label = "blocked", "thread", expr
        elif method == "wait" and r.state == "unknown":
            r.state, r.kind, r.label = "blocked", "condition", expr
        elif method == "result" and r.state == "unknown":
            r.state, r.kind, r.label = "blocked", "future", expr
    if r.kind in ("mutex", "rlock") and not r.label:
        r.label = "threading.RLock" if r.kind == "rlock" else "threading.Lock"
    if r.state == "unknown" and t.hint in ("active", "gil"):
        r.state = "running"
    return r


def _signal_wait(r: _Reading, top: PyFrame, py: list[PyFrame]) -> _Reading:
    """``signal.sigwait`` / ``sigwaitinfo`` / ``pause``: the thread waits for a signal, which
    comes from outside the process (an operator, a supervisor): not a durable wait, and a
    thread that a signal would run again can still end the waits of others."""
    r.state, r.kind, r.label, r.from_outside = "io", "event", "a signal", True
    r.at = next((pf.frame for pf in py if not _stdlib(pf)), top.frame)
    return r


def _is_watchdog(frames: list[PyFrame]) -> bool:
    """The thread's outermost frames are the watchdog's (``Watchdog._run``, under the wrapper
    ``ownthread.start_own_thread`` runs it in)."""
    py = [pf for pf in frames if not pf.native]
    return any(_is(pf, "_run", WATCHDOG_FILE) for pf in py[-2:])


def _own_thread_name(pt: PyThread) -> str | None:
    """stuck's watchdog, in a dump of a program running under stuck: a bare interpreter thread
    (invisible to the program's ``threading``, so a dump shows it without a name), told by its
    outermost frames. Named as stuck names it, so that the rules leave it out (``OWN_THREADS``)."""
    if _is_watchdog(pt.frames):
        return WATCHDOG_NAME
    return None


def _stdlib(pf: PyFrame) -> bool:
    return is_stdlib(pf.frame.file or "")


def build(threads: list[PyThread], result: ParseResult, resources: Resources,
          process: Process, prefix: str = "") -> None:
    """Turn read threads into model Threads of ``process``, with waits and resources."""
    by_ident: dict[int, str] = {}
    for pt in threads:
        reading = _read_frames(pt)
        thread = Thread(id=prefix + pt.id, tid=pt.tid, name=pt.name or _own_thread_name(pt),
                        state=reading.state,
                        frames=[pf.frame for pf in pt.frames], detail=pt.hint)
        if pt.ident is not None:
            by_ident[pt.ident] = thread.id
        # Every lock repr in the locals: resources with identity, and RLock owners.
        for pf in pt.frames:
            for value in pf.local_vars.values():
                if "_thread.RLock" in value or "_thread.lock" in value:
                    resources.from_repr(value, "mutex", "threading.Lock", prefix)
        if reading.kind is not None:
            rid: str | None = None
            obj = reading.obj_repr
            if obj is None and reading.obj_frame is not None:
                obj = reading.obj_frame.local_vars.get("self")
            if obj is not None:
                rid = resources.from_repr(obj, reading.kind, reading.label, prefix)
            if rid is None:
                rid = resources.get(f"{thread.id}/wait", reading.kind,
                                    reading.label or reading.kind, None)
            timed = reading.timeout is not None or reading.timed
            thread.waits = Wait(resource=rid, timeout=reading.timeout,
                                durable=not timed and not reading.from_outside
                                and reading.kind not in ("process", "pipe"),
                                at=reading.at,
                                direction="wait-child" if reading.kind == "process"
                                else reading.direction)
        process.threads.append(thread)
    _join_targets(threads, process, resources, prefix)
    for rid, ident in resources.rlock_owners:
        owner = by_ident.get(ident)
        if owner is None:
            continue
        res = resources.by_id[rid]
        if owner not in res.owners:
            res.owners.append(owner)
        t = next((t for t in process.threads if t.id == owner), None)
        if t is not None and rid not in t.holds:
            t.holds.append(rid)
    resources.rlock_owners = [(r, i) for r, i in resources.rlock_owners if i not in by_ident]


_BOOTSTRAP = ("run", "_bootstrap_inner", "_bootstrap")


def _join_targets(threads: list[PyThread], process: Process, resources: Resources,
                  prefix: str) -> None:
    """A join's target, from addresses: the joiner's ``Thread.join`` frame prints
    ``self: <Thread at 0x..>``, and the joined thread's own ``run`` / ``_bootstrap`` frames print
    the same ``self``. The joined thread becomes the owner of the join's resource (it holds
    it until it ends), so the join is an edge of the wait-for graph like a lock wait."""
    model = {t.id: t for t in process.threads}
    for pt in threads:
        for pf in reversed(pt.frames):  # the bootstrap frames are outermost
            if not any(_is(pf, fn, "threading.py") for fn in _BOOTSTRAP):
                continue
            m = _ADDRESS.search(pf.local_vars.get("self", "")[:400])
            if m is None:
                continue
            res = resources.by_id.get(prefix + m.group(1).lower())
            tid = prefix + pt.id
            if res is not None and res.kind == "thread" and tid in model and not res.owners:
                res.owners.append(tid)
                res.label = f"{model[tid].label()} to finish"
            break


def split_frame(text: str) -> tuple[str, str | None]:
    """``func (file.py:12)`` -> (``func``, ``file.py:12``), in linear time (no regex)."""
    if not text.endswith(")"):
        return text, None
    i = text.rfind(" (")
    if i <= 0:
        return text, None
    return text[:i], text[i + 2:-1]


def file_line(where: str) -> tuple[str, int | None]:
    head, sep, tail = where.rpartition(":")
    if sep and tail.isascii() and tail.isdigit():
        return head, int(tail)
    return where, None
