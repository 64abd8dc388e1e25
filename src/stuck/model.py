"""The one shared vocabulary: every source produces a Snapshot, every report reads one.

A live process, a parsed dump and a controlled run all end up here, so a rule written once
("a waiter on a condition whose possible signalers are all idle") applies to each of them.
The classes are plain dataclasses with no behaviour beyond small lookups; conversion to and
from the JSON report lives in ``stuck.report.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ThreadState = Literal["running", "blocked", "idle", "sleeping", "io", "dead", "unknown"]
THREAD_STATES: tuple[ThreadState, ...] = (
    "running", "blocked", "idle", "sleeping", "io", "dead", "unknown",
)

ResourceKind = Literal[
    "mutex", "rlock", "rwlock", "condition", "semaphore", "event", "barrier", "queue",
    "channel", "future", "task", "thread", "waitgroup", "monitor", "pipe", "socket", "process",
    "unknown",
]
RESOURCE_KINDS: tuple[ResourceKind, ...] = (
    "mutex", "rlock", "rwlock", "condition", "semaphore", "event", "barrier", "queue",
    "channel", "future", "task", "thread", "waitgroup", "monitor", "pipe", "socket", "process",
    "unknown",
)
# Kinds a thread holds and only its holder releases (a dump that prints owners shows who); the
# others are ended by another thread's action (a signal, a put, a send, an exit).
OWNED_KINDS: frozenset[str] = frozenset({"mutex", "rlock", "rwlock", "monitor"})

FindingKind = Literal["deadlock", "stall", "lock-order", "hang"]
FINDING_KINDS: tuple[FindingKind, ...] = ("deadlock", "stall", "lock-order", "hang")

Confidence = Literal["certain", "probable", "possible"]
CONFIDENCES: tuple[Confidence, ...] = ("certain", "probable", "possible")

SourceKind = Literal["dump", "live", "explore", "proc"]


_HEX = frozenset("0123456789abcdefABCDEF")


def _ended_words(how: str | None) -> str:
    """`` ended`` / `` ended (ValueError at feed.py:12)`` from ``Thread.ended``."""
    if how is None:
        return ""
    if how == "returned":
        return " ended"
    return f" ended ({how.removeprefix('died of ')})"


@dataclass(slots=True)
class Frame:
    """One stack frame, innermost first in ``Thread.frames``."""

    function: str
    file: str | None = None
    line: int | None = None
    module: str | None = None  # module, library or shared object the frame belongs to

    def where(self) -> str:
        """``file:line`` (or just the function) for one-line reports."""
        if self.file and self.line is not None:
            return f"{self.file}:{self.line}"
        return self.file or self.module or "?"


@dataclass(slots=True)
class Signal:
    """One past signal on a condition or event, as a live source recorded it."""

    op: str  # "notify", "notify_all", "set", "clear"
    thread: str  # Thread.id of the signaller
    at: float  # wall-clock time (epoch seconds)
    waiters: int  # threads waiting at that moment
    where: str | None = None  # the program's own code that signalled, where the source saw it


@dataclass(slots=True)
class Recorded:
    """What a live source recorded about a primitive beyond its owners and wakers: the facts
    the rules need to prove that nothing can end a wait on it (``stuck.rules.evaluate``).
    A dump has none of these; a saved live report keeps them, so ``stuck analyze`` reaches the
    verdict the live run reached."""

    epoch: int | None = None  # moves whenever it is signalled, released, put to or taken from
    # Threads that ever did what ends a wait on it (notified, set, released, arrived, put to a
    # queue, completed a future); None: not recorded. (Resource.wakers: who could end the
    # waits on it now.)
    wakers: list[str] | None = None
    getters: list[str] | None = None  # queue: threads that ever took from it
    size: int | None = None  # queue: items in it
    maxsize: int | None = None  # queue: 0 = unbounded
    jobs: list[str] = field(default_factory=list)  # queue: callables among its first items
    parties: int | None = None  # barrier
    waiting: int | None = None  # barrier: parties waiting now
    rounds: int = 0  # barrier: rounds completed
    broken: bool = False  # barrier
    is_set: bool = False  # event
    free: int | None = None  # semaphore: permits free now
    in_flight: int = 0  # condition: notified waiters that have not left their wait yet
    # condition: whether any thread was ever seen waiting on it (a consumer of what is
    # signalled there exists); None: not recorded.
    served: bool | None = None
    joins: str | None = None  # thread: the Thread.id of the thread joined
    task: str | None = None  # future: the callable submitted
    running: bool = False  # future: a worker has started it
    pool: str | None = None  # future: its executor's id
    pool_label: str | None = None
    pool_workers: list[str] | None = None  # the executor's live workers
    pool_capacity: int | None = None  # its max_workers
    pool_shutdown: bool = False
    pool_pending: list[str] = field(default_factory=list)  # tasks queued there, not started
    # False: no thread able to run could reach it (stacks and module globals searched), so
    # no thread that has not used it yet can start to.
    reachable: bool | None = None
    signals: list[Signal] = field(default_factory=list)  # last few signals, oldest first
    # asyncio Event or Condition: who set or notified it last (a task's name, or "a callback"
    # for code outside any task); None: nothing ever did.
    set_by: str | None = None


@dataclass(slots=True)
class Wait:
    """What a thread is waiting for: at most one per thread."""

    resource: str  # a Resource.id
    since: float | None = None  # wall-clock time (epoch seconds) the wait began, when known
    duration: float | None = None  # seconds waited so far, when known
    timeout: float | None = None  # None: waits forever
    durable: bool = True  # only in-process code can end it (not I/O, not a timer)
    at: Frame | None = None  # the frame (in the program's own code) where the wait happens
    # For a wait on a pipe or socket: "read" or "write" (or "wait-child" for a process waiting
    # for its child to exit, "lock" for a file lock: flock, fcntl F_SETLKW, lockf), the way the
    # thread is blocked. None for every other wait.
    direction: str | None = None
    # What the waiter does, where the source knows: acquire, wait, get, put, join, result.
    op: str | None = None


# ``Thread.detail`` of a goroutine that waits for an operating-system signal (os/signal's
# loop after ``signal.Notify``): a signal from outside may still run the program's handler.
SIGNAL_WAIT = "signal wait"


@dataclass(slots=True)
class Thread:
    """A thread of execution: an OS thread, a goroutine, a Java thread, an asyncio task."""

    id: str  # as the source prints it: "LWP 511", "goroutine 7", "Thread-3"
    tid: int | None = None
    name: str | None = None
    state: ThreadState = "unknown"
    frames: list[Frame] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)  # Resource.id values
    waits: Wait | None = None
    group: str | None = None  # a Group.id, filled by stack grouping
    daemon: bool | None = None
    detail: str | None = None  # the source's own words for the state: "semacquire", "BLOCKED"
    # A caption the source puts right before the thread ("BackgroundCompaction stack" in an
    # issue paste): a hint to its role when its own frames are cut off.
    paste_label: str | None = None
    # A thread that has ended (state "dead"): how, where the source knows ("returned",
    # "died of ValueError at feed.py:12").
    ended: str | None = None

    def label(self) -> str:
        """A name for people: the thread's name, with its id when the id says something (an
        LWP, a goroutine number); a raw thread ident (``0x7ff837ea36c0``) only when there
        is no name, since it tells a reader nothing a name does not."""
        if self.name and self.name != self.id:
            ident = self.id.split("-ended-", 1)[0]  # an ended thread whose ident is reused
            if ident.startswith("0x") and all(c in _HEX for c in ident[2:]):
                text = self.name
            else:
                text = f"{self.name} ({self.id})"
        else:
            text = self.id
        if self.state == "dead":
            text += _ended_words(self.ended)  # "producer ended (ValueError at feed.py:12)"
        return text


@dataclass(slots=True)
class SignalHandler:
    """A signal handler the program installed, written in Python, as a live source read it
    (``signal.getsignal``). CPython runs such a handler in the main thread between bytecodes,
    and interrupts a lock wait of the main thread to run it: it can set an event, release a
    semaphore or a Lock, put to a queue, notify a condition, whatever thread waits there. A
    wait it could end is not proven stuck while the signal may still come
    (``stuck.rules.confidence.signal_handler_doubt``)."""

    signal: str  # "SIGTERM", or the number for a signal without a name
    handler: str  # its qualified name: "<lambda>", "Server.shutdown"
    where: str | None = None  # file:line of its code, where it has one
    module: str | None = None  # the module it was defined in
    # Resources its code names directly (a global, a closure cell, a default, the bound
    # object, or an attribute of one of those, named in its code): a wait on one of them is a
    # wait for the signal. Empty: none seen (it may still reach one through calls).
    names: list[str] = field(default_factory=list)

    def named(self) -> str:
        """``SIGTERM: <lambda> at app.py:3`` for a sentence."""
        return f"{self.signal}: {self.handler}" + (f" at {self.where}" if self.where else "")


@dataclass(slots=True)
class Process:
    pid: int | None = None
    name: str | None = None
    threads: list[Thread] = field(default_factory=list)
    # True when the source shows every thread of the process (py-spy, pystack, faulthandler),
    # so "no thread can run" is a fact about the process, not about an excerpt.
    complete: bool | None = None
    file: str | None = None  # the file (dump, saved capture) it was read from, when several
    # Seconds the source says nothing in the process made progress (faulthandler's
    # dump_traceback_later "Timeout (0:05:00)!"): a lower bound for every wait without its own.
    no_progress_for: float | None = None
    # The Python version and interpreter a dump names (py-spy's "Python v3.11.7 (/usr/bin/
    # python3.11)"): which standard library's lines its frames point at (stuck.dumps.pystdlib).
    python_version: str | None = None
    executable: str | None = None
    # The program's Python signal handlers, as a live source read them when it took the
    # snapshot; None: not recorded (a dump, another runtime), []: none installed.
    signal_handlers: list[SignalHandler] | None = None


@dataclass(slots=True)
class Resource:
    """Anything a thread can wait for: a lock, a condition, a queue, a future, a thread."""

    id: str
    kind: ResourceKind = "unknown"
    label: str = ""
    address: str | None = None
    owners: list[str] = field(default_factory=list)  # Thread.id values
    created_at: Frame | None = None  # where the primitive was made (a live lock's class)
    acquired_at: dict[str, Frame] = field(default_factory=dict)  # owner Thread.id -> frame
    # Threads that could end a wait on this resource (ever notified, set, put, released, ...).
    # None: the source cannot tell (most dumps); [] : nobody ever did.
    wakers: list[str] | None = None
    # Threads whose frames pass this resource's address as an argument (a goroutine handed the
    # channel, a function given the mutex): they may use it, to send, receive, signal or
    # unlock. A hint from the dump's arguments, never proof; not ``wakers``. None: not read.
    referenced_by: list[str] | None = None
    # Pipes and sockets (stuck capture): the kernel's inode, the bytes waiting to be read and
    # the buffer's size, where the kernel shows them.
    inode: int | None = None
    queued: int | None = None
    capacity: int | None = None
    recorded: Recorded | None = None  # a live source's facts (see Recorded)

    def named(self) -> str:
        """Its kind and name for a sentence: ``mutex raft_mu``; a label that is already a
        phrase (``an RCU grace period``) or already starts with its kind, or a resource of
        unknown kind, as it is."""
        name = self.label or self.id
        if self.kind == "unknown" or name.startswith(("a ", "an ", "the ", self.kind)):
            return name
        return f"{self.kind} {name}"


@dataclass(slots=True)
class Edge:
    """One step of a cycle: ``thread`` waits for ``waits_for``, which ``held_by`` holds."""

    thread: str
    waits_for: str
    held_by: str


@dataclass(slots=True)
class Finding:
    kind: FindingKind
    confidence: Confidence
    summary: str
    explanation: str = ""
    threads: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    cycle: list[Edge] = field(default_factory=list)
    blocked_behind: list[str] = field(default_factory=list)
    missing_evidence: list[str] = field(default_factory=list)
    # Free-form structured detail a report may show (lock-order witnesses, stall reasons).
    # Values must be JSON-compatible.
    details: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Group:
    """Threads with identical stacks and state, shown once with a count."""

    id: str
    threads: list[str]
    frames: list[Frame]
    state: ThreadState = "unknown"


@dataclass(slots=True)
class Source:
    kind: SourceKind
    format: str | None = None
    files: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Fact:
    """Something the source states outside the thread stacks: a library's log line, a field of
    a printed struct. Named by ``stuck.knowledge`` (``rocksdb.writes_stopped``) so a rule can
    use it; ``text`` is the source's own words, for the report."""

    name: str
    value: int
    text: str


