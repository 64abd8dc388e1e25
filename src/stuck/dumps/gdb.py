"""gdb (and pstack) output: ``info threads``, ``thread apply all bt`` / ``bt full``, interactive
``thread N`` + ``bt`` sessions, ``print`` of mutexes and condition variables, ``py-bt``.

What gdb can show beyond stacks is what makes a verdict possible: a printed
``pthread_mutex_t`` carries ``__owner`` (the holder's LWP), a printed condition variable its
``__mutex`` and waiter count. A print is tied to a thread by address when the dump has one,
else by the thread selected when it was printed.

A paste may hold several sessions (several processes): a thread number that reappears with a
different LWP starts a new process.

Issue pastes often caption a thread block ("IngestExternalFile stack", then the block): a short
line of that shape right before a thread header, with only blank lines or a code fence between,
is kept as the thread's ``paste_label``, a hint to its role when its frames are cut off.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from stuck.dumps import ParseResult
from stuck.dumps._text import has_any_line, iter_lines, split_call
from stuck.model import Frame, Process, Resource, Thread, Wait
from stuck.stacks.native import Classification, base_name, classify

NAME = "gdb"
# Each thread's backtrace is a block after a blank line (stuck.dumps.detect_formats).
BLOCK_START = 'Thread '

_HEADER = re.compile(
    r"^Thread (\d+) \((?:Thread (0x[0-9a-fA-F]+) )?\(?(?:LWP|process) (\d+)\)?"
    r"(?: \"([^\"]*)\")?\)?:?\s*$")
_SWITCH = re.compile(
    r"^\[Switching to thread (\d+) \((?:Thread (0x[0-9a-fA-F]+) )?\(?(?:LWP|process) (\d+)\)")
_INFO_ROW = re.compile(
    r"^(\*)?\s*(\d+)\s+(?:Thread (0x[0-9a-fA-F]+) \()?(?:LWP|process) (\d+)\)?"
    r"(?: \"([^\"]*)\")?\s+(.*)$")
# A frame line: "#N", then an address and "in", a function with its arguments (gdb always
# prints the parentheses, empty or not), or a marker such as "<signal handler called>". A
# Markdown heading ("#0 Introduction") has none of these and is not a frame.
_NEW_LWP = re.compile(r"^\[New (?:Thread 0x[0-9a-fA-F]+ \()?LWP (\d+)\)?\]")
_FRAME = re.compile(r"^#(\d+)\s+((?:0x[0-9a-fA-F]+ in )?(?:[^\s(][^(]*\(.*|<.*>.*))$")
_AT_CONT = re.compile(r"^\s+at (\S+):(\d+)\s*$")
_ARG_ADDR = re.compile(r"(\w+)=(?:\w+@entry=)?(0x[0-9a-fA-F]+)(?: <([^<>]{1,200})>)?")
_PRINT_START = re.compile(r"^\$(\d+) = (.*)$")
_LOCAL_START = re.compile(r"^\s*([A-Za-z_][\w.]*) = (@0x[0-9a-fA-F]+: )?(\{.*)$")
# A printed expression that is a mutex's owner field: "mutex->__data.__owner", "m.__owner".
_OWNER_EXPR = re.compile(r"^\s*\(?\s*(\*?[\w.>\[\]-]{1,200}?)\s*\)?(?:->|\.)(?:__data\.)?__owner\s*$")
_THREADID = re.compile(r"\bthreadid=(0x[0-9a-fA-F]+|\d+)")
_PY_FILE = re.compile(r'^\s+File "([^"]*)", line (\d+), in (.+?)\s*$')
_PY_BUILTIN = re.compile(
    r"^\s+<built-in method (\w+) of ([\w.]+) object at (?:remote )?(0x[0-9a-fA-F]+)>\s*$")
_OBJ_TOKEN = re.compile(
    r"([\w.:<>\[\]]+) = \{|\{|\}|\b(__owner|__nwaiters|__wrefs|__mutex|__lock|__wseq|"
    r"__g_signals) = (0x[0-9a-fA-F]+|-?\d+)")
_FENCE = ("```", "~~~")
# A caption before a thread block: one to four words, then "stack", "backtrace", "thread" or
# "trace". Each word is a run of non-space characters closed by one space, so words cannot
# split two ways and a failing match stays cheap; lines longer than _LABEL_MAX are never tried.
_PASTE_LABEL = re.compile(
    r"^(?:[\w:.~<>()\[\]-]{1,60} ){1,4}(?:call ?)?(?:stack|backtrace|thread|trace)s?:?$",
    re.IGNORECASE)
_LABEL_MAX = 100
_MAX_OBJECT = 1 << 20  # characters of one printed value kept for scanning

# Members that only wrap the real primitive: ``mutex_ = {mutex_ = {mu_ = {__data ...``.
_GENERIC_MEMBERS = frozenset({
    "mutex_", "mu_", "cv_", "cond_", "_M_mutex", "_M_cond", "__data", "<std::__mutex_base>",
    "<std::__condvar>", "m_", "mutex", "cond",
})


@dataclass(slots=True)
class _Thread:
    num: int | None
    lwp: int | None
    addr: str | None = None
    name: str | None = None
    label: str | None = None  # the paste's caption right before the thread's block
    frames: list[Frame] = field(default_factory=list)
    args: list[str | None] = field(default_factory=list)
    py_frames: list[Frame] = field(default_factory=list)
    py_wait: tuple[str, str, str] | None = None  # (method, type, address)
    addresses: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Printed:
    label: str
    kind: str  # "mutex" | "condition"
    owner: int | None
    mutex_addr: str | None
    waiters: int | None
    address: str | None
    context: _Thread | None


@dataclass(slots=True)
class _Session:
    threads: list[_Thread] = field(default_factory=list)
    by_num: dict[int, _Thread] = field(default_factory=dict)
    by_lwp: dict[int, _Thread] = field(default_factory=dict)
    printed: list[_Printed] = field(default_factory=list)
    announced: set[int] = field(default_factory=set)  # LWPs of "[New LWP N]" lines
    elided: bool = False  # a "..." line between blocks: the paste left threads out
    cut_in: _Thread | None = None  # the thread whose stack the text ends in, mid-line
    headless_py: bool = False  # a py-bt pasted without the thread it was printed for
    headed: list[int] = field(default_factory=list)  # "Thread N (...)" block numbers, in order


# detect: distinctive words, each checked against the start of the line that holds it
_DETECT_LINE = re.compile(
    r"[ \t]*(?:Thread \d+ \((?:Thread 0x|LWP |process )|#\d+ +(?:0x[0-9a-fA-F]+ in )?"
    r"(?:[^\s(][^(\n]*\(|<)|\(gdb\) |"
    r"\[Switching to thread|Id +Target Id|Traceback \(most recent call first\):)")
# "Traceback (most recent call first):" is python-gdb's py-bt header (Python's own tracebacks
# say "most recent call last").
_DETECT = tuple((needle, _DETECT_LINE) for needle in (
    "#0 ", "#1 ", "Thread ", "(gdb) ", "[Switching to thread", "Target Id",
    "Traceback (most recent call first)"))


def detect(text: str) -> bool:
    return has_any_line(text, _DETECT)


class _Parser:
    def __init__(self) -> None:
        self.sessions: list[_Session] = [_Session()]
        self.selected: _Thread | None = None
        self.replace_next = False  # the next frame line starts a fresh backtrace
        self.orphan: list[Frame] = []
        self.orphan_args: list[str | None] = []
        # Earlier backtraces without a thread header: a paste of several `(gdb) bt` outputs,
        # each a thread's (frame numbers start again at #0 for each backtrace).
        self.done_orphans: list[tuple[list[Frame], list[str | None]]] = []
        self.last_frame_loc = True
        self.print_expr: str | None = None
        self.obj_text: list[str] = []
        self.obj_depth = 0
        self.obj_len = 0
        self.obj_label = ""
        self.obj_address: str | None = None
        self.in_py = False
        self.frames_enabled = True
        self.stale = False
        self.bt_requested = False
        self.pending_frame: tuple[int, str] | None = None
        self.row_thread: _Thread | None = None  # an info-threads row awaiting "at file:line"
        self.pending_label: str | None = None  # a caption waiting for the thread it heads
        # (frames, args, last frame number) of a backtrace printed outermost first
        self.descending: tuple[list[Frame], list[str | None], int] | None = None
        self.notes: list[str] = []
        # frame text -> (frame, raw arguments, the addresses they hold): a backtrace's frames
        # repeat across threads (a pool's threads print the same lines), and Frames are
        # shared between threads as in every format
        self.frame_cache: dict[str, tuple[Frame, str | None, tuple[str, ...]]] = {}

    @property
    def session(self) -> _Session:
        return self.sessions[-1]

    # threads ------------------------------------------------------------------------------
    def thread(self, num: int | None, lwp: int | None, addr: str | None = None,
               name: str | None = None) -> _Thread:
        s = self.session
        t = s.by_num.get(num) if num is not None else None
        if t is None and lwp is not None:
            t = s.by_lwp.get(lwp)
        if t is not None and lwp is not None and t.lwp is not None and t.lwp != lwp:
            self.sessions.append(_Session())  # same number, another LWP: another process
            self.selected = None
            s = self.session
            t = None
        if t is None:
            t = _Thread(num=num, lwp=lwp)
            s.threads.append(t)
        if num is not None:
            t.num = num
            s.by_num[num] = t
        if lwp is not None:
            t.lwp = lwp
            s.by_lwp[lwp] = t
        if addr:
            t.addr = addr
        if name:
            t.name = name
        return t

    # frames -------------------------------------------------------------------------------
    def frame(self, number: int, rest: str) -> None:
        if not self.frames_enabled:
            return
        if rest.count("(") > rest.count(")"):
            self.pending_frame = (number, rest)  # arguments continue on the next line
            return
        cached = self.frame_cache.get(rest)
        if cached is None:
            frame, args = parse_frame(rest)
            cached = (frame, args, _arg_addresses(args))
            if len(self.frame_cache) < _FRAME_CACHE_MAX:
                self.frame_cache[rest] = cached
        frame, args, addresses = cached
        self.row_thread = None
        target = None if self.stale and self.bt_requested else self.selected
        if (number > 0 and self.replace_next and self.descending is None and target is not None
                and number < len(target.frames)
                and target.frames[number].function == frame.function):
            # "thread apply all frame apply all print ..." heads each thread again and prints
            # the frames it visits (#3, #4, ...): frames of a stack already read, not a new
            # backtrace printed outermost first. Keep the whole stack (its innermost frames
            # carry the wait's deadline and the program's line).
            self.frames_enabled = False
            return
        if self.descending is not None:  # a backtrace printed outermost frame first
            frames, arglist, last = self.descending
            if number < last:
                frames.append(frame)
                arglist.append(args)
                self.descending = (frames, arglist, number)
                if number == 0:  # innermost reached: put the stack the usual way round
                    frames.reverse()
                    arglist.reverse()
                    self.descending = None
                    self.replace_next = True
                self._note_addresses(target, addresses)
                self.last_frame_loc = frame.file is not None or frame.module is not None
                return
            self.descending = None
        if number > 0 and (self.replace_next or (target is not None and not target.frames)
                           or (target is None and not self.orphan)):
            # The first frame of a backtrace is not #0: frames come outermost first.
            if target is None:
                self._keep_orphan()
                self.orphan, self.orphan_args = [frame], [args]
                self.descending = (self.orphan, self.orphan_args, number)
            else:
                target.frames, target.args = [frame], [args]
                self.descending = (target.frames, target.args, number)
            self.replace_next = False
            self.bt_requested = False
            self._note_addresses(target, addresses)
            self.last_frame_loc = frame.file is not None or frame.module is not None
            return
        if number == 0:
            if (target is not None and not self.bt_requested and not self.replace_next
                    and target.frames and target.frames[0].function == frame.function):
                self.frames_enabled = False  # "thread N" echoes frame #0 of a known stack
                return
            self.replace_next = True
        self.bt_requested = False
        if target is None:
            if self.replace_next:
                self._keep_orphan()
                self.orphan, self.orphan_args = [], []
                self.replace_next = False
            self.orphan.append(frame)
            self.orphan_args.append(args)
        else:
            if self.replace_next:
                target.frames, target.args = [], []
                self.replace_next = False
            target.frames.append(frame)
            target.args.append(args)
            self._note_addresses(target, addresses)
        self.last_frame_loc = frame.file is not None or frame.module is not None

    @staticmethod
    def _note_addresses(target: _Thread | None, addresses: tuple[str, ...]) -> None:
        if target is not None and addresses:
            target.addresses.update(addresses)

    def continuation(self, file: str, line: int) -> None:
        if self.row_thread is not None:
            frames = self.row_thread.frames
        else:
            frames = self.selected.frames if self.selected is not None else self.orphan
        if frames and not self.last_frame_loc:
            f = frames[-1]
            frames[-1] = Frame(f.function, file, line, f.module)
            self.last_frame_loc = True

    # printed values -----------------------------------------------------------------------
    def start_object(self, label: str, address: str | None, text: str) -> None:
        self.obj_label = label
        self.obj_address = address.lower() if address else None
        self.obj_text = []
        self.obj_len = 0
        self.obj_depth = 0
        self.feed_object(text)

    def feed_object(self, text: str) -> None:
        if self.obj_len < _MAX_OBJECT:
            self.obj_text.append(text)
            self.obj_len += len(text)
        self.obj_depth += text.count("{") - text.count("}")
        if self.obj_depth <= 0:
            self.finish_object()

    def finish_object(self) -> None:
        text = " ".join(self.obj_text)
        self.obj_text = []
        self.obj_depth = 0
        owner_of = _OWNER_EXPR.match(self.obj_label)
        if owner_of is not None and text.strip().isdigit():
            # "print mutex->__data.__owner" / "p m.__data.__owner": the owner's LWP alone
            owner = int(text.strip())
            self.session.printed.append(_Printed(
                _member_label([], owner_of.group(1)), "mutex", owner, None, None,
                self.obj_address, self.selected))
            return
        for p in scan_object(text, self.obj_label, self.obj_address, self.selected):
            self.session.printed.append(p)
            if p.address and self.selected is not None:
                self.selected.addresses.add(p.address)

    # lines --------------------------------------------------------------------------------
    def line(self, raw: str) -> None:
        if self.obj_text:
            self.feed_object(raw)
            return
        if self.pending_frame is not None:
            number, text = self.pending_frame
            self.pending_frame = None
            if raw[:1].isspace() and len(text) < 8192:
                self.frame(number, text + " " + raw.strip())
                return
            self.frame(number, text + ")")
        s = raw.strip()
        if not s:
            self.in_py = False
            return
        if s.startswith(_FENCE):
            self.stale = True  # a new code block: a bare "bt" may be another session's
            self.in_py = False
            self.pending_frame = None
            return
        label, self.pending_label = self.pending_label, None
        if s.startswith("(gdb)"):
            self.command(s[5:].strip())
            return
        c0 = s[0]
        if c0 == "#":
            m = _FRAME.match(s)
            if m:
                self.frame(int(m.group(1)), m.group(2))
                return
        if c0 == "T":
            if s.startswith("Thread "):
                m = _HEADER.match(s)
                if m:
                    t = self.thread(int(m.group(1)), int(m.group(3)), m.group(2), m.group(4))
                    self.session.headed.append(int(m.group(1)))
                    if label is not None:
                        t.label = label
                    self.selected = t
                    self.replace_next = True
                    self.stale = False
                    self.bt_requested = False
                    self.frames_enabled = True
                    self.row_thread = None
                    self.in_py = False
                    return
            if s.startswith("Traceback (most recent call first)"):
                if self.selected is None:
                    # py-bt output pasted without its "Thread N (...)" line or `thread N`
                    # command: one thread, of a process the text does not show whole
                    self.selected = self.thread(None, None)
                    self.session.headless_py = True
                self.selected.py_frames = []
                self.selected.py_wait = None
                self.in_py = True
                return
        if c0 == "[" and s.startswith("[New "):
            m = _NEW_LWP.match(s)
            if m:
                self.session.announced.add(int(m.group(1)))
            return
        if s in ("...", "…", "[...]", "(...)"):
            self.session.elided = True
            return
        if c0 == "[" and s.startswith("[Switching to thread"):
            m = _SWITCH.match(s)
            if m:
                self.selected = self.thread(int(m.group(1)), int(m.group(3)), m.group(2))
                self.frames_enabled = True
                self.stale = False
            return
        if c0 == "$":
            m = _PRINT_START.match(s)
            if m:
                self.start_object(self.print_expr or f"${m.group(1)}", None, m.group(2))
                self.print_expr = None
            return
        if self.in_py:
            self.py_line(raw)
            return
        if raw[0].isspace():
            m = _AT_CONT.match(raw)
            if m:
                self.continuation(m.group(1), int(m.group(2)))
                return
        if c0 == "*" or c0.isdigit():
            m = _INFO_ROW.match(s)
            if m:
                self.info_row(m)
                return
        if "{" in s:
            m = _LOCAL_START.match(raw)
            if m:
                addr = m.group(2)[1:-2] if m.group(2) else None
                self.start_object(m.group(1), addr, m.group(3))
                return
        if len(s) <= _LABEL_MAX and _PASTE_LABEL.match(s):
            self.pending_label = s.rstrip(":")

    def command(self, cmd: str) -> None:
        word, _, rest = cmd.partition(" ")
        self.in_py = False
        self.row_thread = None
        self.frames_enabled = word not in ("up", "down", "frame", "f", "info", "list", "l")
        if cmd.startswith("info threads"):
            self.frames_enabled = True
        if word in ("thread", "t") and rest.strip().isascii() and rest.strip().isdigit():
            num = int(rest.strip())
            t = self.session.by_num.get(num)
            self.selected = t if t is not None else self.thread(num, None)
            self.stale = False
        elif word in ("bt", "backtrace", "where") or cmd in ("bt full", "backtrace full"):
            self.replace_next = True
            self.bt_requested = True
        elif word in ("print", "p", "output", "call") or word.startswith(("p/", "print/")):
            self.print_expr = rest.strip() or None
        elif word == "py-bt":
            if self.selected is not None:
                self.selected.py_frames = []
            self.in_py = True

    def _keep_orphan(self) -> None:
        """A new backtrace without a thread header begins: the one before it was another
        thread's (the same stack printed twice is one thread: nothing tells them apart)."""
        stack = (self.orphan, self.orphan_args)
        if self.orphan and not any(_same_stack(stack, kept) for kept in self.done_orphans):
            self.done_orphans.append(stack)

    def info_row(self, m: re.Match[str]) -> None:
        t = self.thread(int(m.group(2)), int(m.group(4)), m.group(3), m.group(5))
        if m.group(1):
            self.selected = t
            self.stale = False
            if self.orphan and not t.frames:
                t.frames, t.args = self.orphan, self.orphan_args
                self.orphan, self.orphan_args = [], []
        if not t.frames:
            frame, args = parse_frame(m.group(6))
            t.frames.append(frame)
            t.args.append(args)
            self.row_thread = t
            self.last_frame_loc = frame.file is not None or frame.module is not None
        else:
            self.row_thread = None

    def py_line(self, raw: str) -> None:
        t = self.selected
        if t is None:
            return
        m = _PY_FILE.match(raw)
        if m:
            t.py_frames.append(Frame(m.group(3), m.group(1), int(m.group(2))))
            return
        m = _PY_BUILTIN.match(raw)
        if m:
            t.py_frames.append(Frame(f"<built-in method {m.group(1)} of {m.group(2)} object>"))
            if t.py_wait is None and len(t.py_frames) == 1:
                t.py_wait = (m.group(1), m.group(2), m.group(3).lower())


