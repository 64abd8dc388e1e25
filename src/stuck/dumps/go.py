"""Go goroutine dumps: SIGQUIT / panic / ``GOTRACEBACK=all`` output and the runtime's own
``fatal error: all goroutines are asleep - deadlock!``, Go 1.3 through current formats.

The header of each goroutine carries most of what analysis needs: the wait reason
(``semacquire``, ``chan send``, ``sync.Mutex.Lock``, ...), how long it has waited
(``5 minutes``) and ``locked to thread``. Go does not print who holds a ``sync.Mutex``; when
exactly one other goroutine runs a method on the very object whose address is the mutex
(``(*store).TxnEnd(0xc82030c1c0)`` against ``(*Mutex).Lock(0xc82030c1c0)``), it is taken as
the likely holder, and the finding says so; the waiter itself, when such a method sits further
out on its own stack than the call that locks (a ``sync.Mutex`` locked twice), while nothing
shown runs. A goroutine in ``wait4`` under ``os.(*Process).Wait`` waits for a child process;
``select {}`` is parked by design. A text without goroutine 1, with "..." between goroutines,
cut off inside a stack (mid-line, or above the ``created by`` line that ends every goroutine's
stack but main's) or, written for a signal (``PC=0x... m=0 sigcode=0``), without the register
block the runtime prints after the last goroutine lacks goroutines (an excerpt), and a note says
so even when nothing is found. What a dump in which nothing runs means is
``stuck.rules.quiescence``'s to say.

Hot path: one pass over the lines, cheap ``startswith`` dispatch, frames shared between
goroutines through a cache (100,000 goroutines usually have a few hundred distinct frames).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from itertools import chain
from operator import itemgetter

from stuck.dumps import ParseResult
from stuck.model import (
    SIGNAL_WAIT,
    Finding,
    Frame,
    Process,
    Resource,
    ResourceKind,
    Thread,
    ThreadState,
    Wait,
)
from stuck.stacks.native import POOL_LOOP

NAME = "go"
# Every goroutine is a block of lines after a blank line (stuck.dumps.detect_formats).
BLOCK_START = "goroutine "

_HEADER = re.compile(r"^goroutine (\d+)(?: gp=\S+)?(?: m=\S+)?(?: mp=\S+)? \[([^\]]{0,200})\]:\s*$")
_MINUTES = re.compile(r"^(\d+) minutes?$")
_ADDR = re.compile(r"^\{?(0x[0-9a-fA-F]+)")
# An argument that ``_address`` returns unchanged or as None (zero): lowercase hex.
_PLAIN_ADDR = re.compile(r"0x[0-9a-f]+")

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
    "select": ("blocked", "channel", True),
    # `select {}`: parked for good by design (how a program keeps main from returning)
    "select (no cases)": ("idle", None, False),
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
    # What a Cond waiter parks in: its first argument, the Cond's notify list, is printed
    # exactly where Cond.Wait's receiver often is not ("0x0?" since Go 1.18's register ABI).
    "sync.runtime_notifyListWait": "condition",
    "runtime.chansend": "channel", "runtime.chansend1": "channel", "runtime.chanrecv": "channel",
    "runtime.chanrecv1": "channel", "runtime.chanrecv2": "channel",
    "internal/sync.(*Mutex).Lock": "mutex", "internal/sync.(*Mutex).lockSlow": "mutex",
}

_RUNTIME_PREFIXES = ("runtime.", "sync.", "internal/", "runtime/")
# os/signal's goroutine (signal.Notify) waiting for a signal from outside: shown "[syscall]",
# but it runs only when a signal arrives.
_SIGNAL_WAITS = frozenset({"os/signal.signal_recv", "os/signal.loop"})
# A goroutine in a system call under these waits for a child process to exit (wait4).
_CHILD_WAITS = frozenset({"os.(*Process).blockUntilWaitable", "os.(*Process).wait",
                          "os.(*Process).Wait", "syscall.Wait4", "os/exec.(*Cmd).Wait"})
# os/exec's own goroutines copy a child's output into the program (Cmd.Stdout not a file):
# they run only when the child writes, and end when it exits.
_CHILD_COPIERS = frozenset({"created by os/exec.(*Cmd).Start", "created by os/exec.(*Cmd).start",
                            "created by os/exec.(*Cmd).goroutine"})
CHILD_OUTPUT = "copies a child's output"  # Thread.detail of such a goroutine
_CHILD_LIBRARY = ("runtime.", "syscall.", "os.", "os/exec.", "internal/")
# Lines before the goroutines that say the runtime printed all of them: a SIGQUIT / SIGABRT
# dump or a fatal error (a panic under the default GOTRACEBACK prints only its own goroutine).
_WHOLE_DUMP = ("SIGQUIT: quit", "SIGABRT: abort", "fatal error: ")
_REFERENCE_SCANS = 64  # channels whose address is looked up in other goroutines' arguments


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
# The first group is the thread id as it stands ("goroutine 7"); the body group holds the
# lines up to the next blank line without the last line's newline (None when there are none),
# so it splits into exactly its lines with no copy to trim it. Nothing after the body can
# fail, so the body never gives back what it matched: where Python has possessive
# quantifiers (3.11), the engine is told so and keeps no backtracking state for each line
# (the search takes a sixth less time; the matches are the same).
_BODY = r"[^\n]++(?:\n[^\n]++)*+" if sys.version_info >= (3, 11) else r"[^\n]+(?:\n[^\n]+)*"
_HEADERS = re.compile(
    r"\n(goroutine \d+)(?: gp=\S+)?(?: m=\S+)?(?: mp=\S+)? \[([^\]\n]{0,200})\]:[ \t]*"
    rf"(?:\n({_BODY})?|\Z)")
# The same at the very start of the text, where no newline comes before the first header.
_FIRST_HEADER = re.compile(_HEADERS.pattern[2:])
_FATAL = "fatal error: all goroutines are asleep"
# The newline before a goroutine header that follows a non-blank line.
_GLUED_HEADER = re.compile(r"(?<=[^\n])\n(?=goroutine \d+(?: gp=\S+)?(?: m=\S+)?(?: mp=\S+)? "
                           r"\[[^\]\n]{0,200}\]:[ \t]*(?:\n|\Z))")


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
    # function lines -> those of ``methods`` (one line, or a tuple of them when several)
    method_lines: Callable[[list[str]], str | tuple[str, ...]] | None
    signal_wait: bool  # os/signal's goroutine, waiting for a signal from outside
    child: int  # 1: waits for a child process to exit; 2: copies a child's output (os/exec)
    # header bracket -> what it means for this stack
    decisions: dict[str, _Decision] = field(default_factory=dict)


def _new_stack(frames: list[Frame], prefixes: tuple[str, ...]) -> _Stack:
    runtime = [_runtime_function(f.function) for f in frames]
    sema_kind: ResourceKind | None = None
    for f in frames[:6]:
        sema_kind = next((k for name, k in _SEMA_CALLERS if f.function == name), None)
        if sema_kind is not None:
            break
    primitive = next((i for i, f in enumerate(frames[:8]) if f.function in _PRIMITIVE_FRAMES),
                     None)
    methods = tuple(i for i, (f, rt) in enumerate(zip(frames, runtime, strict=True))
                    if not rt and ".(*" in f.function and not f.function.startswith("created by "))
    return _Stack(
        frames=frames, prefixes=prefixes, runtime_only=bool(frames) and all(runtime),
        pool_worker=any(POOL_LOOP.search(f.function) for f, rt in zip(frames[:8], runtime[:8],
                                                                      strict=True) if not rt),
        at=next((f for f, rt in zip(frames, runtime, strict=True) if not rt), None),
        sema_kind=sema_kind, primitive=primitive,
        methods=methods, method_lines=itemgetter(*methods) if methods else None,
        signal_wait=any(f.function in _SIGNAL_WAITS for f in frames[:4]),
        child=(1 if any(f.function in _CHILD_WAITS for f in frames[:8])
               else 2 if frames and frames[-1].function in _CHILD_COPIERS else 0))


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
    When the pairs stop early at a location line that lost its indentation (a log collector
    strips leading blanks) or at a line a log wrapped, the lines are put back first.
    """
    frames, funcs, clean, stop = _read_pairs(lines, cache)
    if stop < len(lines) - 1 and any(_LOOSE_LOCATION.match(line) for line in lines[stop:stop + 4]):
        rejoined = _rejoin(lines)
        if rejoined != lines:
            frames, funcs, _, _ = _read_pairs(rejoined, cache)
            clean = False
    return frames, funcs, clean


