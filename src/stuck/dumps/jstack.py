"""Java thread dumps: ``jstack``, ``jstack -l``, ``jcmd Thread.print``, ``jstack -F`` / ``jhsdb jstack``.

What a HotSpot dump says about locks, and how it maps onto the model:

- ``- locked <A> (a C)``: the thread holds the monitor of object A (a ``monitor`` resource).
- ``- waiting to lock <A>`` / ``- waiting to re-lock in wait() <A>``: blocked entering A's
  monitor: a durable wait on A.
- ``- waiting on <A>`` (inside ``Object.wait``): the thread waits for a ``notify`` on A. It has
  *released* A while it waits, although older JVMs print ``- locked <A>`` for the same object a
  few frames further out; that line is not a hold. The wait is on A's wait set, a separate
  ``condition`` resource (id ``A/wait``) so that a thread holding A is not mistaken for the one
  the waiter needs.
- ``- parking to wait for <A> (a C)``: ``LockSupport.park`` on A; the kind comes from the class
  (``ReentrantLock`` -> mutex, ``ReentrantReadWriteLock`` -> rwlock, ``ConditionObject`` ->
  condition, ``CountDownLatch`` -> waitgroup, ...).
- ``Locked ownable synchronizers: - <A> (a ...ReentrantLock$NonfairSync)``: the thread owns the
  ``java.util.concurrent`` lock A; that is where a ReentrantLock's owner appears (``-l`` only).

The "Found one Java-level deadlock" section is kept as a *stated* finding for analysis to check
(the JVM lists threads blocked behind a cycle as if they were in it). Its "waiting to lock X ...
which is held by T" lines are also facts about ownership, so they fill in the waits and holds of
threads whose stacks are missing (pastes often cut the stack section short).

Thread ids are the thread names as printed (the deadlock section refers to threads by name);
a name printed twice in one dump gets its ``#N`` number appended. A file with several dumps
gives one Process per dump; ids in the second and later dumps are prefixed ``dump2:``, ...

Every line is matched with anchored patterns free of nested quantifiers, so parsing is linear
in the size of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from stuck.dumps import ParseResult
from stuck.dumps._text import has_any_line
from stuck.model import (
    Finding,
    Frame,
    Process,
    Resource,
    ResourceKind,
    Thread,
    ThreadState,
    Wait,
)

NAME = "jstack"
# Each thread is a block after a blank line, its name in quotes (stuck.dumps.detect_formats).
BLOCK_START = '"'

# A bounded wait whose length the dump does not show (TIMED_WAITING): the wait can end on its
# own, so it is not durable; the number itself means only "some finite timeout".
TIMEOUT_UNKNOWN = -1.0

_MAX_LINE = 10_000  # longer lines are not dump lines; never run a pattern over them

_DETECT_LINE = re.compile(
    r'\s*(?:Full thread dump |java\.lang\.Thread\.State: |Found one Java-level deadlock'
    r'|Thread \d+: \(state = |"[^"\n]{0,400}" .{0,200}\bnid=)')
_DETECT = tuple((needle, _DETECT_LINE) for needle in (
    "java.lang.Thread.State: ", "Full thread dump ", "Found one Java-level deadlock",
    ": (state = ", "nid="))

_FRAME = re.compile(r"at ([^\s(]+)\(([^)]*)\)")
_SA_FRAME = re.compile(r"- ([^\s(]+)\(([^)]*)\) @bci=\d+(?:, line=(-?\d+))?")
_LOCK_LINE = re.compile(
    r"- (locked|waiting to lock|waiting on|parking to wait for|waiting to re-lock in wait\(\)"
    r"|eliminated)\s+<(0x[0-9a-fA-F]+|[^>]{0,80})>(?: \(a ([^)]{1,300})\))?"
)
# JDK 11+ names the class whose initialisation a thread waits for (the thread runs no code:
# jstack prints it RUNNABLE); the class's <clinit> frame on another stack names who runs it.
_CLASS_INIT = re.compile(r"- waiting on the Class initialization monitor for ([\w$.]{1,300})")
_OWNABLE = re.compile(r"- <(0x[0-9a-fA-F]+)>,? \(a ([^)]{1,300})\)")
_STATE = re.compile(r"java\.lang\.Thread\.State: ([A-Z_]+)(?: \(([^)]{0,60})\))?")
_SA_THREAD = re.compile(r"Thread (\d+): \(state = ([A-Z_]+)\)")
_NUMBER = re.compile(r"#(\d+)")
_NID = re.compile(r"\bnid=(0x[0-9a-fA-F]+|\d+)")
_ATTACH = re.compile(r"Attaching to process ID (\d+)")
_JCMD_PID = re.compile(r"(\d+):$")
_DL_MONITOR = re.compile(
    r"waiting to lock (?:monitor|Monitor@)\s*(0x[0-9a-fA-F]+) "
    r"\((?:object |Object@)(0x[0-9a-fA-F]+), a ([^)]{1,300})\)"
)
_DL_OWNABLE = re.compile(
    r"waiting for ownable synchronizer (0x[0-9a-fA-F]+),? \(a ([^)]{1,300})\)"
)
_DL_HELD = re.compile(r'which is held by "(.{0,400})"$')
_DL_COUNT = re.compile(r"Found (\d+|one|a total of \d+) (?:Java-level )?deadlocks?")

# Frames (innermost) where a waiting thread is a pool worker or a JVM service thread with
# nothing to do, rather than a thread blocked on the program's own work.
_IDLE_MARKERS = (
    "java.util.concurrent.ThreadPoolExecutor.getTask",
    "java.util.concurrent.ForkJoinPool.awaitWork",
    "java.util.concurrent.ForkJoinPool.runWorker",
    "java.util.concurrent.ScheduledThreadPoolExecutor$DelayedWorkQueue.take",
    "java.util.concurrent.LinkedBlockingQueue.take",
    "java.util.concurrent.ArrayBlockingQueue.take",
    # a consumer waiting for a hand-over is idle; a producer in put/offer is not (it waits
    # for a consumer that may never come)
    "java.util.concurrent.SynchronousQueue.take",
    "java.util.concurrent.SynchronousQueue.poll",
    "java.lang.ref.ReferenceQueue.remove",
    "java.lang.ref.Reference.waitForReferencePendingList",
    "java.lang.ref.Reference$ReferenceHandler.run",
    "jdk.internal.ref.CleanerImpl.run",
    "java.util.TimerThread.mainLoop",
    # JDK 21+ threads of the virtual-thread machinery: the unblocker waits for virtual
    # threads to hand back to the scheduler, a pool's delay scheduler for its next timer
    "java.lang.VirtualThread.takeVirtualThreadListToUnblock",
    "java.util.concurrent.DelayScheduler.loop",
)
_IDLE_DEPTH = 12
# Innermost native frames of a RUNNABLE thread that is in fact waiting for I/O.
_IO_MARKERS = (
    "socketRead", "socketAccept", "accept0", "accept", "read0", "readBytes", "poll", "poll0",
    "epollWait", "EPoll.wait", "KQueue.poll", "kevent0", "select0", "doSelect", "recv",
    "receive0", "connect0", "readv0", "waitForProcessExit", "waitForInterruptEvent",
)

# Classes whose waits park on an internal ConditionObject: (method prefix, kind, what).
_PARKED_IN: tuple[tuple[str, ResourceKind, str], ...] = (
    ("java.util.concurrent.CyclicBarrier.dowait", "barrier", "waiting for the other parties"),
    ("java.util.concurrent.ArrayBlockingQueue.put", "queue", "full: waiting for a taker"),
    ("java.util.concurrent.LinkedBlockingQueue.put", "queue", "full: waiting for a taker"),
    ("java.util.concurrent.LinkedBlockingDeque.put", "queue", "full: waiting for a taker"),
)

_VIRTUAL_JOIN = "java.lang.VirtualThread.joinNanos"

# Process.waitFor waits on the process object's monitor until the reaper sees the child exit.
_PROCESS_CLASSES = frozenset({"java.lang.ProcessImpl", "java.lang.UNIXProcess",
                              "java.lang.ProcessHandleImpl"})
_REAPER_WAIT = ("ProcessHandleImpl.waitForProcessExit0", "UNIXProcess.waitForProcessExit")
_REAPER_PID = re.compile(r"\(pid (\d+)\)")

_CLASS_KINDS: tuple[tuple[str, ResourceKind], ...] = (
    ("ReentrantReadWriteLock", "rwlock"),
    ("StampedLock", "rwlock"),
    ("ReentrantLock", "mutex"),
    ("ConditionObject", "condition"),
    ("CountDownLatch", "waitgroup"),
    ("Semaphore", "semaphore"),
    ("CyclicBarrier", "barrier"),
    ("Phaser", "barrier"),
    ("FutureTask", "future"),
    ("CompletableFuture", "future"),
    ("ForkJoinTask", "future"),
    ("BlockingQueue", "queue"),
    ("SynchronousQueue", "queue"),
    ("java.lang.Thread", "thread"),
)


def _kind_of_class(cls: str | None, default: ResourceKind) -> ResourceKind:
    if not cls:
        return default
    for marker, kind in _CLASS_KINDS:
        if marker in cls:
            return kind
    return default


def detect(text: str) -> bool:
    """True when the text holds a Java thread dump (or its deadlock section) anywhere."""
    return has_any_line(text, _DETECT)


@dataclass
class _ThreadAcc:
    """A thread being read: raw facts, turned into a model Thread when its block ends."""

    thread: Thread
    java_state: str | None = None
    java_state_reason: str | None = None
    header_tail: str = ""
    sa_state: str | None = None
    waiting_on: str | None = None  # Object.wait target: its later "- locked" is no hold
    wait_kind: str | None = None  # "monitor" | "wait" | "park"
    wait_id: str | None = None
    holds: list[str] = field(default_factory=list)
    wait_frame: Frame | None = None


class _Builder:
    def __init__(self, virtual_threads_shown: bool = False) -> None:
        # jstack lists platform threads only; the JDK's thread dump (stuck.dumps.jdkdump),
        # read through this builder too, lists virtual threads as well
        self.virtual_threads_shown = virtual_threads_shown
        self.result = ParseResult()
        self.resources: dict[str, Resource] = {}
        self.process: Process | None = None
        self.prefix = ""
        self.dumps = 0
        self.by_name: dict[str, _ThreadAcc] = {}
        self.current: _ThreadAcc | None = None
        self.pending_pid: int | None = None

    # -- processes -----------------------------------------------------------------------------

    def new_process(self, pid: int | None) -> None:
        self.finish_thread()
        self.dumps += 1
        self.prefix = "" if self.dumps == 1 else f"dump{self.dumps}:"
        self.process = Process(pid=pid, name="java")
        self.result.processes.append(self.process)
        self.by_name = {}
        if self.dumps == 2:
            self.result.notes.append(
                "the text holds several Java thread dumps; each is one process, and ids in the "
                "second and later dumps are prefixed dump2:, dump3:, ..."
            )

    def ensure_process(self) -> Process:
        if self.process is None:
            self.new_process(self.pending_pid)
        assert self.process is not None
        return self.process

    # -- resources -----------------------------------------------------------------------------

    def resource(self, address: str, kind: ResourceKind, label: str | None,
                 suffix: str = "") -> str:
        address = address.lower()
        if label:
            label = label.replace("/", ".")  # the Serviceability Agent prints java/lang/Object
        rid = f"{self.prefix}{address}{suffix}"
        res = self.resources.get(rid)
        if res is None:
            res = Resource(id=rid, kind=kind, label=label or "", address=address)
            self.resources[rid] = res
            self.result.resources.append(res)
        else:
            if label and not res.label:
                res.label = label
            if res.kind in ("unknown", "monitor") and kind not in ("unknown", "monitor"):
                res.kind = kind
        return rid

    def add_owner(self, rid: str, thread_id: str) -> None:
        res = self.resources[rid]
        if thread_id not in res.owners:
            res.owners.append(thread_id)

    # -- threads -------------------------------------------------------------------------------

    def thread_for_name(self, name: str, number: str | None) -> _ThreadAcc:
        """The thread called ``name`` in this dump, created if new."""
        proc = self.ensure_process()
        acc = self.by_name.get(name)
        if acc is not None and (number is None or acc.thread.detail is None):
            return acc
        tid = f"{self.prefix}{name}"
        if acc is not None or any(t.id == tid for t in proc.threads):
            tid = f"{tid} #{number}" if number else f"{tid} #{len(proc.threads) + 1}"
        acc = _ThreadAcc(Thread(id=tid, name=name))
        proc.threads.append(acc.thread)
        self.by_name.setdefault(name, acc)
        return acc

    def start_header(self, line: str) -> None:
        """A thread header: ``"name" #12 daemon prio=5 ... nid=0x1a waiting for monitor entry``."""
        self.finish_thread()
        close = line.rfind('"')
        name = line[1:close]
        tail = line[close + 1:]
        number = _NUMBER.search(tail)
        acc = self.thread_for_name(name, number.group(1) if number else None)
        if acc.thread.frames or acc.java_state is not None:
            # Printed again (a second stack section of the same dump): keep the first reading.
            acc = _ThreadAcc(Thread(id=acc.thread.id + "'", name=name))
            self.current = None
            return
        nid = _NID.search(tail)
        if nid:
            raw = nid.group(1)
            acc.thread.tid = int(raw, 16) if raw.startswith("0x") else int(raw)
        acc.thread.daemon = " daemon " in tail
        # The words after nid=...: "waiting for monitor entry", "in Object.wait()", "runnable".
        words = tail[nid.end():] if nid else tail
        acc.header_tail = words.split("[", 1)[0].strip()
        acc.thread.detail = acc.header_tail or None
        self.current = acc

    def start_sa_thread(self, tid: str, sa_state: str) -> None:
        self.finish_thread()
        acc = self.thread_for_name(tid, None)
        acc.thread.tid = int(tid)
        acc.sa_state = sa_state
        acc.thread.detail = sa_state
        self.current = acc

    def add_frame(self, frame: Frame) -> None:
        if self.current is not None:
            self.current.thread.frames.append(frame)

    def lock_line(self, verb: str, target: str, cls: str | None) -> None:
        acc = self.current
        if acc is None:
            return
        frame = acc.thread.frames[-1] if acc.thread.frames else None
        if not target.startswith("0x"):
            # "<no object reference available>", "<owner is scalar replaced>": nothing to name.
            if verb == "waiting on" and acc.wait_kind is None:
                acc.wait_kind = "wait"
                acc.wait_frame = frame
            return
        if verb == "locked":
            if acc.waiting_on == target.lower():
                return  # the monitor Object.wait released: printed as locked, not held
            rid = self.resource(target, _kind_of_class(cls, "monitor"), cls)
            if rid not in acc.holds:
                acc.holds.append(rid)
        elif verb in ("waiting to lock", "waiting to re-lock in wait()"):
            if acc.wait_id is None:
                acc.wait_id = self.resource(target, "monitor", cls)
                acc.wait_kind = "monitor"
                acc.wait_frame = frame
        elif verb == "waiting on":
            acc.waiting_on = target.lower()
            if acc.wait_id is None:
                kind: ResourceKind = ("thread" if cls == "java.lang.Thread"
                                      else "process" if cls in _PROCESS_CLASSES
                                      else "condition")
                label = (f"wait set of {cls}" if kind != "process"
                         else f"a child process ({cls} {target.lower()}) to exit")
                acc.wait_id = self.resource(target, kind, label, suffix="/wait")
                acc.wait_kind = "wait"
                acc.wait_frame = frame
        elif verb == "parking to wait for" and acc.wait_id is None:
            acc.wait_id = self.resource(target, _kind_of_class(cls, "unknown"), cls)
            acc.wait_kind = "park"
            acc.wait_frame = frame

    def class_init_wait(self, cls: str) -> None:
        """``- waiting on the Class initialization monitor for CLS``: the thread waits for the
        thread running CLS's static initialiser to finish it."""
        acc = self.current
        if acc is None or acc.wait_id is not None:
            return
        self.ensure_process()
        rid = f"{self.prefix}{CLASS_INIT}{cls}"
        if rid not in self.resources:
            res = Resource(id=rid, kind="monitor", label=f"initialisation of class {cls}")
            self.resources[rid] = res
            self.result.resources.append(res)
        acc.wait_id = rid
        acc.wait_kind = "monitor"
        acc.wait_frame = acc.thread.frames[-1] if acc.thread.frames else None

    def ownable(self, address: str, cls: str) -> None:
        acc = self.current
        if acc is None:
            return
        rid = self.resource(address, _kind_of_class(cls, "mutex"), cls)
        if rid not in acc.holds:
            acc.holds.append(rid)

    def finish_thread(self) -> None:
        acc = self.current
        self.current = None
        if acc is None:
            return
        t = acc.thread
        for rid in acc.holds:
            if rid not in t.holds:
                t.holds.append(rid)
            self.add_owner(rid, t.id)
        timed = acc.java_state == "TIMED_WAITING"
        child = self._child_wait(acc)
        if acc.wait_id is not None and t.waits is None:
            res = self.resources.get(acc.wait_id)
            # Process.waitFor: only the child's exit ends it, from outside this process
            on_child = res is not None and res.kind == "process"
            t.waits = Wait(
                resource=acc.wait_id,
                timeout=TIMEOUT_UNKNOWN if timed else None,
                durable=not timed and not on_child,
                at=acc.wait_frame,
                direction="wait-child" if on_child else None,
            )
        elif child is not None and t.waits is None:
            t.waits = Wait(resource=child, durable=False, at=t.frames[0] if t.frames else None,
                           direction="wait-child")
        if acc.wait_kind == "park" and acc.wait_id is not None:
            self._name_parked_wait(acc)
            self._virtual_join(acc)
        t.state = "blocked" if child is not None else _classify(acc)
        if acc.java_state is not None:
            t.detail = acc.java_state + (f" ({acc.java_state_reason})"
                                         if acc.java_state_reason else "")

    def _name_parked_wait(self, acc: _ThreadAcc) -> None:
        """A park on a ConditionObject inside a java.util.concurrent class is a wait on that
        class's own state: a barrier's trip, a bounded queue's room or items. Say so."""
        assert acc.wait_id is not None
        res = self.resources.get(acc.wait_id)
        if res is None or res.kind != "condition":
            return
        for f in acc.thread.frames[:_IDLE_DEPTH]:
            for prefix, kind, what in _PARKED_IN:
                if f.function.startswith(prefix):
                    res.kind = kind
                    res.label = f"{f.function.rsplit('.', 1)[0]} ({what})"
                    return

    def _virtual_join(self, acc: _ThreadAcc) -> None:
        """Thread.join on a virtual thread parks on the thread's termination latch
        (VirtualThread.joinNanos): a join, on a thread jstack never shows (it lists platform
        threads only), whatever the latch's class says."""
        t = acc.thread
        if self.virtual_threads_shown or t.waits is None or not any(f.function == _VIRTUAL_JOIN
                                      for f in t.frames[:_IDLE_DEPTH]):
            return
        rid = f"{self.prefix}virtual-join:{t.waits.resource}"
        if rid not in self.resources:
            res = Resource(id=rid, kind="thread", label=(
                "a virtual thread to end (jstack shows no virtual threads; `jcmd PID "
                "Thread.dump_to_file -format=text FILE` does)"))
            self.resources[rid] = res
            self.result.resources.append(res)
        t.waits.resource = rid

    def _child_wait(self, acc: _ThreadAcc) -> str | None:
        """The JDK's process reaper, in waitpid for a child (its name may carry the pid): a
        wait on another process, not a running thread. Returns the resource it waits on."""
        t = acc.thread
        if not t.frames or not t.frames[0].function.endswith(_REAPER_WAIT):
            return None
        pid = _REAPER_PID.search(t.name or "")
        key = f"process:{pid.group(1)}" if pid else f"process:{t.id}"
        label = f"process {pid.group(1)} to exit" if pid else "a child process to exit"
        rid = f"{self.prefix}{key}"
        if rid not in self.resources:
            res = Resource(id=rid, kind="process", label=label)
            self.resources[rid] = res
            self.result.resources.append(res)
        return rid

    # -- the deadlock section ------------------------------------------------------------------

    def stated_deadlock(self, entries: list[tuple[str, str | None, str | None]]) -> None:
        """One "Found one Java-level deadlock" block: (waiter, resource id, holder) entries."""
        if not entries:
            return
        threads: list[str] = []
        resources: list[str] = []
        chain: list[dict[str, object]] = []
        for waiter, rid, holder in entries:
            wacc = self.thread_for_name(waiter, None)
            if wacc.thread.id not in threads:
                threads.append(wacc.thread.id)
            if rid is None:
                continue
            if rid not in resources:
                resources.append(rid)
            # Ownership facts the JVM states: fill in what a cut stack section does not show.
            if wacc.thread.waits is None:
                wacc.thread.waits = Wait(resource=rid)
                if wacc.thread.state == "unknown":
                    wacc.thread.state = "blocked"
            holder_id: str | None = None
            if holder is not None:
                hacc = self.thread_for_name(holder, None)
                holder_id = hacc.thread.id
                if rid not in hacc.thread.holds:
                    hacc.thread.holds.append(rid)
                self.add_owner(rid, holder_id)
            chain.append({"thread": wacc.thread.id, "waits_for": rid, "held_by": holder_id})
        self.result.stated.append(Finding(
            kind="deadlock",
            confidence="certain",
            summary=f"the JVM reports a Java-level deadlock involving {len(threads)} threads",
            explanation=("jstack's own deadlock detection; it also lists threads that are only "
                         "blocked behind the cycle, so the wait-for graph decides which threads "
                         "form the cycle"),
            threads=threads,
            resources=resources,
            details={"source": "jstack deadlock section", "chain": chain},
        ))