_FRAME_CACHE_MAX = 100_000  # distinct frame lines remembered per parse


def _arg_addresses(args: str | None) -> tuple[str, ...]:
    """The addresses a frame's arguments hold (``mutex=0x5600…``), lower case."""
    if not args:
        return ()
    return tuple(m.group(2).lower() for m in _ARG_ADDR.finditer(args))


def parse_frame(rest: str) -> tuple[Frame, str | None]:
    """``0x… in func (args) at file:line`` / ``… from lib.so`` -> (Frame, raw args)."""
    rest = rest.strip()
    if rest.startswith("0x"):
        k = rest.find(" in ")
        if k > 0:
            rest = rest[k + 4:]
    file: str | None = None
    line: int | None = None
    module: str | None = None
    k = rest.rfind(") at ")
    if k >= 0:
        loc = rest[k + 5:].strip()
        f, _, ln = loc.rpartition(":")
        if f and ln.isascii() and ln.isdigit():
            file, line = f, int(ln)
        else:
            file = loc
        rest = rest[:k + 1]
    else:
        k = rest.rfind(") from ")
        if k >= 0:
            module = rest[k + 7:].strip()
            rest = rest[:k + 1]
    func, args = split_call(rest)
    if not func:
        func = "??"
    return Frame(func, file, line, module), args