# A location line without its leading tab: "/home/u/go/src/sync/mutex.go:82 +0x1fc",
# "C:/Go/src/runtime/proc.go:250", "_testmain.go:12", "<autogenerated>:1".
_LOOSE_LOCATION = re.compile(r"(?:[A-Za-z]:)?[^\s()]*(?:\.go|\.s|\.c|>):\d+(?: \+(?:0x[0-9a-f]*)?)?"
                             r"(?: fp=| |$)")
_HEX_TAIL = re.compile(r"(?:0x)?[0-9a-f]{1,16}$")


def _rejoin(lines: list[str]) -> list[str]:
    """A goroutine's lines as the runtime printed them, from lines a log collector changed:
    location lines get their tab back, and a line a log wrapped (at a fixed width, or where
    it was too long for one record) is joined to its continuation: a function line whose
    parentheses do not close, a location line ending in "+" before its "0x1ec"."""
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if _LOOSE_LOCATION.match(line.lstrip()):
            loc = line.strip()
            # The rest of a wrapped location line ("0x1ec", "be00 pc=0x464e40") is no function
            # line (those have a "(" or say "created by") and no location line.
            while i + 1 < n and "(" not in lines[i + 1] and not lines[i + 1].lstrip().startswith(
                    ("created by", "...", "goroutine ")) \
                    and not _LOOSE_LOCATION.match(lines[i + 1].lstrip()) and lines[i + 1].strip():
                i += 1
                loc += lines[i].strip() if loc.endswith(("+", "=", "x")) or \
                    _HEX_TAIL.match(lines[i].strip().split(" ", 1)[0]) else " " + lines[i].strip()
            out.append("\t" + loc)
            i += 1
            continue
        joined = 0
        while (line.count("(") > line.count(")") and i + 1 < n and joined < 8
               and not _LOOSE_LOCATION.match(lines[i + 1].lstrip())):
            i += 1
            joined += 1
            line += lines[i].strip()
        out.append(line)
        i += 1
    return out