def _top_functions(t: Thread) -> Iterator[str]:
    for f in t.frames[:_IDLE_DEPTH]:
        yield f.function


# Pool loops that also run the tasks: below one, a thread is idle only if all it does above
# the loop is park (a ForkJoin worker computing a task, or waiting inside one, has the task's
# frames between; jstack may even print a stale "parking to wait for" the pool under them).
_TASK_LOOPS = ("java.util.concurrent.ForkJoinPool.runWorker",)
_PARK = ("jdk.internal.misc.Unsafe.park", "sun.misc.Unsafe.park",
         "java.util.concurrent.locks.LockSupport.park")


def _is_idle(t: Thread) -> bool:
    for i, fn in enumerate(_top_functions(t)):
        for m in _IDLE_MARKERS:
            if m not in fn:
                continue
            if m in _TASK_LOOPS and not all(
                    f.function.startswith(_PARK) for f in t.frames[:i]):
                continue
            return True
    return False


def _is_io(t: Thread) -> bool:
    if not t.frames:
        return False
    fn = t.frames[0].function
    method = fn.rsplit(".", 1)[-1]
    return any(m == method or (("." in m) and fn.endswith(m)) for m in _IO_MARKERS)


# The JVM's own threads: they run no program code that could end a program's wait (compilers,
# the signal dispatcher, the attach listener, GC and VM housekeeping), whatever state they show.
_JVM_SERVICE = re.compile(
    r"^(?:Signal Dispatcher|Service Thread|Monitor Deflation Thread|C[12] CompilerThread\d+"
    r"|Sweeper thread|Notification Thread|Attach Listener|VM Thread|VM Periodic Task Thread"
    r"|GC Thread#\d+|G1 .+|GC task thread.+|Reference Handler|Finalizer|Common-Cleaner"
    r"|JVMCI.+|Surrogate Locker Thread.*)$")