def _member_label(path: list[str | None], expr: str) -> str:
    names = [p for p in path if p]
    for p in names:
        if p not in _GENERIC_MEMBERS and not p.startswith("<"):
            return p
    expr = expr.strip()
    if expr in ("*this", "this", "") or expr.startswith("$"):
        return names[0] if names else expr
    if names and names[0] not in _GENERIC_MEMBERS:
        return f"{expr}.{names[0]}"
    return expr


def scan_object(text: str, expr: str, address: str | None,
                context: _Thread | None) -> list[_Printed]:
    """Mutexes and condition variables inside one printed value, with their member names."""
    path: list[str | None] = []
    fields: dict[tuple[str | None, ...], dict[str, str]] = {}
    order: list[tuple[str | None, ...]] = []
    for m in _OBJ_TOKEN.finditer(text):
        tok = m.group(0)
        if m.group(2):
            key = tuple(path[:-1]) if path and path[-1] == "__data" else tuple(path)
            if key not in fields:
                fields[key] = {}
                order.append(key)
            fields[key].setdefault(m.group(2), m.group(3))
        elif tok == "}":
            if path:
                path.pop()
        elif tok == "{":
            path.append(None)
        else:
            path.append(m.group(1))
    out = []
    for key in order:
        f = fields[key]
        label = _member_label(list(key), expr)
        top = not any(key)
        addr = address if top else None
        if "__owner" in f:
            out.append(_Printed(label, "mutex", _int(f["__owner"]), None, None, addr, context))
        elif "__nwaiters" in f or "__wseq" in f or "__g_signals" in f or "__wrefs" in f:
            waiters = _int(f["__nwaiters"]) if "__nwaiters" in f else (
                (_int(f["__wrefs"]) or 0) >> 3 if "__wrefs" in f else None)
            mutex = f.get("__mutex")
            if mutex is not None and _int(mutex) == 0:
                mutex = None
            out.append(_Printed(label, "condition", None, mutex.lower() if mutex else None,
                                waiters, addr, context))
    return out


