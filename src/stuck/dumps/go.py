"""Go goroutine dumps: SIGQUIT / panic / ``GOTRACEBACK=all`` output and the runtime's own
``fatal error: all goroutines are asleep - deadlock!``, Go 1.3 through current formats.

The header of each goroutine carries most of what analysis needs: the wait reason
(``semacquire``, ``chan send``, ``sync.Mutex.Lock``, ...), how long it has waited
(``5 minutes``) and ``locked to thread``. Go does not print who holds a ``sync.Mutex``; when
exactly one other goroutine runs a method on the very object whose address is the mutex
(``(*store).TxnEnd(0xc82030c1c0)`` against ``(*Mutex).Lock(0xc82030c1c0)``), it is taken as
the likely holder, and the finding says so.

Hot path: one pass over the lines, cheap ``startswith`` dispatch, frames shared between
goroutines through a cache (100,000 goroutines usually have a few hundred distinct frames).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stuck.analysis import POOL_LOOP
from stuck.dumps import ParseResult
from stuck.model import Finding, Frame, Process, Resource, ResourceKind, Thread, ThreadState, Wait

NAME = "go"

_HEADER = re.compile(r"^goroutine (\d+)(?: gp=\S+)?(?: m=\S+)?(?: mp=\S+)? \[([^\]]{0,200})\]:\s*$")
_MINUTES = re.compile(r"^(\d+) minutes?$")
_ADDR = re.compile(r"^\{?(0x[0-9a-fA-F]+)")

# wait reason -> (state, resource kind, durable)
REASONS: dict[str, tuple[ThreadState, ResourceKind | None, bool]] = {
    "running": ("running", None, False), "runnable": ("running", None, False),
    "syscall": ("io", None, False), "IO wait": ("io", None, False),
    "sleep": ("sleeping", None, False),
    "semacquire": ("blocked", "semaphore", True),
    "sync.Mutex.Lock": ("blocked", "mutex", True),
    "sync.RWMutex.Lock": ("blocked", "rwlock", True),
    "sync.RWMutex.RLock": ("blocked", "rwlock", True),
    "sync.Cond.Wait": ("blocked", "condition", True),
    "sync.WaitGroup.Wait": ("blocked", "waitgroup", True),
    "chan send": ("blocked", "channel", True), "chan receive": ("blocked", "channel", True),
    "chan send (nil chan)": ("blocked", "channel", True),
    "chan receive (nil chan)": ("blocked", "channel", True),
    "select": ("blocked", "channel", True), "select (no cases)": ("blocked", "channel", True),
    "dead": ("dead", None, False), "idle": ("idle", None, False),
    "finalizer wait": ("idle", None, False), "GC worker (idle)": ("idle", None, False),
    "GC sweep wait": ("idle", None, False), "GC scavenge wait": ("idle", None, False),
    "force gc (idle)": ("idle", None, False), "timer goroutine (idle)": ("idle", None, False),
    "trace reader (blocked)": ("idle", None, False), "wait for GC cycle": ("idle", None, False),
    "GC assist wait": ("blocked", "unknown", False), "preempted": ("running", None, False),
    "copystack": ("running", None, False), "debug call": ("running", None, False),
    "stopping the world": ("running", None, False), "panicwait": ("blocked", "unknown", False),
    "sync.(*Cond).Wait": ("blocked", "condition", True),
    "cleanup wait": ("idle", None, False), "synctest": ("blocked", "unknown", True),
}

# Under "semacquire" (Go before 1.20) the frames say which sync primitive it is.
_SEMA_CALLERS: tuple[tuple[str, ResourceKind], ...] = (
    ("sync.(*Mutex).Lock", "mutex"), ("sync.(*Mutex).lockSlow", "mutex"),
    ("sync.(*RWMutex).RLock", "rwlock"), ("sync.(*RWMutex).Lock", "rwlock"),
    ("sync.(*WaitGroup).Wait", "waitgroup"), ("sync.(*Cond).Wait", "condition"),
)

# The frame whose first argument is the address of what the goroutine waits on.
_PRIMITIVE_FRAMES: dict[str, ResourceKind] = {
    "sync.(*Mutex).Lock": "mutex", "sync.(*Mutex).lockSlow": "mutex",
    "sync.(*RWMutex).RLock": "rwlock", "sync.(*RWMutex).Lock": "rwlock",
    "sync.(*WaitGroup).Wait": "waitgroup", "sync.(*Cond).Wait": "condition",
    "runtime.chansend": "channel", "runtime.chansend1": "channel", "runtime.chanrecv": "channel",
    "runtime.chanrecv1": "channel", "runtime.chanrecv2": "channel",
    "internal/sync.(*Mutex).Lock": "mutex", "internal/sync.(*Mutex).lockSlow": "mutex",
}

_RUNTIME_PREFIXES = ("runtime.", "sync.", "internal/", "runtime/")


# One goroutine as parsed: (id as printed, wait reason, minutes waited, locked to thread,
# its stack, its function lines with their arguments). A tuple: 100,000 of them are made.
_G = tuple[str, str, "int | None", bool, "_Stack", list[str]]


@dataclass(slots=True)
class _Dump:
    goroutines: list[_G] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    all_asleep: str | None = None


def detect(text: str) -> bool:
    pos = text.find("goroutine ")
    while pos >= 0:
        if pos == 0 or text[pos - 1] == "\n":
            end = text.find("\n", pos)
            if _HEADER.match(text[pos:end if end >= 0 else len(text)]):
                return True
        pos = text.find("goroutine ", pos + 10)
    return False


# Goroutine headers. The leading "\n" lets the regex engine jump between candidates with a
# literal search (an anchored "^goroutine" under MULTILINE is tried at every line start).
_HEADERS = re.compile(
    r"\ngoroutine (\d+)(?: gp=\S+)?(?: m=\S+)?(?: mp=\S+)? \[([^\]\n]{0,200})\]:[ \t]*"
    r"(?:\n((?:[^\n]+(?:\n|\Z))*)|\Z)")
_FATAL = "fatal error: all goroutines are asleep"


@dataclass(slots=True)
class _Stack:
    """What every goroutine with one particular stack shares, worked out once."""

    frames: list[Frame]
    prefixes: tuple[str, ...]  # each function line starts with these (function name + "(")
    runtime_only: bool
    pool_worker: bool  # a non-runtime frame names a worker loop
    at: Frame | None  # first frame in the program's own code
    sema_kind: ResourceKind | None  # what a "semacquire" wait is, read from the frames
    primitive: int | None  # index of the frame whose first argument is the waited object
    methods: tuple[int, ...]  # indices of pointer-receiver methods outside the runtime


def _stack(frames: list[Frame], prefixes: tuple[str, ...]) -> _Stack:
    runtime = [_runtime_function(f.function) for f in frames]
    sema_kind: ResourceKind | None = None
    for f in frames[:6]:
        sema_kind = next((k for name, k in _SEMA_CALLERS if f.function == name), None)
        if sema_kind is not None:
            break
    primitive = next((i for i, f in enumerate(frames[:8]) if f.function in _PRIMITIVE_FRAMES),
                     None)
    return _Stack(
        frames=frames, prefixes=prefixes, runtime_only=bool(frames) and all(runtime),
        pool_worker=any(POOL_LOOP.search(f.function) for f, rt in zip(frames[:8], runtime[:8],
                                                                      strict=True) if not rt),
        at=next((f for f, rt in zip(frames, runtime, strict=True) if not rt), None),
        sema_kind=sema_kind, primitive=primitive,
        methods=tuple(i for i, (f, rt) in enumerate(zip(frames, runtime, strict=True))
                      if not rt and ".(*" in f.function
                      and not f.function.startswith("created by ")))


_EMPTY = _Stack(frames=[], prefixes=(), runtime_only=False, pool_worker=False, at=None,
                sema_kind=None, primitive=None, methods=())


def _first_arg(func_line: str) -> str | None:
    """``pkg.f(0xc000, 0x1)`` -> ``0xc000``; None for ``created by`` lines and no arguments."""
    if not func_line.endswith(")"):
        return None
    args = func_line[func_line.rfind("(") + 1:-1]
    comma = args.find(",")
    return (args if comma < 0 else args[:comma]) or None


def _read_frames(lines: list[str], cache: dict[tuple[str, str], Frame]
                 ) -> tuple[list[Frame], list[str], bool]:
    """The frames of one goroutine, line by line: (frames, their function lines, clean).

    A frame is a function line and its indented location line; "..." lines (elided frames)
    are skipped; the first line that is neither ends the goroutine. ``clean`` is True when
    every line was a plain frame pair, so the result may be reused for the same stack.
    """
    frames: list[Frame] = []
    funcs: list[str] = []
    clean = True
    i, n = 0, len(lines)
    while i < n:
        func_line = lines[i]
        if func_line.startswith("..."):
            clean = False
            i += 1
            continue
        if i + 1 >= n or not func_line[:1].strip() or not lines[i + 1][:1].isspace():
            clean = False
            break
        loc = lines[i + 1]
        if func_line.startswith("created by "):
            fn = func_line.rstrip()
        elif func_line.endswith(")") and func_line.rfind("(") > 0:
            fn = func_line[:func_line.rfind("(")]
        else:
            clean = False
            break
        key = (fn, loc)
        frame = cache.get(key)
        if frame is None:
            frame = cache[key] = _frame(fn, loc.strip())
        frames.append(frame)
        funcs.append(func_line)
        i += 2
    return frames, funcs, clean


def _prefix(frame_function: str, func_line: str) -> str:
    if func_line.startswith("created by "):
        at = func_line.find(" in goroutine ")
        return func_line if at < 0 else func_line[:at]
    return func_line[:func_line.rfind("(") + 1]


def parse(text: str) -> ParseResult:
    """Read every goroutine: one regex search finds each header and the lines up to the next
    blank line; each body is split once.

    Goroutines with the same stack (the same location lines) share one frame list and one
    set of derived facts; only their function lines, which carry the arguments, are kept
    per goroutine, and arguments are read from them only where a wait needs an address.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    text = "\n" + text  # every header, the first included, follows a newline
    dumps: list[_Dump] = [_Dump()]
    dump = dumps[0]
    ids, add = dump.ids, dump.goroutines.append
    frame_cache: dict[tuple[str, str], Frame] = {}
    stacks: dict[tuple[str, ...], _Stack] = {}
    stacks_get = stacks.get
    startswith = str.startswith
    header_cache: dict[str, tuple[str, int | None, bool]] = {}
    fatal_at = text.find(_FATAL)
    for m in _HEADERS.finditer(text):
        gid, bracket, body = m.groups()
        fatal: str | None = None
        if 0 <= fatal_at < m.end():
            while 0 <= fatal_at < m.start():  # a fatal error line before this header
                line_end = text.find("\n", fatal_at)
                fatal = text[fatal_at:line_end if line_end >= 0 else len(text)].strip()
                fatal_at = text.find(_FATAL, fatal_at + 1)
            if body and 0 <= fatal_at < m.end():  # inside the body: the goroutine ends there
                body = body[:max(0, fatal_at - m.start(3))]
        if gid in ids or (fatal is not None and dump.goroutines):
            dump = _Dump()
            dumps.append(dump)
            ids, add = dump.ids, dump.goroutines.append
        if fatal is not None:
            dump.all_asleep = fatal
        parsed = header_cache.get(bracket)
        if parsed is None:
            parsed = header_cache[bracket] = _header(bracket)
        ids.add(gid)
        if not body:
            add((gid, parsed[0], parsed[1], parsed[2], _EMPTY, []))
            continue
        if body[-1] == "\n":
            body = body[:-1]
        lines = body.split("\n")
        funcs = lines[0::2]
        key = tuple(lines[1::2])
        stack = stacks_get(key)
        if (stack is None or len(funcs) != len(key)
                or not all(map(startswith, funcs, stack.prefixes))):
            frames, funcs, clean = _read_frames(lines, frame_cache)
            stack = _stack(frames, tuple(map(_prefix, (f.function for f in frames), funcs)))
            if clean and len(stacks) < 100_000:
                stacks[key] = stack
        add((gid, parsed[0], parsed[1], parsed[2], stack, funcs))
    result = ParseResult()
    used: set[str] | None = set() if len(dumps) > 1 else None
    index = 0
    for dump in dumps:
        if dump.goroutines:
            index += 1
            _build(dump, index, used, result)
    return result