@dataclass(slots=True)
class EventLoop:
    """An asyncio event loop as a live source saw it: its tasks (threads of the snapshot, ids
    ``task:<name>``) and whether anything on it or outside it can still run code that ends
    their waits. The event-loop rule (``stuck.rules.loop``) judges its tasks from these facts
    alone, so a saved live report gets the same verdict from ``stuck analyze``."""

    # For a stalled loop also the id of a Resource (kind "task", owned by its pending tasks):
    # the loop itself, which its thread waits on, running no code until one of them resumes.
    id: str
    thread: str | None = None  # Thread.id of the thread running it
    tasks: list[str] = field(default_factory=list)  # Thread.id of its pending tasks shown
    ready: int | None = None  # callbacks ready to run
    timers: int | None = None  # timer callbacks scheduled and not cancelled
    io: int | None = None  # file descriptors it watches besides its own wake-up pipe
    # Its thread waits in the selector with no task running (None: not known)
    idle: bool | None = None
    # Every task was seen suspended (on a primitive, a task, or a future nothing left will
    # complete) with nothing to run, in the same waits across two observations the settle
    # time apart: the state the rule judges was true, not read from moments that never
    # coexisted.
    stalled: bool = False
    # Threads other than its own that could still run code, hence call
    # ``loop.call_soon_threadsafe``; None: not read.
    runnable_threads: list[str] | None = None
    # Signals with a handler of the program's, written in Python: it runs on the main thread
    # and could complete a future a task awaits.
    signal_handlers: list[str] = field(default_factory=list)
    # False: the source could not read the loop's tasks (``stuck capture`` of a plain program
    # sees only its thread in the selector and what the selector watches); ``tasks`` is then
    # empty however many there are, and ``stalled`` means the thread was seen in the same
    # wait across two readings.
    tasks_read: bool = True

    def quiet(self) -> bool:
        """Nothing inside the loop can run again by itself: no callback ready, no timer, no
        I/O watched, and its thread idle in the selector."""
        return self.ready == 0 and self.timers == 0 and self.io == 0 and self.idle is True


@dataclass(slots=True)
class Snapshot:
    """What was seen at one moment."""

    source: Source
    processes: list[Process] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    taken_at: float | None = None
    notes: list[str] = field(default_factory=list)  # warnings from the source (gaps, truncation)
    facts: list[Fact] = field(default_factory=list)  # in the order the source states them
    loops: list[EventLoop] = field(default_factory=list)  # asyncio event loops (live sources)

    def threads(self) -> list[Thread]:
        return [t for p in self.processes for t in p.threads]

    def thread(self, thread_id: str) -> Thread | None:
        for t in self.threads():
            if t.id == thread_id:
                return t
        return None

    def resource(self, resource_id: str) -> Resource | None:
        for r in self.resources:
            if r.id == resource_id:
                return r
        return None

    def resource_map(self) -> dict[str, Resource]:
        return {r.id: r for r in self.resources}

    def thread_map(self) -> dict[str, Thread]:
        return {t.id: t for t in self.threads()}


@dataclass(slots=True)
class Report:
    """A snapshot together with what was concluded from it: what every report format renders."""

    snapshot: Snapshot
    findings: list[Finding] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