def _int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


# --- building the model ---------------------------------------------------------------------

_PARAM_FOR = {
    "mutex": ("mutex", "m", "futex", "__mutex", "lock", "this"),
    "rwlock": ("rwlock", "rwl", "this"),
    "condition": ("cond", "cv", "__cond", "c", "this"),
    "semaphore": ("sem", "isem", "this"),
    "unknown": ("futex_word", "uaddr", "futex", "this"),
    "thread": ("threadid", "th"),
    "event": ("barrier", "this"),
    "barrier": ("barrier", "this"),
}


def _wait_address(t: _Thread, start: int, kind: str) -> tuple[str | None, str | None]:
    """(address, symbol) of the primitive a native thread waits on, read from frame args."""
    params = _PARAM_FOR.get(kind, ())
    for i in range(start, min(start + 4, len(t.args))):
        args = t.args[i]
        if not args:
            continue
        for m in _ARG_ADDR.finditer(args):
            if m.group(1) in params:
                return m.group(2).lower(), m.group(3)
    return None, None


# (file suffix, function) of the innermost Python frame -> what the thread waits on
_PY_WAITS: dict[tuple[str, str], str] = {
    ("threading.py", "wait"): "condition", ("threading.py", "_wait_for_tstate_lock"): "thread",
    ("threading.py", "join"): "thread", ("queue.py", "get"): "queue",
    ("_base.py", "result"): "future", ("threading.py", "acquire"): "semaphore",
}