_JVM_OWN = frozenset({"Reference Handler", "Signal Dispatcher"})  # in every HotSpot dump


def _classify(acc: _ThreadAcc) -> ThreadState:
    state = _classify_state(acc)
    name = acc.thread.name or ""
    if state in ("running", "blocked", "unknown") and _JVM_SERVICE.match(name) and not any(
            not f.function.startswith(("java.", "jdk.", "sun.")) for f in acc.thread.frames):
        return "idle"
    return state


def _classify_state(acc: _ThreadAcc) -> ThreadState:
    t = acc.thread
    state = acc.java_state
    if state == "TERMINATED":
        return "dead"
    if state == "NEW":
        return "unknown"
    if acc.wait_kind == "monitor" or state == "BLOCKED":
        return "blocked"
    if state == "TIMED_WAITING" and acc.java_state_reason == "sleeping":
        return "sleeping"
    if state in ("WAITING", "TIMED_WAITING"):
        if state == "TIMED_WAITING" and acc.wait_kind is None:
            return "sleeping"  # parkNanos / wait(ms) with no object named: a timed pause
        if _is_idle(t):
            return "idle"
        if t.frames and t.frames[0].function == "java.lang.Thread.sleep":
            return "sleeping"
        return "blocked"
    if state == "RUNNABLE":
        if _is_io(t):
            return "io"
        if _is_idle(t):
            return "idle"
        return "running"
    if acc.sa_state is not None:
        if acc.sa_state == "BLOCKED":
            return "idle" if _is_idle(t) else "blocked"
        if acc.sa_state == "IN_NATIVE" and _is_io(t):
            return "io"
        if acc.sa_state in ("IN_JAVA", "IN_VM", "IN_NATIVE"):
            return "running"
        return "unknown"
    # No Thread.State line (VM-internal threads, very old JVMs): the header's words.
    tail = acc.header_tail
    if tail.startswith("waiting for monitor entry"):
        return "blocked"
    if tail.startswith(("in Object.wait", "waiting on condition")):
        if _is_idle(t):
            return "idle"
        return "blocked" if acc.wait_kind else "idle"
    if tail.startswith("runnable"):
        return "io" if _is_io(t) else "running"
    if tail.startswith("sleeping"):
        return "sleeping"
    return "unknown"