def _read_pairs(lines: list[str], cache: dict[tuple[str, str], Frame]
                ) -> tuple[list[Frame], list[str], bool, int]:
    """``_read_frames``'s plain pass, and the index of the line it stopped at."""
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
        if i + 1 >= n and func_line[:1].strip() and not func_line.startswith("created by "):
            # the paste ends inside this line: keep what it names (``main.reloc``)
            name = func_line[:func_line.find("(")] if "(" in func_line else func_line
            frames.append(Frame(name.strip()))
            funcs.append(func_line)
            clean = False
            i = n
            break
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
    return frames, funcs, clean, i


def _prefix(func_line: str) -> str:
    if func_line.startswith("created by "):
        at = func_line.find(" in goroutine ")
        return func_line if at < 0 else func_line[:at]
    return func_line[:func_line.rfind("(") + 1]


def parse(text: str) -> ParseResult:
    """Read every goroutine in one pass: one regex search finds each header and the lines up
    to the next blank line, each body is split once, and its Thread is made on the spot.

    Goroutines with the same stack (the same location lines) share one frame list and one set
    of derived facts, including what each header means for that stack; nothing else is kept
    per goroutine but its Thread. Arguments are read only where a wait needs an address, and
    of the goroutines that may own a waited mutex only the function lines of their methods
    are kept, read only if some mutex is waited for.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    whole: bool | None = None
    # The runtime's header comes before the first goroutine header (prose before it in a
    # paste may say "goroutine" too).
    first = _FIRST_HEADER.match(text) if text.startswith("goroutine ") else None
    first_header = _HEADERS.search(text) if first is None else None
    first_at = 0 if first is not None else (first_header.start() + 1 if first_header else -1)
    before = text[:first_at] if first_at >= 0 else ""
    if "\n...\n" in text or "\n…\n" in text:
        whole = False  # a paste that left goroutines out
    elif any(needle in before for needle in _WHOLE_DUMP):
        whole = True
    result = ParseResult()
    dump = _DumpBuilder(1, None)
    ids = dump.ids
    frame_cache: dict[tuple[str, str], Frame] = {}
    stacks: dict[tuple[str, ...], _Stack] = {}
    stacks_get = stacks.get
    startswith = str.startswith
    heads: dict[str, _Head] = {}
    heads_get = heads.get
    empty = _new_stack([], ())
    sentinel = len(text) + 1
    fatal_at = text.find(_FATAL)
    if fatal_at < 0:
        fatal_at = sentinel
    matches: Iterator[re.Match[str]] = _HEADERS.finditer(text)
    if first is not None:  # the one header with no newline before it
        matches = chain((first,), _HEADERS.finditer(text, first.end()))
    used, threads_append, owners_append = dump.used, dump.threads.append, dump.owners_maybe.append
    positional = _POSITIONAL_THREAD
    glued = False  # a goroutine header inside another goroutine's lines
    m: re.Match[str] | None = None
    for m in matches:
        tid, bracket, body = m.groups()
        # fatal_at is the sentinel (past every match) while no fatal line is left
        if fatal_at != sentinel and fatal_at < m.end():
            fatal: str | None = None
            while fatal_at < m.start():  # a fatal error line before this header
                line_end = text.find("\n", fatal_at)
                fatal = text[fatal_at:line_end if line_end >= 0 else len(text)].strip()
                fatal_at = text.find(_FATAL, fatal_at + 1)
                if fatal_at < 0:
                    fatal_at = sentinel
            if body and fatal_at < m.end():  # inside the body: the goroutine ends there
                body = body[:max(0, fatal_at - m.start(3))]
                if body.endswith("\n"):
                    body = body[:-1]
            if fatal is not None:  # a fatal error ends the dump before it
                if dump.threads:
                    dump.finish(text, result, whole)
                    dump = _DumpBuilder(dump.index + 1, dump.used_ids())
                    ids, used = dump.ids, dump.used
                    threads_append, owners_append = dump.threads.append, dump.owners_maybe.append
                dump.all_asleep = fatal
        if tid in ids:  # a goroutine seen before: the next dump of the same program begins
            dump.finish(text, result, whole)
            dump = _DumpBuilder(dump.index + 1, dump.used_ids())
            ids, used = dump.ids, dump.used
            threads_append, owners_append = dump.threads.append, dump.owners_maybe.append
        ids.add(tid)
        funcs: list[str]
        if body:
            lines = body.split("\n")
            funcs = lines[0::2]
            stack = stacks_get(tuple(lines[1::2]))
            if (stack is None or len(lines) & 1
                    or not all(map(startswith, funcs, stack.prefixes))):
                if "\ngoroutine " in body:
                    glued = True
                frames, funcs, clean = _read_frames(lines, frame_cache)
                stack = _new_stack(frames, tuple(map(_prefix, funcs)))
                if clean and len(stacks) < 100_000:
                    stacks[tuple(lines[1::2])] = stack
        else:
            stack, funcs = empty, []
        decision = stack.decisions.get(bracket)
        if decision is None:
            head = heads_get(bracket)
            if head is None:
                head = heads[bracket] = _header(bracket)
            decision = stack.decisions[bracket] = _decide(head, stack)
        # The common case inline: a Thread and nothing else.
        if used is not None:
            tid = dump.unique(tid)
        if positional:
            t = Thread(tid, None, None, decision.state, stack.frames, [], None, None, None,
                       decision.detail)
        else:
            t = Thread(id=tid, state=decision.state, frames=stack.frames, detail=decision.detail)
        threads_append(t)
        if stack.method_lines is not None:
            owners_append((t, stack, stack.method_lines(funcs)))
        if decision.waits:
            dump.wait(t, decision, stack, funcs)
    if glued:
        # A goroutine header right under another goroutine's last line (a paste that lost the
        # blank line, or put "..." where it left goroutines out) was read as part of that
        # goroutine's stack: the text is read again with the blank line the runtime prints.
        # (Only a stack read line by line can hold one, so a plain dump never pays for this.)
        fixed = _GLUED_HEADER.sub("\n\n", text)
        if fixed != text:
            return parse(fixed)
    if dump.threads:
        cut = _cut_off(text, m)
        if cut is None and whole and _SIGNAL_PC.search(before) and m is not None \
                and not _REGISTER.search(text, m.end()):
            # A dump the runtime writes for a signal ("PC=0x... m=0 sigcode=0" under the signal
            # line) ends with the registers, printed after the last goroutine.
            cut = "no register block, which the runtime prints after the last goroutine"
        if cut is not None:
            dump.lacks = f"{cut}: a cut-off paste, and the goroutines after it are not shown"
        dump.finish(text, result, False if cut is not None else whole)
    return result


_LOCATION = re.compile(r"\s+\S.*:\d+(?: \+0x[0-9a-f]+)?(?: fp=0x[0-9a-f]+ sp=0x[0-9a-f]+ "
                       r"pc=0x[0-9a-f]+)?\s*")


# Where the runtime's traceback of a goroutine ends: the goroutine that started it (``created
# by``), the main goroutine's entry, or the bottom of a system or cgo stack.
_STACK_BOTTOMS = frozenset({
    "main.main", "runtime.main", "runtime.goexit", "runtime.mstart", "runtime.mstart0",
    "runtime.mstart1", "runtime.mcall", "runtime.systemstack", "runtime.rt0_go",
    "runtime.morestack", "runtime.asmcgocall", "runtime.cgocallback",
    "runtime.cgocallbackg", "runtime.sigtramp", "runtime.sigtrampgo"})
_UNAVAILABLE = "goroutine running on other thread"
_SIGNAL_PC = re.compile(r"(?:^|\n)PC=0x[0-9a-f]+ m=\d+ sigcode=")
_REGISTER = re.compile(r"\n\w{1,6} +0x[0-9a-f]+[ \t]*(?:\n|$)")


def _cut_off(text: str, last: re.Match[str] | None) -> str | None:
    """Why the text ends inside the last goroutine's stack (a paste cut off), or None: a
    function line with no location after it, a location line that stops short, or a stack
    that stops above its bottom (every goroutine but the main one ends in ``created by``)."""
    if last is None or last.group(3) is None or text[last.end():].strip():
        return None
    tid = last.group(1)
    tail = last.group(3).rstrip("\n")
    cut = tail.rfind("\n")
    line = tail[cut + 1:]
    if line[:1].isspace():
        if line.strip().startswith(_UNAVAILABLE):
            return None
        if _LOCATION.fullmatch(line) is None:
            return f"it ends mid-line in {tid}'s stack"
        before = tail[:max(cut, 0)]
        func = before[before.rfind("\n") + 1:].strip()
        if (cut < 0 or func.startswith(("created by ", "...")) or func.startswith(_UNAVAILABLE)
                or func.split("(", 1)[0] in _STACK_BOTTOMS):
            return None
        return (f"it ends in {tid}'s stack at {func.split('(', 1)[0]}, before the 'created "
                "by' line that ends every goroutine's stack but main's")
    if line.startswith("created by ") or line.startswith(_UNAVAILABLE):
        return None
    return f"it ends in {tid}'s stack, at a function line without its location"


def _positional_thread_ok() -> bool:
    """True while ``Thread``'s fields start in the order ``parse`` passes them positionally
    (positional arguments skip the keyword matching, a tenth of the parse for 100,000
    goroutines) and every later field has a default; otherwise ``parse`` uses keywords."""
    order = ("id", "tid", "name", "state", "frames", "holds", "waits", "group", "daemon",
             "detail")
    all_fields = fields(Thread)
    return (tuple(f.name for f in all_fields[:len(order)]) == order
            and all(f.default is not MISSING or f.default_factory is not MISSING
                    for f in all_fields[len(order):]))


_POSITIONAL_THREAD = _positional_thread_ok()


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


def _header(bracket: str) -> _Head:
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
    return _Head(reason, minutes, locked)


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


@dataclass(slots=True)
class _Head:
    """What one goroutine header's bracket says: ``semacquire, 5 minutes, locked to thread``."""

    reason: str
    minutes: int | None
    locked: bool