def _python_wait(t: _Thread) -> tuple[str, str, bool] | None:
    """(kind, state, durable) for a py-bt stack that is blocked in a lock or a wait."""
    frames = t.py_frames
    start = 1 if t.py_wait is not None else 0
    kind = None
    for f in frames[start:start + 2]:
        kind = _PY_WAITS.get(((f.file or "").rsplit("/", 1)[-1], f.function))
        if kind is not None:
            break
    callers = frames[start:start + 8]
    if kind in ("condition", "queue", "semaphore"):
        idle = any((f.file or "").endswith("queue.py") or "pool" in (f.file or "").lower()
                   or "pool" in f.function.lower() for f in callers)
        return (kind if kind != "queue" else "queue", "idle" if idle else "blocked", True)
    if kind is not None:
        return (kind, "blocked", True)
    if t.py_wait is None:
        return None
    method, typ, _ = t.py_wait
    if method not in ("acquire", "__enter__"):
        return None
    return ("rlock" if "RLock" in typ else "mutex", "blocked", True)


def _build(session: _Session, index: int, used: set[str], result: ParseResult) -> None:
    prefix = f"gdb{index}:"
    threads: list[Thread] = []
    by_raw: dict[int, Thread] = {}
    by_lwp: dict[int, str] = {}
    resources: dict[str, Resource] = {}
    waits_kind: dict[str, str] = {}  # thread id -> resource kind waited on
    join_targets: dict[str, _Thread] = {}  # thread id -> the thread it joins
    file_lock_waits: list[str] = []  # what each thread in flock / fcntl(F_SETLKW) waits for
    # The threads of a pool share their Frame objects (``_Parser.frame_cache``): a stack made
    # of the same objects is classified once. Keyed by identity, valid while the frames live,
    # which they do for all of this function.
    classified: dict[tuple[int, ...], Classification] = {}

    def resource(key: str, kind: str, label: str, address: str | None) -> Resource:
        rid = prefix + key
        res = resources.get(rid)
        if res is None:
            res = Resource(id=rid, kind=kind, label=label, address=address)  # type: ignore[arg-type]
            resources[rid] = res
        return res

    for raw in session.threads:
        tid = (f"LWP {raw.lwp}" if raw.lwp is not None
               else f"Thread {raw.num}" if raw.num is not None else "Thread ?")
        while tid in used:
            tid += f" #{index}"
        used.add(tid)
        frames = raw.py_frames if raw.py_frames else raw.frames
        name = raw.name or (f"Thread {raw.num}" if raw.num is not None else None)
        t = Thread(id=tid, tid=raw.lwp, name=name, frames=list(frames), paste_label=raw.label)
        threads.append(t)
        by_raw[id(raw)] = t
        if raw.lwp is not None:
            by_lwp[raw.lwp] = tid
        py = _python_wait(raw) if raw.py_frames else None
        if py is not None:
            kind, state, durable = py
            t.state = state  # type: ignore[assignment]
            if state == "blocked":
                py_addr = raw.py_wait[2] if raw.py_wait is not None and kind in (
                    "mutex", "rlock") else None
                at = next((f for f in raw.py_frames if f.file and not f.file.endswith(
                    ("threading.py", "queue.py"))), None)
                label = (f"{raw.py_wait[1]} at {py_addr}" if raw.py_wait and py_addr
                         else f"(unnamed {kind}, in {at.function if at else '?'})")
                key = f"{kind}:{py_addr}" if py_addr else f"{kind}:{tid}"
                res = resource(key, kind, label, py_addr)
                t.waits = Wait(resource=res.id, durable=durable, at=at)
                waits_kind[tid] = kind
            continue
        if raw.py_frames:
            c = classify(raw.py_frames)
            t.state = "running" if c.state == "running" else c.state
            continue
        stack_key = tuple(map(id, raw.frames))
        known = classified.get(stack_key)
        if known is None:
            known = classified[stack_key] = classify(raw.frames)
        c = known
        t.state = c.state
        if c.category == "file-lock" and c.primitive is not None:
            if _fcntl_does_not_wait(raw, c.primitive):
                t.state = "running"  # fcntl(F_GETFL, ...) and the like return at once
                continue
            # A lock whose holder may be another process, which no thread dump shows: a wait
            # that ends from outside the threads shown, like I/O. One dump cannot tell a lock
            # held for good from one a process holds for a moment (flock contention between
            # processes), so it is described, with what shows the holder, and not judged.
            fd = _fd_of(raw, c.primitive)
            call = _LOCK_CALL.sub("", base_name(raw.frames[c.primitive].function))
            call = {"fcntl": "fcntl F_SETLKW"}.get(call, call)
            label = (f"the file lock on fd {fd} ({call})" if fd is not None
                     else f"a file lock ({call})")
            res = resource(f"filelock:{fd if fd is not None else tid}", "mutex", label, None)
            t.state = "io"
            t.detail = f"waits for {label}"
            t.waits = Wait(resource=res.id, durable=False, at=c.at, direction="lock")
            file_lock_waits.append(f"{t.label()} waits for {label}")
            continue
        if c.state == "io" and c.primitive is not None:
            fd = _write_fd(raw, c.primitive)
            if fd is not None:  # a blocking write: the data waits for a reader of that fd
                sock = base_name(raw.frames[c.primitive].function).lstrip("_").startswith(
                    ("send", "libc_send"))
                res = resource(f"fd:{fd}", "socket" if sock else "pipe", f"fd {fd} to be read",
                               None)
                t.waits = Wait(resource=res.id, durable=False, at=c.at, direction="write")
            continue
        if c.state != "blocked" or c.kind is None or c.primitive is None:
            continue
        if c.kind == "process":  # waitpid / wait4: the child's pid is the first argument
            pid = _child_pid(raw, c.primitive)
            key = f"process:{pid}" if pid is not None else f"process:{tid}"
            label = f"process {pid} to exit" if pid is not None else "a child process to exit"
            res = resource(key, "process", label, None)
            t.waits = Wait(resource=res.id, durable=False, at=c.at, direction="wait-child")
            waits_kind[tid] = "process"
            continue
        addr, symbol = _wait_address(raw, c.primitive, c.kind)
        key = f"{c.kind}:{addr}" if addr is not None else f"{c.kind}:{tid}"
        where = base_name(c.at.function) if c.at is not None else base_name(
            raw.frames[c.primitive].function)
        what = ("std::future's shared state" if "__atomic_futex_unsigned" in
                raw.frames[c.primitive].function else c.kind)
        label = symbol or (f"{what} at {addr}" if addr else f"(unnamed, in {where})")
        res = resource(key, c.kind, label, addr)
        durable = c.durable and not _has_deadline(raw, c.primitive)
        t.waits = Wait(resource=res.id, durable=durable, at=c.at)
        waits_kind[tid] = c.kind
        if c.kind == "thread":
            joined = _joined_thread(raw, c.primitive, session)
            if joined is not None:
                join_targets[tid] = joined

    if file_lock_waits:
        who = "; ".join(file_lock_waits[:4]) + (
            f"; and {len(file_lock_waits) - 4} more" if len(file_lock_waits) > 4 else "")
        result.notes.append(
            f"{who}: a thread dump does not show who holds a file lock (a thread of this "
            "process or another process), and one dump cannot tell a lock held for good from "
            "a moment's contention; `cat /proc/locks` lists the holders' pids, `stuck capture "
            "PID` names them and what they wait for")
    tmap = {t.id: t for t in threads}
    for tid, target_raw in join_targets.items():
        joined_t = by_raw[id(target_raw)]
        waiter = tmap[tid]
        assert waiter.waits is not None
        res = resources[waiter.waits.resource]
        res.owners = [joined_t.id]
        res.label = f"{joined_t.label()} to finish"
    # printed primitives -> names, owners
    matched_cond: set[str] = set()
    unnamed: list[_Printed] = []  # "$N = {...}" mutexes no single candidate fits
    for p in session.printed:
        ctx = by_raw.get(id(p.context)) if p.context is not None else None
        if p.kind == "mutex":
            found: Resource | None = None
            if p.address:
                found = resources.get(f"{prefix}mutex:{p.address}")
            if found is None:
                found = next((r for r in resources.values()
                              if r.kind == "mutex" and r.label == p.label), None)
            ctx_waits_mutex = (ctx is not None and ctx.waits is not None
                               and waits_kind.get(ctx.id) == "mutex")
            if found is None and ctx_waits_mutex:
                assert ctx is not None and ctx.waits is not None
                cand = resources[ctx.waits.resource]
                printed_owner = by_lwp.get(p.owner, f"LWP {p.owner}") if p.owner else None
                # the mutex the context thread waits for; printed again from another of its
                # frames ("frame apply all print *mutex"), it names the same owner again
                if not cand.owners or cand.owners == [printed_owner]:
                    found = cand
                else:
                    continue  # another owner for the same mutex: not this one, say nothing
            if found is None and p.owner and p.label.startswith("$"):
                found = _only_candidate(p, resources, waits_kind, tmap, by_lwp, result,
                                        self_possible=not ctx_waits_mutex)
                if found is None and not p.address:
                    unnamed.append(p)
                    continue
            if found is None:
                if not p.owner:
                    continue  # an unlocked mutex nobody waits for says nothing
                found = resource(f"mutex:{p.address or p.label}", "mutex", p.label, p.address)
            res = found
            if res.label.startswith("(unnamed") or res.label.startswith("mutex at "):
                res.label = p.label
            if p.owner:
                owner = by_lwp.get(p.owner, f"LWP {p.owner}")
                if owner not in res.owners:
                    res.owners.append(owner)
                if owner in tmap and res.id not in tmap[owner].holds:
                    tmap[owner].holds.append(res.id)
            continue
        # a condition variable: by address, by its mutex's address, then by context
        target: Thread | None = None
        if p.address:
            target = next((t for t in threads if t.waits is not None
                           and resources[t.waits.resource].address == p.address), None)
        if target is None and p.mutex_addr:
            for raw in session.threads:
                t2 = by_raw[id(raw)]
                if p.mutex_addr in raw.addresses and t2.id not in matched_cond \
                        and t2.waits is not None and waits_kind.get(t2.id) == "condition":
                    target = t2
                    break
            if target is None:
                for raw in session.threads:
                    t2 = by_raw[id(raw)]
                    if p.mutex_addr in raw.addresses and t2.id not in matched_cond \
                            and t2.state == "idle":
                        target = t2
                        break
        if target is None and ctx is not None and (p.waiters is None or p.waiters > 0) \
                and ctx.id not in matched_cond and waits_kind.get(ctx.id) == "condition":
            target = ctx
        if target is None:
            continue
        matched_cond.add(target.id)
        if target.waits is not None:
            res = resources[target.waits.resource]
            res.label = p.label
            if p.address and res.address is None:
                res.address = p.address
    if unnamed:
        _solve_jointly(unnamed, resources, tmap, by_lwp, result)
    if threads:
        # "thread apply all bt" numbers a process's threads 1..N: all of them there, each
        # with a stack, is the whole process (an excerpt or a single "bt" is not).
        nums = sorted(raw.num for raw in session.threads if raw.num is not None)
        complete: bool | None = None
        shown = {raw.lwp for raw in session.threads}
        absent = sorted(session.announced - shown)
        if absent or session.elided or session.headless_py or len(join_targets) < sum(
                1 for k in waits_kind.values() if k == "thread"):
            complete = False  # visibly an excerpt: threads gdb saw are not in the text
            why = (f"LWP {', '.join(map(str, absent[:6]))}{', …' if len(absent) > 6 else ''} "
                   "announced by gdb but not shown" if absent else
                   "'...' where threads were left out" if session.elided else
                   "a py-bt without the thread line it was printed for" if session.headless_py
                   else "a thread joins one that is not shown")
            result.notes.append(f"gdb session {index}: the text lacks threads ({why}); for the "
                                "whole process: gdb -p PID -batch -ex 'thread apply all bt'")
        elif session.cut_in is not None and not _cut_after_every_thread(session):
            # The text ends mid-line inside a stack: a cut-off paste. Only a listing that came
            # down to thread 1 ("thread apply all bt" prints N..1) shows every thread before
            # the cut; in any other order, threads may have followed it.
            complete = False
            result.notes.append(
                f"gdb session {index}: the text lacks threads (it ends mid-line in thread "
                f"{session.cut_in.num}'s stack, a cut-off paste, and the threads after it "
                "are not shown); for the whole process: gdb -p PID -batch -ex 'thread "
                "apply all bt'")
        elif (len(nums) == len(session.threads) and nums == list(range(1, len(nums) + 1))
              and all(raw.frames or raw.py_frames for raw in session.threads)):
            complete = True
        result.processes.append(Process(pid=None, name=None, threads=threads,
                                        complete=complete))
        result.resources.extend(resources.values())