def _parse_frame_location(function: str, where: str) -> Frame:
    """``Foo.java:12``, ``java.base@21/Foo.java:12``, ``Native Method``, ``Unknown Source``."""
    module: str | None = None
    if "/" in where:
        module, where = where.rsplit("/", 1)
    file: str | None = where
    line: int | None = None
    if ":" in where:
        file, _, num = where.rpartition(":")
        if num.isascii() and num.isdigit():
            line = int(num)
        else:
            file = where
    if file in ("Native Method", "Unknown Source", ""):
        file = None
    return Frame(function=function, file=file, line=line, module=module)


def _lines(text: str) -> Iterator[str]:
    for raw in text.split("\n"):  # only LF ends a line: a CR or U+2028 may be in a name
        if len(raw) > _MAX_LINE:
            continue
        yield raw.strip()


def parse(text: str, *, virtual_threads_shown: bool = False) -> ParseResult:
    """Read every Java thread dump in ``text``; lines that are not part of one are skipped.
    ``virtual_threads_shown``: the text lists virtual threads too (the JDK's thread dump)."""
    b = _Builder(virtual_threads_shown)
    mode = "none"  # none | deadlock | deadlock-stacks | ownable
    ownables_listed = False  # jstack -l: each thread's owned java.util.concurrent locks
    dl_entries: list[tuple[str, str | None, str | None]] = []
    dl_waiter: str | None = None
    dl_rid: str | None = None

    def flush_deadlock() -> None:
        nonlocal dl_entries, dl_waiter, dl_rid
        if dl_waiter is not None:
            dl_entries.append((dl_waiter, dl_rid, None))
        b.stated_deadlock(dl_entries)
        dl_entries, dl_waiter, dl_rid = [], None, None

    for line in _lines(text):
        if not line:
            continue
        if mode == "deadlock":
            if line.startswith("Java stack information for the threads listed above"):
                flush_deadlock()
                mode = "deadlock-stacks"
                continue
            if line.startswith('"') and line.endswith('":'):
                if dl_waiter is not None:
                    dl_entries.append((dl_waiter, dl_rid, None))
                dl_waiter, dl_rid = line[1:-2], None
                continue
            m = _DL_MONITOR.match(line)
            if m:
                b.ensure_process()
                dl_rid = b.resource(m.group(2), "monitor", m.group(3))
                continue
            m2 = _DL_OWNABLE.match(line)
            if m2:
                b.ensure_process()
                dl_rid = b.resource(m2.group(1), _kind_of_class(m2.group(2), "mutex"),
                                    m2.group(2))
                continue
            m3 = _DL_HELD.match(line)
            if m3 and dl_waiter is not None:
                dl_entries.append((dl_waiter, dl_rid, m3.group(1)))
                dl_waiter, dl_rid = None, None
                continue
            if line.startswith(("=", "which is held by")):
                continue
            # Anything else ends the summary (jhsdb: "Found a total of 1 deadlock.").
            flush_deadlock()
            mode = "none"
        if line.startswith("Found one Java-level deadlock"):
            b.finish_thread()
            if b.process is None:
                b.ensure_process()
            mode = "deadlock"
            continue
        if line.startswith("Full thread dump"):
            b.new_process(b.pending_pid)
            b.pending_pid = None
            assert b.process is not None
            b.process.complete = True  # jstack prints every Java thread after this line
            mode = "none"
            continue
        m = _ATTACH.match(line)
        if m:
            b.new_process(int(m.group(1)))
            mode = "none"
            continue
        m = _JCMD_PID.match(line)
        if m:
            b.pending_pid = int(m.group(1))
            continue
        if line.startswith('"'):
            if mode == "deadlock-stacks" and line.endswith('":'):
                # A stack of the deadlock section: read it only for a thread not seen yet.
                b.finish_thread()
                acc = b.thread_for_name(line[1:-2], None)
                b.current = acc if not acc.thread.frames else None
                continue
            if line.rfind('"') > 0:
                b.start_header(line)
                mode = "none"
                continue
        m = _SA_THREAD.match(line)
        if m:
            b.start_sa_thread(m.group(1), m.group(2))
            mode = "none"
            continue
        if b.current is None:
            if line.startswith(("Found ", "JNI global")):
                mode = "none"
            continue
        acc = b.current
        if line.startswith("at "):
            fm = _FRAME.match(line)
            if fm:
                b.add_frame(_parse_frame_location(fm.group(1), fm.group(2)))
            continue
        if line.startswith("- "):
            cm = _CLASS_INIT.match(line)
            if cm:
                b.class_init_wait(cm.group(1))
                continue
            lm = _LOCK_LINE.match(line)
            if lm:
                b.lock_line(lm.group(1), lm.group(2), lm.group(3))
                continue
            if mode == "ownable":
                om = _OWNABLE.match(line)
                if om:
                    b.ownable(om.group(1), om.group(2))
                continue
            sm = _SA_FRAME.match(line)
            if sm:
                num = sm.group(3)
                b.add_frame(Frame(function=sm.group(1),
                                  line=int(num) if num and not num.startswith("-") else None))
            continue
        if line.startswith("java.lang.Thread.State:"):
            st = _STATE.match(line)
            if st:
                acc.java_state = st.group(1)
                acc.java_state_reason = st.group(2)
            continue
        if line.startswith("Locked ownable synchronizers"):
            mode = "ownable"
            ownables_listed = True
            continue
        if line.startswith(("Found ", "JNI global")):
            b.finish_thread()
            mode = "none"
    if mode == "deadlock":
        flush_deadlock()
    b.finish_thread()
    _drop_waited_holds(b.result)
    _link_child_waits(b.result)
    # "Full thread dump" is followed by every thread, the JVM's own first, and ends with the
    # "JNI global refs" line; without them, or with "..." where threads were left out, the
    # paste is an excerpt.
    elided = "\n...\n" in text or "\n…\n" in text
    unended = "JNI global " not in text
    for n, proc in enumerate(b.result.processes, start=1):
        if not proc.complete:
            continue
        absent = sorted(_JVM_OWN - {t.name for t in proc.threads})
        if not (elided or unended or absent):
            continue
        proc.complete = False
        # Say so even when nothing is found: "nothing found" in a cut text is no all-clear.
        last = proc.threads[-1].label() if proc.threads else None
        why = ("'...' where threads were left out" if elided else
               f"no 'JNI global refs' line, which jstack prints after the last thread: the "
               f"text ends inside {last}'s block, cut off, and the threads after it are not "
               "shown" if unended and last else
               "no 'JNI global refs' line, which jstack prints after the last thread"
               if unended else
               f"the JVM's own {', '.join(absent)} not shown")
        pid = proc.pid if proc.pid is not None else "PID"
        b.result.notes.append(f"jstack dump {n}: the text lacks threads ({why}); for the "
                              f"whole process: jstack -l {pid}")
    if ownables_listed:
        _abandoned_locks(b.result)
    _class_init_owners(b.result)
    _name_by_address(b.result)
    return b.result


