"""The facts the rules read, indexed from a Snapshot.

A source states what it saw as model fields: ``Thread.waits`` (with ``Wait.op``),
``Thread.ended``, ``Resource.owners`` and ``Resource.recorded`` (who ever signalled, put, took,
the queue's size, the executor's workers ...). ``facts_of`` indexes those fields once, by id,
into the small records below, so that each rule is a few dictionary look-ups. Nothing here
reads a live object: a saved report read back gives the very same facts. A source that
reads stacks instead (a dump, a capture) has none of these; what it states beside its snapshot
is ``ReadFacts``, and ``stuck.rules.reading`` indexes what it read.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from stuck.model import Finding, Snapshot

WaitOp = Literal["acquire", "wait", "get", "put", "join", "queue-join", "result", "barrier",
                 "unknown"]
WAIT_OPS: frozenset[str] = frozenset(get_args(WaitOp))  # what a source's op may be read as

# Kinds whose wakers are recorded by history (who ever notified / set / put / released ...).
SIGNALLED_KINDS = frozenset({"condition", "event", "queue", "semaphore", "barrier", "future"})


@dataclass(slots=True)
class ThreadWait:
    resource: str
    op: WaitOp = "wait"
    durable: bool = True
    since: float | None = None  # time.monotonic() when the wait began
    timeout: float | None = None


@dataclass(slots=True)
class ThreadFacts:
    """One thread as the instrumentation knows it; dead threads are kept while anything still
    names them as a waker."""

    id: str
    name: str
    alive: bool = True
    daemon: bool = False
    ident: int | None = None
    wait: ThreadWait | None = None
    runnable_hint: str | None = None  # "io", "sleeping", "running": why it is not blocked
    holds: list[str] = field(default_factory=list)
    ended: str | None = None  # for a dead thread: "returned", "died of ValueError: ..."


@dataclass(slots=True)
class Signal:
    """One past signal on a condition or event: who, when, and how many waited then."""

    op: str  # "notify", "notify_all", "set", "clear"
    thread: str
    at: float  # wall-clock time (epoch seconds), as Facts.now
    waiters: int
    where: str | None = None  # the program's code that signalled, where the source saw it


@dataclass(slots=True)
class ResourceFacts:
    id: str
    kind: str  # the model's ResourceKind values
    label: str
    owners: list[str] = field(default_factory=list)
    # threads that ever did what ends a wait on it (notify, set, put, release, set_result,
    # arrive at a barrier); None: not recorded.
    wakers: set[str] | None = None
    getters: set[str] | None = None  # queue: threads that ever took an item
    size: int | None = None  # queue: items in it now
    maxsize: int | None = None  # queue: 0 or None = unbounded
    parties: int | None = None  # barrier
    n_waiting: int | None = None  # barrier
    rounds: int = 0  # barrier: rounds completed
    broken: bool = False
    executor: str | None = None  # future: its executor's id
    task: str | None = None  # future: the callable submitted
    running: bool = False  # future: a worker has started it
    thread: str | None = None  # join: the thread joined
    history: list[Signal] = field(default_factory=list)  # last few signals, oldest first
    obj: object | None = None  # the primitive itself, for the reachability pass
    # What ends a wait already holds (a set event, a free permit); a wait seen then is one
    # the waiter is about to leave, not a state to judge.
    is_set: bool = False  # event
    value: int | None = None  # semaphore: free permits
    # condition: waits the instrumentation records minus threads really parked on it; more
    # records than parked threads means a notify is on its way to some of them.
    in_flight: int = 0
    epoch: int | None = None  # the primitive's epoch when the facts were read
    jobs: list[str] = field(default_factory=list)  # queue: what its first items are
    # condition: whether any thread was ever seen waiting on it; None: not recorded.
    served: bool | None = None


@dataclass(slots=True)
class ExecutorFacts:
    id: str
    label: str
    workers: list[str] = field(default_factory=list)  # live worker thread ids
    max_workers: int | None = None
    shutdown: bool = False
    pending: list[str] = field(default_factory=list)  # tasks queued, not started


@dataclass(slots=True)
class Facts:
    threads: dict[str, ThreadFacts]
    resources: dict[str, ResourceFacts]
    executors: dict[str, ExecutorFacts] = field(default_factory=dict)
    now: float = field(default_factory=time.monotonic)
    # Threads of the program that have ended, named with how ("notifier (returned)"): who
    # could have signalled a primitive nobody ever signalled. Read only for such a finding.
    ended: Callable[[], list[str]] = field(default=lambda: [])


INTERPRETER_EXIT = "interpreter-exit"

# The ids of asyncio tasks in a snapshot (``task:<name>``): the event-loop rule's, not these.
TASK_PREFIX = "task:"


# stuck's own threads: never the program's, never judged.
# The watchdog runs on a bare thread threading does not know: a live report leaves it out by its
# ident, so a program's thread of that name is the program's; a dump of a program running
# under stuck names it by its frames (``dumps._python``), and the rules that weigh which threads
# could still run leave it out by that name (``confidence``).
WATCHDOG_NAME = "stuck-watchdog"
OWN_THREADS = frozenset({WATCHDOG_NAME})


def waited(t: ThreadFacts, now: float) -> float | None:
    if t.wait is None or t.wait.since is None:
        return None
    return now - t.wait.since


def facts_of(snap: Snapshot) -> tuple[Facts, set[str]]:
    """The rules' facts from a snapshot that carries them (a live one, or a saved live report
    read back), and the resources no thread able to run could reach."""
    threads: dict[str, ThreadFacts] = {}
    ended: list[str] = []
    for t in snap.threads():
        if t.id.startswith(TASK_PREFIX):
            continue  # asyncio tasks: the event-loop rule's (stuck's own thread is not here:
            # a live report leaves it out by its ident)
        alive = t.state != "dead"
        tf = ThreadFacts(id=t.id, name=t.name or t.id, alive=alive, daemon=bool(t.daemon),
                         holds=list(t.holds), ended=t.ended or ("has ended" if not alive
                                                                else None))
        if t.id.startswith("0x"):
            with contextlib.suppress(ValueError):
                tf.ident = int(t.id, 16)
        w = t.waits
        if alive and w is not None and w.op is not None:
            op = w.op if w.op in WAIT_OPS else "unknown"
            tf.wait = ThreadWait(resource=w.resource, op=op, durable=w.durable,  # type: ignore[arg-type]
                                 since=w.since, timeout=w.timeout)
        if not alive and t.ended is not None and len(ended) < 5 \
                and not any(e.startswith(f"{tf.name} (") for e in ended):
            ended.append(f"{tf.name} ({t.ended})")
        threads[t.id] = tf
    resources: dict[str, ResourceFacts] = {}
    executors: dict[str, ExecutorFacts] = {}
    unreachable: set[str] = set()
    for res in snap.resources:
        rec = res.recorded
        if rec is None:
            continue
        rf = ResourceFacts(
            id=res.id, kind=res.kind, label=res.label, owners=list(res.owners),
            wakers=set(rec.wakers) if rec.wakers is not None else None,
            getters=set(rec.getters) if rec.getters is not None else None, size=rec.size,
            maxsize=rec.maxsize, parties=rec.parties, n_waiting=rec.waiting,
            rounds=rec.rounds, broken=rec.broken, executor=rec.pool, task=rec.task,
            running=rec.running, thread=rec.joins,
            history=[Signal(g.op, g.thread, g.at, g.waiters, g.where) for g in rec.signals],
            is_set=rec.is_set, value=rec.free, in_flight=rec.in_flight, epoch=rec.epoch,
            jobs=list(rec.jobs), served=rec.served)
        resources[res.id] = rf
        if rec.reachable is False:
            unreachable.add(res.id)
        if rec.pool is not None and rec.pool not in executors:
            executors[rec.pool] = ExecutorFacts(
                id=rec.pool, label=rec.pool_label or rec.pool,
                workers=list(rec.pool_workers or []), max_workers=rec.pool_capacity,
                shutdown=rec.pool_shutdown, pending=list(rec.pool_pending))
    now = snap.taken_at if snap.taken_at is not None else time.time()
    return Facts(threads=threads, resources=resources, executors=executors, now=now,
                     ended=lambda: list(ended)), unreachable


def has_recorded_facts(snap: Snapshot) -> bool:
    return any(r.recorded is not None for r in snap.resources)


def recorded_part(snap: Snapshot) -> Snapshot | None:
    """The processes of ``snap`` whose waits rest on recorded facts (``Resource.recorded``),
    as a snapshot of their own: the part ``stuck.rules.evaluate`` can judge. None when there
    is none, or when the recorded facts name threads the snapshot no longer has (threads
    renamed since, joined to a capture's kernel threads): facts about other ids prove nothing."""
    if not has_recorded_facts(snap):
        return None
    resources = snap.resource_map()
    recorded = [p for p in snap.processes
                if any(t.waits is not None and (r := resources.get(t.waits.resource)) is not None
                       and r.recorded is not None for t in p.threads)]
    if not recorded:
        return None
    ids = {t.id for p in recorded for t in p.threads}
    named: set[str] = set()
    for r in snap.resources:
        rec = r.recorded
        if rec is not None:
            named.update(rec.wakers or (), rec.getters or (), rec.pool_workers or ())
            if rec.joins is not None:
                named.add(rec.joins)
    if not named <= ids:
        return None
    return Snapshot(source=snap.source, processes=recorded, resources=snap.resources,
                    taken_at=snap.taken_at)


# seconds: a durable wait read from stacks at least this long is worth naming as a hang
HANG_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class ReadFacts:
    """What a source that reads stacks hands the rules beside its snapshot.

    ``stated``: findings the source's own text states (a JVM's "Found one Java-level
    deadlock", the Go runtime's "all goroutines are asleep", lockdep's lock-order report);
    ``inferred``: resource id -> how its owner was inferred rather than read (a guess the
    findings must admit); ``hang_after``: how long a wait must have lasted to be named as a
    possible hang; ``unsure``: resource id -> why what the source read of it may be incomplete
    (a finding through it is at most probable, ``confidence.unsure_doubt``); ``sources``:
    directories the program's source files may be found under (``stuck.stacks.sourcepath``)."""

    stated: list[Finding] = field(default_factory=list)
    inferred: dict[str, str] = field(default_factory=dict)
    hang_after: float = HANG_AFTER
    unsure: dict[str, str] = field(default_factory=dict)
    # Where the program's source files can be read when not at the paths the stacks print
    # (``--source DIR``): a rule reading source (Go's function literals) looks there too.
    sources: tuple[str, ...] = ()