def _cut_after_every_thread(session: _Session) -> bool:
    """True when a cut-off text came down to thread 1 ("thread apply all bt" prints N..1), so
    every thread was shown before the cut."""
    headed = session.headed
    return (session.cut_in is not None and len(headed) > 1
            and headed == sorted(headed, reverse=True) and session.cut_in.num == headed[-1] == 1)


def _solve_jointly(printed: list[_Printed], resources: dict[str, Resource],
                   tmap: dict[str, Thread], by_lwp: dict[int, str], result: ParseResult) -> None:
    """Mutexes printed without names ("$1", "$2", ...), paired with the awaited mutexes of
    unknown owner all at once: a mutex's owner cannot be waiting for that same mutex.

    When exactly one pairing fits, it is taken. When several fit but in every one of them
    each owner is itself a waiter on one of these mutexes, the owners block each other
    whichever pairing is true (a closed set always holds a cycle); one pairing is taken and
    the finding says that which mutex is which is not certain.
    """
    cands = [r for r in resources.values() if r.kind == "mutex" and not r.owners
             and any(t.waits is not None and t.waits.resource == r.id for t in tmap.values())]
    owners = [by_lwp.get(p.owner or 0, "") for p in printed]
    if len(printed) != len(cands) or not 1 < len(cands) <= 6 or "" in owners:
        return
    own_wait = [tmap[o].waits.resource if tmap[o].waits is not None else None  # type: ignore[union-attr]
                for o in owners]
    fits = [perm for perm in itertools.permutations(range(len(cands)))
            if all(own_wait[i] != cands[j].id for i, j in enumerate(perm))]
    if not fits:
        return
    closed = all(w in {c.id for c in cands} for w in own_wait)
    if len(fits) > 1 and not closed:
        return
    perm = fits[0]
    labels = ", ".join(f"{p.label} (owner LWP {p.owner})" for p in printed)
    for i, j in enumerate(perm):
        res, owner = cands[j], owners[i]
        res.owners.append(owner)
        if res.id not in tmap[owner].holds:
            tmap[owner].holds.append(res.id)
        if len(fits) == 1:
            why = (f"gdb printed {labels} without names; {res.label} is the only pairing in "
                   "which no owner waits for the mutex it holds")
        else:
            why = (f"gdb printed {labels} without names; {len(fits)} pairings with the awaited "
                   "mutexes fit, and in each the owners wait for one another's mutexes, so "
                   f"they block each other either way; which one holds {res.label} is a "
                   "guess (print the mutexes by name to know)")
        result.inferred[res.id] = why