_CLASS_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+")


def _name_by_address(result: ParseResult) -> None:
    """Two monitors of one class (two ``java.lang.Object`` locks) are told apart only by the
    address jstack prints with each: every object a lock line names is called as the dump
    calls it, ``<0x000000069ec19708> (a java.lang.Object)``, so a reader can find it in the
    dump. Done last: the parser's own rules read the bare class name."""
    for res in result.resources:
        if not res.address or not res.address.startswith("0x"):
            continue
        label = res.label
        prefix = "wait set of " if label.startswith("wait set of ") else ""
        cls = label[len(prefix):]
        if _CLASS_NAME.fullmatch(cls):
            res.label = f"{prefix}<{res.address}> (a {cls})"


CLASS_INIT = "class-init:"


def _class_init_owners(result: ParseResult) -> None:
    """A class is initialised by one thread, the one whose stack runs its ``<clinit>``; it
    holds the initialisation until the initialiser returns (or throws), and every other
    thread that touches the class waits for it. Owners of the waited-for initialisations."""
    waited = {r.id.split(CLASS_INIT, 1)[1]: r for r in result.resources if CLASS_INIT in r.id}
    if not waited:
        return
    for proc in result.processes:
        for t in proc.threads:
            for f in t.frames:
                cls, _, method = f.function.rpartition(".")
                res = waited.get(cls) if method == "<clinit>" else None
                if res is not None and t.id not in res.owners:
                    res.owners.append(t.id)
                    t.holds.append(res.id)