def _frame(func: str, loc: str) -> Frame:
    if func.startswith("created by "):
        name = func[11:]
        at = name.find(" in goroutine ")
        if at > 0:
            name = name[:at]
        func = "created by " + name
    sp = loc.find(" ")
    if sp > 0:
        loc = loc[:sp]
    file, _, ln = loc.rpartition(":")
    if file and ln.isascii() and ln.isdigit():
        return Frame(func, file, int(ln))
    return Frame(func, loc or None, None)


def _header(bracket: str) -> tuple[str, int | None, bool]:
    """``semacquire, 5 minutes, locked to thread`` -> (reason, minutes, locked)."""
    parts = bracket.split(", ")
    reason = parts[0]
    minutes = None
    locked = False
    for p in parts[1:]:
        m = _MINUTES.match(p)
        if m:
            minutes = int(m.group(1))
        elif p == "locked to thread":
            locked = True
    return reason, minutes, locked


_RUNTIME_FUNCS: dict[str, bool] = {}


def _runtime_function(name: str) -> bool:
    known = _RUNTIME_FUNCS.get(name)
    if known is None:
        known = (name.startswith(_RUNTIME_PREFIXES) or name in ("runfinq()", "runfinq")
                 or name.startswith("created by runtime"))
        if len(_RUNTIME_FUNCS) < 100_000:
            _RUNTIME_FUNCS[name] = known
    return known