_PID_ARG = re.compile(r"\b(?:pid|idtype=P_PID, id)=(-?\d{1,10})\b")


# glibc's futex-based waits pass their deadline down as ``abstime``: a null pointer waits
# without end, any other value is a deadline (sem_timedwait, pthread_mutex_timedlock,
# pthread_timedjoin_np), whatever name the inlined call shows under.
_ABSTIME_ARG = re.compile(r"\babstime=(?:\w+@entry=)?0x0*([1-9a-fA-F][0-9a-fA-F]*)\b")
# libstdc++'s future waits say it in a flag (std::future::wait_until with a system clock)
_HAS_TIMEOUT_ARG = re.compile(r"\b__has_timeout=true\b")


def _has_deadline(raw: _Thread, start: int) -> bool:
    """Whether the frames of a wait, up to its primitive's caller, pass a deadline."""
    return any(_ABSTIME_ARG.search(args) or _HAS_TIMEOUT_ARG.search(args)
               for args in raw.args[:start + 2] if args)


_WRITES = frozenset({"write", "__write", "__libc_write", "__GI___libc_write", "writev",
                     "__writev", "__GI___writev", "send", "__libc_send", "__send", "sendmsg",
                     "__libc_sendmsg"})
_FD_ARG = re.compile(r"\bfd=(?:fd@entry=)?(\d+)")


_CMD_ARG = re.compile(r"\bcmd=(?:cmd@entry=)?(\d{1,4})\b")
_FCNTL_WAITS = frozenset({7, 38})  # F_SETLKW, F_OFD_SETLKW: the commands that wait


def _fcntl_does_not_wait(raw: _Thread, start: int) -> bool:
    """An fcntl frame whose printed command is not one that waits for a lock."""
    if "fcntl" not in raw.frames[start].function:
        return False
    m = _CMD_ARG.search(raw.args[start] or "") if start < len(raw.args) else None
    return m is not None and int(m.group(1)) not in _FCNTL_WAITS


# glibc's names for the lock calls -> the call: __GI___libc_fcntl64 -> fcntl, __GI_flock -> flock
_LOCK_CALL = re.compile(r"^(?:__GI_|_)*(?:libc_)?|64$")