# Exclusive java.util.concurrent locks: only the owner releases one, and `jstack -l` lists it
# under its owner's "Locked ownable synchronizers". (Not a read-write lock: its read holders
# are never listed, so a waiting writer's blockers may be invisible.)
_EXCLUSIVE = ("java.util.concurrent.locks.ReentrantLock$NonfairSync",
              "java.util.concurrent.locks.ReentrantLock$FairSync")
# The owner of a lock no live thread lists: it ended while holding the lock.
EXITED_OWNER = "an ended thread"


def _abandoned_locks(result: ParseResult) -> None:
    """In a complete `jstack -l` dump, an exclusive lock that threads wait for and no live
    thread lists among its owned synchronizers was left held by a thread that ended (the
    release skipped on an error path): no thread in the dump can release it."""
    held = {rid for proc in result.processes for t in proc.threads for rid in t.holds}
    resources = {r.id: r for r in result.resources}
    for proc in result.processes:
        if not proc.complete:
            continue
        for t in proc.threads:
            res = resources.get(t.waits.resource) if t.waits is not None else None
            if res is not None and not res.owners and res.id not in held \
                    and res.label in _EXCLUSIVE:
                res.owners.append(EXITED_OWNER)


def _link_child_waits(result: ParseResult) -> None:
    """Process.waitFor names the Process object, not the pid; the JDK's reaper thread for a
    child names the pid. With one of each in a process they wait for the same child: the
    waiter's wait is put on the reaper's (pid-named) process, so both read as one wait."""
    resources = {r.id: r for r in result.resources}
    for proc in result.processes:
        on_object: list[Thread] = []
        reapers: list[Thread] = []
        for t in proc.threads:
            res = resources.get(t.waits.resource) if t.waits is not None else None
            if res is None or res.kind != "process":
                continue
            (on_object if res.address else reapers).append(t)
        if len(on_object) != 1 or len(reapers) != 1:
            continue
        waiter, reaper = on_object[0].waits, reapers[0].waits
        if waiter is not None and reaper is not None \
                and _REAPER_PID.search(reapers[0].name or "") is not None:
            waiter.resource = reaper.resource


def _drop_waited_holds(result: ParseResult) -> None:
    """A thread does not hold the lock it is waiting to enter.

    The Serviceability Agent (``jstack -F``, ``jhsdb jstack``) prints the monitor a BLOCKED
    thread is waiting for as ``- locked``; when the wait is known (its own line or the deadlock
    section), that hold is dropped so the monitor keeps its one real owner.
    """
    resources = {r.id: r for r in result.resources}
    for proc in result.processes:
        for t in proc.threads:
            if t.waits is None or t.waits.resource not in t.holds:
                continue
            res = resources.get(t.waits.resource)
            if res is None or res.kind not in ("monitor", "mutex"):
                continue
            t.holds.remove(res.id)
            if t.id in res.owners:
                res.owners.remove(t.id)