def _address(arg: str | None) -> str | None:
    """The address an argument holds; None when it is none, zero or marked inexact (Go 1.18+
    prints "?" after arguments it may have lost)."""
    if not arg or arg.endswith("?"):
        return None
    m = _ADDR.match(arg)
    if m is None or int(m.group(1), 16) == 0:
        return None
    return m.group(1).lower()


def _build(dump: _Dump, index: int, used: set[str] | None, result: ParseResult) -> None:
    """Threads and resources of one dump; ``used``: thread ids taken by earlier dumps of the
    same text (None when there is only one)."""
    prefix = f"go{index}:"
    threads: list[Thread] = []
    resources: dict[str, Resource] = {}
    waiting_addr: dict[str, str] = {}  # thread id -> address of the mutex it waits for
    reasons = REASONS
    unknown: tuple[ThreadState, ResourceKind | None, bool] = ("unknown", None, False)
    for gid, reason, minutes, locked, stack, funcs in dump.goroutines:
        tid = "goroutine " + gid
        if used is not None:
            if tid in used:
                tid = f"goroutine {gid} #{index}"
            used.add(tid)
        state, kind, durable = reasons.get(reason, unknown)
        if reason.startswith("semacquire"):
            state, kind, durable = "blocked", stack.sema_kind or "semaphore", True
        if state == "blocked":
            if stack.runtime_only:
                state = "idle"
            elif kind == "channel" and stack.pool_worker:
                state = "idle"  # a pool worker waiting for its next job
        t = Thread(id=tid, state=state, frames=stack.frames,
                   detail=reason + ", locked to thread" if locked else reason)
        threads.append(t)
        if state == "blocked" and kind is not None:
            duration = minutes * 60.0 if minutes is not None else None
            at = stack.at
            addr = None
            if stack.primitive is not None and stack.primitive < len(funcs):
                addr = _address(_first_arg(funcs[stack.primitive]))
            key = f"{kind}:{addr}" if addr else f"{kind}:{tid}"
            rid = prefix + key
            if rid not in resources:
                label = (f"{_kind_word(kind)} {addr}" if addr
                         else f"{reason} in {at.function if at else '?'}")
                resources[rid] = Resource(id=rid, kind=kind, label=label, address=addr)
            t.waits = Wait(resource=rid, duration=duration, durable=durable, at=at)
            if addr and kind in ("mutex", "rwlock"):
                waiting_addr[tid] = addr
        elif minutes is not None and state in ("io", "running"):
            # a goroutine in a system or cgo call for minutes: the wait is outside Go
            rid = prefix + f"syscall:{tid}"
            cgo = next((f.function for f in stack.frames if "_Cfunc_" in f.function), None)
            label = f"cgo call {cgo.rsplit('.', 1)[-1]}" if cgo else "system call"
            resources[rid] = Resource(id=rid, kind="unknown", label=label)
            t.waits = Wait(resource=rid, duration=minutes * 60.0, durable=False, at=stack.at)
    _infer_mutex_owners(dump, threads, resources, waiting_addr, result)
    result.processes.append(Process(threads=threads))
    result.resources.extend(resources.values())
    if dump.all_asleep is not None:
        result.stated.append(Finding(
            kind="stall", confidence="certain",
            summary=f"the Go runtime stopped the program with \"{dump.all_asleep}\"",
            threads=[t.id for t in threads], details={"source": "go runtime"}))