@dataclass(slots=True)
class _Decision:
    """What a header means for one particular stack: worked out once per (header, stack)."""

    state: ThreadState
    kind: ResourceKind | None  # set when the goroutine waits for a resource in the program
    durable: bool
    detail: str
    reason: str
    duration: float | None  # seconds waited, when the header says
    syscall: bool  # in a system or cgo call for minutes: the wait is outside Go
    waits: bool  # kind or syscall: the thread gets a Wait


def _decide(head: _Head, stack: _Stack) -> _Decision:
    reason = head.reason
    state, kind, durable = REASONS.get(reason, ("unknown", None, False))
    if reason.startswith("semacquire"):
        state, kind, durable = "blocked", stack.sema_kind or "semaphore", True
    if state == "blocked":
        if stack.runtime_only:
            state = "idle"
        elif kind == "channel" and stack.pool_worker and not reason.startswith("chan send"):
            # A pool worker waiting for its next job (a receive, or a select over its job and
            # quit channels) is idle; one blocked in a send is handing a result on, and stays
            # blocked until someone receives it.
            state = "idle"
    if stack.child == 1 and state == "io":
        return _Decision(state="blocked", kind="process", durable=False,
                         detail=reason + ": waits for a child process", reason=reason,
                         duration=head.minutes * 60.0 if head.minutes is not None else None,
                         syscall=False, waits=True)
    if stack.child == 2 and state == "io":
        return _Decision(state="idle", kind=None, durable=False, detail=CHILD_OUTPUT,
                         reason=reason, duration=None, syscall=False, waits=False)
    if stack.signal_wait and state in ("io", "blocked"):
        return _Decision(state="idle", kind=None, durable=False, detail=SIGNAL_WAIT,
                         reason=reason, duration=None, syscall=False, waits=False)
    minutes = head.minutes
    waits = state == "blocked" and kind is not None
    syscall = not waits and minutes is not None and state in ("io", "running")
    return _Decision(
        state=state, kind=kind if waits else None, durable=durable,
        detail=reason + ", locked to thread" if head.locked else reason, reason=reason,
        duration=minutes * 60.0 if minutes is not None else None,
        syscall=syscall, waits=waits or syscall)


