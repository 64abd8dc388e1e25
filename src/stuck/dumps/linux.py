"""Linux kernel reports: hung_task ("INFO: task X:PID blocked for more than N seconds") with
lockdep's "Showing all locks held in the system", "blocked on a mutex likely owned by",
NMI backtraces, sysrq-t task dumps, and lockdep "possible circular locking dependency".

The held-lock list is not an owner list: lockdep records a mutex when a task starts
acquiring it. A task whose stack shows it inside ``__mutex_lock`` called from the lock's
``at:`` function is a waiter; a task that lists the lock and is elsewhere holds it; and since a
mutex has one owner, once it is found the other listed tasks are waiters too. A task listed
with a lock count but no entries is running (lockdep does not print a running task's locks):
when it is the only candidate, it is reported as the likely holder, marked as inferred.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stuck.dumps import ParseResult
from stuck.dumps._text import iter_lines
from stuck.model import Finding, Frame, Process, Resource, Thread, Wait
from stuck.stacks.native import classify

NAME = "linux"

# The kernel log's own prefix: "[  240.123456]" (seconds since boot; "[  240.]" where the
# fraction was cut), "[Wed Dec 19 03:36:07
# 2018]" (`dmesg -T`, the same clock in local time), with an optional syslog level "<4>" and
# the caller id "[T123]" / "[C1]" of CONFIG_PRINTK_CALLER.
_PREFIX = re.compile(r"^(?:<\d>)?\[(?:\s*\d+\.\d*|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                     r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
                     r"\d\d:\d\d:\d\d \d{4})\](?:\[\s*[TC]\d+\])?\s?")
_HUNG = re.compile(r"^INFO: task (.+):(\d+) blocked for more than (\d+) seconds\.")
_LIKELY_OWNER = re.compile(
    r"^INFO: task (.+):(\d+) is blocked on an? ([\w-]+) likely owned by task (.+):(\d+)\.")
# "comm  D    0 17344  17342 0x00000080" (state, stack, pid, ppid, flags); kernels before 4.x
# print the task's address after the state: "comm  D ffff88007a2dd140     0 27090   3047 0x0".
_TASK_LINE = re.compile(
    r"^(\S.{0,30}?)\s+([RDSTtXZIP])\s*(?:[0-9a-f]{8,16}\s+)?\d+\s+(\d+)\s+(\d+)\s+0x[0-9a-f]+\s*$")
_TASK_SYSRQ = re.compile(r"^task:(.+?)\s+state:([A-Za-z])\s.*?\bpid:\s*(\d+)")
_FRAME = re.compile(
    r"^\s*(?:\[<[0-9a-f]+>\]\s*)?(\?\s+)?([\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?:\s+\[(\w+)\])?\s*$")
# A 32-bit ARM kernel's unwinder prints each frame with its caller, innermost first, and no
# "Call Trace:" line: "[<c0609540>] (__mutex_lock.constprop.4) from [<c03fd510>]
# (tty_throttle_safe+0x14/0x7c)"; a module's function has its name after it: "(f [fuse])".
_ARM_FRAME = re.compile(r"^\s*\[<[0-9a-f]+>\]\s*\(([\w.$]+)(?:\s+\[(\w+)\])?\)\s+from\b")
_HELD = re.compile(r"^(\d+) locks? held by (.+)/(\d+):\s*$")
_LOCK = re.compile(r"^\s*#(\d+):\s+(?:([0-9a-f]{8,16})\s+)?\(")
_AT = re.compile(r"at: (?:\[<[0-9a-f]+>\]\s*)?([\w.$]+)\+0x")
_NMI_CPU = re.compile(r"^CPU: (\d+) PID: (\d+) Comm: (\S+)")
_CHAIN_ENTRY = re.compile(r"^-> #(\d+) \(")
_TRYING = re.compile(r"^(.+)/(\d+) is trying to acquire lock:")

# the scheduler's own frames at the top of a sleeping task's trace
_SCHEDULER = frozenset({
    "__schedule", "schedule", "schedule_timeout", "io_schedule", "io_schedule_timeout",
    "schedule_preempt_disabled", "__switch_to", "__switch_to_asm", "preempt_schedule_common",
    "schedule_hrtimeout_range_clock", "schedule_hrtimeout_range", "_cond_resched"})

# kernel waits that have a well-known name
_EVENT_LABELS = {
    "synchronize_rcu": "an RCU grace period", "synchronize_rcu_expedited": "an RCU grace period",
    "synchronize_net": "an RCU grace period", "wait_rcu_gp": "an RCU grace period",
    "__wait_rcu_gp": "an RCU grace period", "synchronize_srcu": "an SRCU grace period",
    "wait_for_completion": "a completion", "wait_for_common": "a completion",
    "flush_work": "a work item", "__flush_work": "a work item", "flush_workqueue": "a workqueue",
}


@dataclass(slots=True)
class _Lock:
    index: int
    address: str | None
    cls: str
    at: str | None


@dataclass(slots=True)
class _Task:
    comm: str
    pid: int
    frames: list[Frame] = field(default_factory=list)
    # Frames printed with "?": the unwinder found the address on the stack but could not
    # prove it a return address. A kernel built without frame-pointer unwinding marks every
    # frame so; when a trace has no other frames, these are the only account of the wait.
    guessed: list[Frame] = field(default_factory=list)
    stack_shown: bool = False
    blocked_for: float | None = None
    state_letter: str | None = None
    running: bool = False
    locks: list[_Lock] = field(default_factory=list)
    lock_count: int | None = None
    likely_owner: tuple[str, int, str] | None = None


def detect(text: str) -> bool:
    return ("INFO: task " in text and ("blocked for more than" in text or "likely owned" in text)) \
        or "possible circular locking dependency" in text \
        or ("Call Trace:" in text and ("locks held by" in text or "task:" in text
                                       or "NMI backtrace" in text))


def _class_of(line: str) -> str | None:
    start = line.find("(")
    end = line.find("){")
    if start < 0 or end <= start:
        return None
    return line[start + 1:end].strip()


class _Parser:
    def __init__(self) -> None:
        self.tasks: dict[int, _Task] = {}
        self.order: list[int] = []
        self.frames_to: _Task | None = None
        self.held_to: _Task | None = None
        self.mode = ""
        self.lockdep: dict[str, object] | None = None
        self.chain_frames: list[str] | None = None
        self.expect: str | None = None
        self.lockdeps: list[dict[str, object]] = []

    def task(self, comm: str, pid: int) -> _Task:
        t = self.tasks.get(pid)
        if t is None:
            t = _Task(comm=comm, pid=pid)
            self.tasks[pid] = t
            self.order.append(pid)
        return t

    def line(self, raw: str) -> None:
        m = _PREFIX.match(raw)
        s = raw[m.end():] if m else raw
        st = s.strip()
        if not st:
            self.frames_to = None
            return
        if self.expect is not None and self.lockdep is not None:
            key = self.expect
            self.expect = None
            if key == "chain":
                self.lockdep["chain"] = [c.strip() for c in st.split("-->")]
            else:
                cls = _class_of(st)
                if cls:
                    self.lockdep[key] = cls
            return
        if st.startswith("INFO: task "):
            m2 = _HUNG.match(st)
            if m2:
                t = self.task(m2.group(1), int(m2.group(2)))
                t.blocked_for = float(m2.group(3))
                self.frames_to = t
                self.held_to = None
                return
            m2 = _LIKELY_OWNER.match(st)
            if m2:
                t = self.task(m2.group(1), int(m2.group(2)))
                owner = self.task(m2.group(4), int(m2.group(5)))
                t.likely_owner = (owner.comm, owner.pid, m2.group(3))
                return
        if st == "Call Trace:" or st.startswith("Call Trace:"):
            if self.frames_to is not None:
                self.frames_to.frames = []
                self.frames_to.guessed = []
                self.frames_to.stack_shown = True
                self.mode = "trace"
            return
        if st.startswith("[<") and self.frames_to is not None:
            m2 = _ARM_FRAME.match(st)
            if m2:
                if self.mode != "trace":  # the first frame is where the trace begins
                    self.frames_to.frames = []
                    self.frames_to.guessed = []
                    self.frames_to.stack_shown = True
                    self.mode = "trace"
                self.frames_to.frames.append(Frame(m2.group(1), module=m2.group(2)))
                return
        if self.mode == "trace":
            m2 = _FRAME.match(s)
            if m2:
                if self.frames_to is not None:
                    frames = self.frames_to.guessed if m2.group(1) else self.frames_to.frames
                    frames.append(Frame(m2.group(2), module=m2.group(3)))
                return
            if st.startswith(("RIP:", "RSP:", "RAX:", "RDX:", "RBP:", "R10:", "R13:", "Code:",
                              "<IRQ>", "</IRQ>", "<TASK>", "</TASK>", "<NMI>", "</NMI>")):
                return
            self.mode = ""
            self.frames_to = None  # the trace is over; later traces belong to someone else
        m2 = _HELD.match(st)
        if m2:
            t = self.task(m2.group(2), int(m2.group(3)))
            t.lock_count = int(m2.group(1))
            t.locks = []
            self.held_to = t
            self.frames_to = None
            return
        if self.held_to is not None and st.startswith("#"):
            m2 = _LOCK.match(st)
            cls = _class_of(st)
            if m2 and cls:
                at = _AT.search(st)
                self.held_to.locks.append(_Lock(int(m2.group(1)), m2.group(2), cls,
                                                at.group(1) if at else None))
                return
        if st.startswith("NMI backtrace for cpu"):
            self.frames_to = None
            self.mode = "nmi"
            return
        if st.startswith("CPU: "):
            m2 = _NMI_CPU.match(st)
            if m2 and self.mode == "nmi":
                pid = int(m2.group(2))
                t = self.task(m2.group(3), pid)
                t.running = True
                self.frames_to = t
                self.mode = ""
            elif self.lockdep is None or "task" not in self.lockdep:
                self.frames_to = None
            return
        m2 = _TASK_SYSRQ.match(st)
        if m2:
            t = self.task(m2.group(1), int(m2.group(3)))
            t.state_letter = m2.group(2)
            self.frames_to = t
            return
        if self.frames_to is not None and not self.frames_to.stack_shown:
            m2 = _TASK_LINE.match(st)
            if m2 and m2.group(3) == str(self.frames_to.pid):
                self.frames_to.state_letter = m2.group(2)
                return
        # lockdep "possible circular locking dependency"
        if "possible circular locking dependency detected" in st:
            self.lockdep = {"edges": []}
            self.lockdeps.append(self.lockdep)
            self.chain_frames = None
            return
        if self.lockdep is not None:
            m2 = _TRYING.match(st)
            if m2:
                self.lockdep["task"] = (m2.group(1), int(m2.group(2)))
                self.expect = "trying"
                return
            if st.startswith("but task is already holding lock"):
                self.expect = "holding"
                return
            if st.startswith("Chain exists of"):
                self.expect = "chain"
                return
            m2 = _CHAIN_ENTRY.match(st)
            if m2:
                cls = _class_of(st) or "?"
                self.chain_frames = []
                edges = self.lockdep["edges"]
                assert isinstance(edges, list)
                edges.append({"lock": cls, "stack": self.chain_frames})
                return
            if self.chain_frames is not None:
                m3 = _FRAME.match(s)
                if m3:
                    if len(self.chain_frames) < 24:
                        self.chain_frames.append(m3.group(2))
                    return
                self.chain_frames = None
            if st.startswith("stack backtrace:") and "task" in self.lockdep:
                task = self.lockdep["task"]
                if isinstance(task, tuple):
                    self.frames_to = self.task(str(task[0]), int(task[1]))
                    self.frames_to.running = True


def parse(text: str) -> ParseResult:
    p = _Parser()
    for raw in iter_lines(text):
        p.line(raw)
    for t in p.tasks.values():
        if not t.frames and t.guessed:
            t.frames = t.guessed
    result = ParseResult()
    if not p.tasks and not p.lockdeps:
        return result
    _build(p, result)
    return result


def _tid(t: _Task) -> str:
    return f"{t.comm}/{t.pid}"


def _build(p: _Parser, result: ParseResult) -> None:
    prefix = "linux:"
    resources: dict[str, Resource] = {}
    threads: dict[int, Thread] = {}
    acquiring: dict[int, str] = {}  # pid -> resource id it is acquiring

    def lock_resource(lock: _Lock) -> Resource:
        rid = prefix + (lock.address or lock.cls)
        res = resources.get(rid)
        if res is None:
            res = Resource(id=rid, kind="mutex" if "sem" not in lock.cls else "rwlock",
                           label=lock.cls, address=lock.address)
            resources[rid] = res
        return res

    relevant: set[int] = set()
    for pid in p.order:
        t = p.tasks[pid]
        if t.blocked_for is not None or t.running or t.stack_shown or t.likely_owner:
            relevant.add(pid)
    # which lock each task with a stack is acquiring
    for pid in p.order:
        t = p.tasks[pid]
        thread = Thread(id=_tid(t), tid=t.pid, name=t.comm, frames=t.frames)
        threads[pid] = thread
        if t.running:
            thread.state = "running"
            continue
        if not t.stack_shown:
            continue
        c = classify(t.frames)
        thread.state = c.state
        if (c.state != "blocked" or c.kind is None) and (
                t.blocked_for is not None or t.state_letter == "D"):
            # The hung-task detector reports only tasks in uninterruptible sleep that were not
            # scheduled for its whole interval, and "D" is that sleep: off the CPU whatever
            # the frames say, waiting in a kernel call this parser has no name for (an I/O
            # completion, a journal commit, a driver's event). Who would end it is not named.
            at = next((f for f in t.frames if f.function not in _SCHEDULER), None)
            rid = prefix + f"wait:{_tid(t)}"
            label = f"(unnamed kernel wait, in {at.function if at else '?'})"
            res = resources.setdefault(rid, Resource(id=rid, kind="unknown", label=label))
            thread.state = "blocked"
            thread.waits = Wait(resource=res.id, duration=t.blocked_for, durable=False, at=at)
            continue
        if c.state != "blocked" or c.kind is None:
            continue
        lock = None
        if c.kind in ("mutex", "rwlock", "semaphore") and c.at is not None and t.locks:
            lock = next((lk for lk in reversed(t.locks) if lk.at == c.at.function), None)
        duration = t.blocked_for
        if lock is not None:
            res = lock_resource(lock)
            acquiring[pid] = res.id
        elif t.likely_owner is not None:
            comm, opid, what = t.likely_owner
            res = resources.setdefault(prefix + f"{what}-of-{opid}", Resource(
                id=prefix + f"{what}-of-{opid}", kind="mutex" if what == "mutex" else "rwlock",
                label=f"{what} held by {comm}/{opid}"))
            acquiring[pid] = res.id
        else:
            prim = t.frames[c.primitive].function if c.primitive is not None else "?"
            label = _EVENT_LABELS.get(prim) or next(
                (_EVENT_LABELS[f.function] for f in t.frames[:12] if f.function in _EVENT_LABELS),
                f"(unnamed {c.kind}, in {c.at.function if c.at else prim})")
            rid = prefix + f"{c.kind}:{_tid(t)}"
            res = resources.setdefault(rid, Resource(id=rid, kind=c.kind, label=label))
        thread.waits = Wait(resource=res.id, duration=duration, durable=c.durable, at=c.at)

    # owners from the held-lock lists
    listed: dict[str, list[int]] = {}
    for pid in p.order:
        for lk in p.tasks[pid].locks:
            listed.setdefault(prefix + (lk.address or lk.cls), []).append(pid)
    for rid, pids in listed.items():
        listed_res = resources.get(rid)
        if listed_res is None:
            continue  # nobody waits on it: not part of any chain
        res = listed_res
        owners = [q for q in pids if acquiring.get(q) != rid and p.tasks[q].stack_shown]
        unknown = [q for q in pids if acquiring.get(q) != rid and not p.tasks[q].stack_shown]
        if res.kind == "mutex" and len(owners) == 1:
            for q in unknown:  # one owner: everyone else listing it is waiting for it
                if threads[q].waits is None and not p.tasks[q].running:
                    threads[q].state = "blocked"
                    threads[q].detail = ("lists the lock as held, which lockdep does while a "
                                         "task acquires it; its stack is not in the report")
                    threads[q].waits = Wait(resource=rid)
                    relevant.add(q)
        elif not owners and len(unknown) == 1 and p.tasks[unknown[0]].running:
            owners = unknown
        for q in owners:
            res.owners.append(_tid(p.tasks[q]))
            threads[q].holds.append(rid)
            relevant.add(q)
    for rid, owner_pid in _running_holders(p, resources, listed).items():
        res = resources[rid]
        res.owners.append(_tid(p.tasks[owner_pid]))
        threads[owner_pid].holds.append(rid)
        relevant.add(owner_pid)
        t = p.tasks[owner_pid]
        result.inferred[rid] = (f"lockdep lists {t.lock_count} lock(s) held by {_tid(t)} "
                                "without naming them (it does not print a running task's "
                                "locks); it is the only such task, so it probably holds "
                                f"{res.label}")
    for pid in p.order:
        t = p.tasks[pid]
        if t.likely_owner is not None:
            comm, opid, _ = t.likely_owner
            thr = threads[pid]
            if thr.waits is not None and opid in threads:
                res = resources[thr.waits.resource]
                if not res.owners:
                    res.owners.append(_tid(p.tasks[opid]))
                    threads[opid].holds.append(res.id)
                    relevant.add(opid)
    proc_threads = [threads[pid] for pid in p.order if pid in relevant]
    if proc_threads:
        result.processes.append(Process(pid=None, name="kernel", threads=proc_threads))
    result.resources.extend(resources.values())
    for ld in p.lockdeps:
        _lockdep_finding(ld, result, threads, p)


def _running_holders(p: _Parser, resources: dict[str, Resource],
                     listed: dict[str, list[int]]) -> dict[str, int]:
    """Locks with waiters and no owner, when exactly one running task holds unnamed locks."""
    silent = [pid for pid in p.order
              if p.tasks[pid].lock_count and not p.tasks[pid].locks]
    if len(silent) != 1:
        return {}
    out = {}
    for rid, res in resources.items():
        if res.kind in ("mutex", "rwlock") and not res.owners and rid in listed:
            out[rid] = silent[0]
    return out


def _lockdep_finding(ld: dict[str, object], result: ParseResult, threads: dict[int, Thread],
                     p: _Parser) -> None:
    chain = ld.get("chain")
    classes: list[str] = list(chain) if isinstance(chain, list) else []
    edges = ld.get("edges")
    edge_list = edges if isinstance(edges, list) else []
    for e in edge_list:
        if isinstance(e, dict) and e.get("lock") not in classes:
            classes.append(str(e.get("lock")))
    trying, holding = ld.get("trying"), ld.get("holding")
    rids = []
    for cls in classes:
        rid = f"linux:class:{cls}"
        if all(r.id != rid for r in result.resources):
            result.resources.append(Resource(id=rid, kind="mutex", label=cls))
        rids.append(rid)
    task = ld.get("task")
    tids = []
    if isinstance(task, tuple) and task[1] in threads:
        tids.append(threads[task[1]].id)
        if not any(tids[0] == t.id for proc in result.processes for t in proc.threads):
            if result.processes:
                result.processes[0].threads.append(threads[task[1]])
            else:
                result.processes.append(Process(name="kernel", threads=[threads[task[1]]]))
    order = " --> ".join(classes)
    who = f"{task[0]}/{task[1]}" if isinstance(task, tuple) else "a task"
    result.stated.append(Finding(
        kind="lock-order", confidence="probable",
        summary=f"lockdep: possible circular locking dependency {order}",
        explanation=(f"{who} tried to take {trying} while holding {holding}; lockdep had "
                     f"already seen the opposite order through the chain {order}. If the two "
                     "orders run at the same time, the tasks deadlock. No task was stuck when "
                     "this was reported: it is a deadlock waiting to happen."),
        threads=tids, resources=rids,
        missing_evidence=["lockdep compares lock classes, not lock instances: two different "
                          "objects of one class can make a false report",
                          "only the stacks that first created each dependency are shown"],
        details={"chain": classes, "trying": trying, "holding": holding,
                 "dependencies": [{"lock": e.get("lock"), "stack": e.get("stack")}
                                  for e in edge_list if isinstance(e, dict)]}))