def _kind_word(kind: str) -> str:
    return {"mutex": "sync.Mutex", "rwlock": "sync.RWMutex", "waitgroup": "sync.WaitGroup",
            "condition": "sync.Cond", "channel": "channel"}.get(kind, kind)


def _infer_mutex_owners(dump: _Dump, threads: list[Thread], resources: dict[str, Resource],
                        waiting_addr: dict[str, str], result: ParseResult) -> None:
    """A goroutine running a method on the object at a waited mutex's address likely holds it.

    Only pointer-receiver methods (``pkg.(*T).M(0xc000…)``) count: their first argument is
    the object itself, and a mutex that is the object's first field shares its address.
    """
    if not waiting_addr:
        return
    wanted = set(waiting_addr.values())
    candidates: dict[str, list[tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for t, g in zip(threads, dump.goroutines, strict=True):
        stack, funcs = g[4], g[5]
        if not stack.methods:
            continue
        own_wait = waiting_addr.get(t.id)
        for i in stack.methods:
            if i >= len(funcs):
                break
            addr = _address(_first_arg(funcs[i]))
            if addr in wanted and addr != own_wait and (addr, t.id) not in seen:
                assert addr is not None
                seen.add((addr, t.id))
                candidates.setdefault(addr, []).append((t.id, stack.frames[i].function))
    by_id = {t.id: t for t in threads}
    for res in resources.values():
        if res.address is None or res.owners or res.kind not in ("mutex", "rwlock"):
            continue
        cands = candidates.get(res.address, [])
        if len(cands) != 1:
            continue
        owner, function = cands[0]
        res.owners.append(owner)
        by_id[owner].holds.append(res.id)
        result.inferred[res.id] = (f"Go does not record mutex owners; {owner} is in {function} "
                                   f"on the object at {res.address}, the mutex's own address, "
                                   "so it probably holds it")