class _DumpBuilder:
    """Threads and resources of one dump (a text may hold several), made as goroutines are
    read; ``used``: thread ids taken by earlier dumps of the same text (None for the first)."""

    __slots__ = ("all_asleep", "ids", "index", "lacks", "owners_maybe", "prefix", "resources",
                 "shared", "threads", "used", "waiting_addr")

    def __init__(self, index: int, used: set[str] | None) -> None:
        self.index = index
        self.prefix = f"go{index}:"
        self.used = used
        self.ids: set[str] = set()  # thread ids as printed ("goroutine 7")
        self.threads: list[Thread] = []
        self.resources: dict[str, Resource] = {}
        self.waiting_addr: dict[str, str] = {}  # thread id -> address of the mutex it waits for
        # (kind, function line naming a waited object's address) -> (resource id, address)
        self.shared: dict[tuple[str, str], tuple[str, str]] = {}
        # Goroutines running pointer-receiver methods, for owner inference: (thread, stack,
        # the function lines of the stack's ``methods``), read only if a mutex is waited for.
        self.owners_maybe: list[tuple[Thread, _Stack, str | tuple[str, ...]]] = []
        self.all_asleep: str | None = None
        self.lacks: str | None = None  # why the text visibly lacks goroutines, for the note

    def used_ids(self) -> set[str]:
        """Every thread id taken so far, for the next dump of the same text."""
        if self.used is None:
            return {t.id for t in self.threads}
        return self.used

    def unique(self, tid: str) -> str:
        """``tid``, or ``goroutine N #index`` when an earlier dump of the text took it."""
        assert self.used is not None
        if tid in self.used:
            tid = f"{tid} #{self.index}"
        self.used.add(tid)
        return tid

    def wait(self, t: Thread, d: _Decision, stack: _Stack, funcs: list[str]) -> None:
        """Give ``t`` the wait its header and stack describe, and the resource it waits for."""
        tid = t.id
        kind = d.kind
        if kind == "process":  # the child's pid is not printed (os.(*Process) holds it)
            rid = self.prefix + f"process:{tid}"
            self.resources[rid] = Resource(id=rid, kind="process",
                                           label="a child process to exit")
            # where the program waits: past syscall, os and os/exec's own frames
            at = next((f for f in stack.frames if not f.function.startswith(_CHILD_LIBRARY)),
                      stack.at)
            t.waits = Wait(resource=rid, duration=d.duration, durable=False, at=at,
                           direction="wait-child")
        elif kind is not None:
            at = stack.at
            addr = None
            primitive = stack.primitive
            shared_key: tuple[str, str] | None = None
            if primitive is not None and primitive < len(funcs):
                # Many goroutines wait on one object: its function line repeats verbatim.
                shared_key = (kind, funcs[primitive])
                known = self.shared.get(shared_key)
                if known is not None:
                    t.waits = Wait(resource=known[0], duration=d.duration, durable=d.durable,
                                   at=at)
                    if known[1] is not None and kind in ("mutex", "rwlock"):
                        self.waiting_addr[tid] = known[1]
                    return
                addr = _address(_first_arg(shared_key[1]))
            rid = self.prefix + (f"{kind}:{addr}" if addr else f"{kind}:{tid}")
            if rid not in self.resources:
                label = (f"{_kind_word(kind)} {addr}" if addr
                         else f"{d.reason} in {at.function if at else '?'}")
                self.resources[rid] = Resource(id=rid, kind=kind, label=label, address=addr)
            if addr and shared_key is not None and len(self.shared) < 100_000:
                self.shared[shared_key] = (rid, addr)
            t.waits = Wait(resource=rid, duration=d.duration, durable=d.durable, at=at)
            if addr and kind in ("mutex", "rwlock"):
                self.waiting_addr[tid] = addr
        elif d.syscall:
            rid = self.prefix + f"syscall:{tid}"
            cgo = next((f.function for f in stack.frames if "_Cfunc_" in f.function), None)
            label = f"cgo call {cgo.rsplit('.', 1)[-1]}" if cgo else "system call"
            self.resources[rid] = Resource(id=rid, kind="unknown", label=label)
            t.waits = Wait(resource=rid, duration=d.duration, durable=False, at=stack.at)

    def finish(self, text: str, result: ParseResult, whole: bool | None) -> None:
        """``whole``: True when the text says the runtime printed every goroutine, False when
        it visibly left some out ("..." between goroutines), None when it cannot tell."""
        threads = self.threads
        complete = whole if whole is not True or len(threads) > 1 else None
        lacks = self.lacks or ("'...' where goroutines were left out" if whole is False else None)
        if "goroutine 1" not in self.ids:
            complete = False  # goroutine 1 (main) is in every dump of a live program
            lacks = lacks or "no goroutine 1, the main goroutine, which every dump shows"
        if complete is False and lacks is not None:
            # Said even when nothing is found: "nothing found" in an excerpt is no all-clear.
            result.notes.append(
                f"Go dump {self.index}: the text lacks goroutines ({lacks}); for every "
                "goroutine: kill -QUIT PID with GOTRACEBACK=all (it ends the program), or "
                "curl 'http://HOST:PORT/debug/pprof/goroutine?debug=2' where it serves pprof")
        # Nothing shown runs now (sleepers will later): the state Go's own deadlock check
        # looks at, when every goroutine is shown.
        quiet = not any(t.state in ("running", "io") for t in threads)
        _infer_mutex_owners(self, text, result, quiet)
        if quiet and complete:
            _channel_references(self, text)  # who else could use each channel
        result.processes.append(Process(threads=threads, complete=complete))
        result.resources.extend(self.resources.values())
        if self.all_asleep is not None:
            result.stated.append(Finding(
                kind="stall", confidence="certain",
                summary=f"the Go runtime stopped the program with \"{self.all_asleep}\"",
                threads=[t.id for t in threads], details={"source": "go runtime"}))