def _fd_of(raw: _Thread, start: int) -> int | None:
    """The fd a call's frames pass (``fd=5``), if printed."""
    for args in raw.args[start:start + 2]:
        m = _FD_ARG.search(args or "")
        if m:
            return int(m.group(1))
    return None


def _write_fd(raw: _Thread, start: int) -> int | None:
    """The fd a thread blocked in write()/send() writes to, from the call's arguments."""
    if base_name(raw.frames[start].function) not in _WRITES:
        return None
    for i in range(start, min(start + 2, len(raw.args))):
        m = _FD_ARG.search(raw.args[i] or "")
        if m:
            return int(m.group(1))
    return None


def _child_pid(raw: _Thread, start: int) -> int | None:
    """The pid a waitpid/wait4 frame waits for (``pid=20702``); None for any child (-1, 0)."""
    for i in range(start, min(start + 3, len(raw.args))):
        args = raw.args[i]
        m = _PID_ARG.search(args) if args else None
        if m:
            pid = int(m.group(1))
            return pid if pid > 0 else None
    return None


def _joined_thread(raw: _Thread, start: int, session: _Session) -> _Thread | None:
    """The thread a pthread_join waits for: its pthread_t is the thread's address."""
    for i in range(start, min(start + 3, len(raw.args))):
        args = raw.args[i]
        m = _THREADID.search(args) if args else None
        if m:
            value = int(m.group(1), 0)
            for t in session.threads:
                if t.addr is not None and int(t.addr, 16) == value:
                    return t
    return None


def _only_candidate(p: _Printed, resources: dict[str, Resource], waits_kind: dict[str, str],
                    tmap: dict[str, Thread], by_lwp: dict[int, str],
                    result: ParseResult, self_possible: bool = True) -> Resource | None:
    """A mutex printed without its name ("$1 = {...}"): if exactly one awaited mutex with no
    known owner can be it (its owner does not itself wait for that one), take that one.
    ``self_possible``: the print is not tied to a waiting thread's frame, so it may be the one
    awaited mutex even when its owner waits for it (a self-deadlock)."""
    assert p.owner is not None
    owner = by_lwp.get(p.owner)
    own_wait = tmap[owner].waits if owner in tmap else None
    awaited = [r for r in resources.values()
               if r.kind == "mutex" and not r.owners
               and any(t.waits is not None and t.waits.resource == r.id for t in tmap.values())]
    if len(awaited) == 1 and self_possible:
        # One mutex is awaited: the print is taken to be it, even when its owner waits for it
        # too (a default pthread mutex locked twice by one thread: a self-deadlock).
        res = awaited[0]
        result.inferred[res.id] = (
            f"the dump prints a mutex as {p.label} without its name (owner LWP {p.owner}); it "
            f"is taken to be {res.label}, the only awaited mutex whose owner is unknown "
            f"(print it by name, `print {res.label if res.label.isidentifier() else '*mutex'}`"
            ", to know)")
        return res
    cands = [r for r in awaited if own_wait is None or own_wait.resource != r.id]
    if len(cands) != 1:
        return None
    res = cands[0]
    result.inferred[res.id] = (f"the dump prints a mutex as {p.label} without its name; owned by "
                               f"LWP {p.owner}, it can only be {res.label}, the one awaited "
                               "mutex whose owner is unknown that LWP does not wait for itself")
    return res


# How gdb ends a frame line: the call's closing parenthesis, its source location, its library,
# or a pseudo-frame's closing bracket ("<signal handler called>").
_WHOLE_FRAME_END = re.compile(r"(?:\)|\) at \S+:\d+|\) from \S+|>)\s*$")


def _ends_in_a_cut_frame(text: str) -> bool:
    """Whether the text's last line is a frame line gdb did not end: a paste cut off in it."""
    tail = text[-4096:].rstrip()
    last = tail[tail.rfind("\n") + 1:].strip()
    return (last.startswith("#") and last[1:2].isdigit()
            and _WHOLE_FRAME_END.search(last) is None)


def parse(text: str) -> ParseResult:
    p = _Parser()
    for raw in iter_lines(text):
        p.line(raw)
    if p.pending_frame is not None:
        # The text ends inside a frame's arguments (a paste cut off mid-line): the function
        # and the arguments printed whole before the cut are read as any frame's; the one
        # the cut went through is dropped (a cut address would name another object).
        number, rest = p.pending_frame
        p.pending_frame = None
        p.session.cut_in = p.selected
        # (gdb puts a space before the argument list; a C++ name has its own parentheses)
        opening = rest.find(" (") + 1 or rest.find("(")
        whole = rest.rfind(", ", opening)
        p.frame(number, (rest[:whole] if whole > opening else rest[:opening + 1]) + ")")
    elif p.selected is not None and _ends_in_a_cut_frame(text):
        p.session.cut_in = p.selected  # the paste ends part way through a frame line
    if p.obj_text:
        p.finish_object()
    result = ParseResult(notes=p.notes)
    used: set[str] = set()
    index = 0
    for session in p.sessions:
        if session.threads:
            index += 1
            _build(session, index, used, result)
    if p.orphan and not result.processes:
        p._keep_orphan()
        stacks = p.done_orphans
        # `bt` prints the selected thread only, whatever else the process runs: what the
        # text does not show may be doing anything, so the process is not shown whole.
        if len(stacks) == 1:
            threads = [Thread(id="Thread ?", frames=stacks[0][0])]
            result.notes.append("a backtrace without a thread header: shown as one thread")
        else:
            threads = [Thread(id=f"Thread ?{i}", frames=f) for i, (f, _) in enumerate(stacks, 1)]
            result.notes.append(f"{len(stacks)} backtraces without thread headers: shown as "
                                f"{len(stacks)} threads")
        result.processes.append(Process(threads=threads, complete=False))
        result.notes.append("`bt` shows one thread, not the process: for every thread, "
                            "gdb -p PID -batch -ex 'thread apply all bt'")
    return result


def _same_stack(a: tuple[list[Frame], list[str | None]],
                b: tuple[list[Frame], list[str | None]]) -> bool:
    return a[1] == b[1] and [f.function for f in a[0]] == [f.function for f in b[0]]