def _channel_references(dump: _DumpBuilder, text: str) -> None:
    """For each awaited channel, the goroutines that pass its address as an argument in a
    function line (``main.consumer(0xc00008a000, ...)``): those that may send on it, receive
    from it or close it. Run only when no goroutine can run, for a bounded number of channels,
    each found with one C-speed search through the text."""
    by_gid = {t.id.removeprefix("goroutine ").split(" ", 1)[0]: t for t in dump.threads}
    channels = [r for r in dump.resources.values() if r.kind == "channel" and r.address]
    for res in channels[:_REFERENCE_SCANS]:
        addr = res.address
        assert addr is not None
        found: list[str] = []
        pos = text.find(addr)
        while pos >= 0 and len(found) < 32:
            end = pos + len(addr)
            before = text[pos - 1] if pos > 0 else ""
            after = text[end] if end < len(text) else ""
            line_start = text.rfind("\n", 0, pos) + 1
            if before in "( " and after in ",)?" and not text[line_start].isspace():
                head = text.rfind("\ngoroutine ", 0, pos)
                if head >= 0:
                    gid = text[head + 11:text.find(" ", head + 11)]
                    t = by_gid.get(gid)
                    if t is not None and t.id not in found and not (
                            t.waits is not None and t.waits.resource == res.id):
                        found.append(t.id)
            pos = text.find(addr, end)
        res.referenced_by = found


def _kind_word(kind: str) -> str:
    return {"mutex": "sync.Mutex", "rwlock": "sync.RWMutex", "waitgroup": "sync.WaitGroup",
            "condition": "sync.Cond", "channel": "channel"}.get(kind, kind)


def _infer_mutex_owners(dump: _DumpBuilder, text: str, result: ParseResult,
                        quiet: bool = False) -> None:
    """A goroutine running a method on the object at a waited mutex's address likely holds it.

    Only pointer-receiver methods (``pkg.(*T).M(0xc000…)``) count: their first argument is
    the object itself, and a mutex that is the object's first field shares its address.
    The waiter itself counts too when a method on the object sits further out on its own
    stack than the call that locks (``(*store).update`` calling ``(*store).flush``, which
    locks ``s.mu``): it likely took the lock there and is locking it again, which a
    ``sync.Mutex`` never allows. Only while nothing runs (``quiet``): in a busy program an
    outer method on the same object is more often a caller that has not locked it.
    """
    if not dump.waiting_addr:
        return
    waiting_addr = dump.waiting_addr
    wanted = set(waiting_addr.values())
    candidates: dict[str, list[tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    addresses: dict[str, str | None] = {}  # first argument -> the address it holds
    plain = _PLAIN_ADDR.fullmatch
    for t, stack, method_lines in dump.owners_maybe:
        if type(method_lines) is str:
            method_lines = (method_lines,)
        for i, line in zip(stack.methods, method_lines, strict=True):
            end = len(line) - 1
            if end < 0 or line[end] != ")":
                continue
            start = line.rfind("(", 0, end) + 1
            comma = line.find(",", start, end)
            arg = line[start:comma if comma >= 0 else end]
            if arg in wanted:  # as Go prints an address: its own normal form
                addr: str | None = arg
            elif plain(arg):
                continue  # an address in normal form that no goroutine waits for
            else:
                # Receivers repeat (one object, many goroutines): read each argument once.
                addr = addresses.get(arg, "")
                if addr == "":
                    addr = _address(arg)
                    if len(addresses) < 100_000:
                        addresses[arg] = addr
            if addr in wanted and (addr, t.id) not in seen:
                assert addr is not None
                if addr == waiting_addr.get(t.id) and (not quiet or stack.at is None
                                                       or i <= stack.frames.index(stack.at)):
                    continue  # the frame that locks, or a busy program: not evidence
                seen.add((addr, t.id))
                candidates.setdefault(addr, []).append((t.id, stack.frames[i].function))
    if not candidates:
        return
    by_id = {t.id: t for t in dump.threads}
    for res in dump.resources.values():
        if res.address is None or res.owners or res.kind not in ("mutex", "rwlock"):
            continue
        cands = candidates.get(res.address, [])
        if len(cands) != 1:
            continue
        owner, function = cands[0]
        res.owners.append(owner)
        by_id[owner].holds.append(res.id)
        if waiting_addr.get(owner) == res.address:
            result.inferred[res.id] = (
                f"Go does not record mutex owners; {owner} waits for it from inside "
                f"{function} on the object at {res.address}, the mutex's own address, further "
                "out on its own stack: it probably locked it there")
        else:
            result.inferred[res.id] = (
                f"Go does not record mutex owners; {owner} is in {function} on the object at "
                f"{res.address}, the mutex's own address, so it probably holds it")
