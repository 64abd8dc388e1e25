"""The facts of a process read from stacks (a dump, a capture), indexed once for the rules.

A dump has no waker declarations, no epochs and no record of who signalled what: only each
thread's state and wait as its stack shows them, the owners the source could print, and what
the source stated beside the stacks (a JVM's deadlock section, the Go runtime's own verdict,
lockdep). ``Reading`` holds that, indexed once: the wait-for graph (``graph``), the waits a
library's known behaviour explains (``known``), and, as the rules run in ``engine``'s order,
the findings so far and the threads they cover (a later rule leaves those alone). What the
source states beside its snapshot comes as ``facts.ReadFacts``.
"""

from __future__ import annotations

from stuck.model import OWNED_KINDS, Fact, Finding, Process, Resource, Snapshot, Thread
from stuck.rules.facts import ReadFacts
from stuck.rules.graph import WaitGraph
from stuck.rules.knot import can_progress
from stuck.rules.known import Knowledge, Known

# Go waits a timer could end (a Ticker's channel, time.After in a select): only a long wait
# (the header's ", N minutes") rules a periodic timer out.
TIMER_SERVED = frozenset({"chan receive", "select"})
TIMER_RULED_OUT = 60.0
# Waits only another thread's action ends (a signal, a count, a party, a hand-over), with no
# owner a dump could show. A join is not one: the joined thread is named and seen.
SIGNALLED_KINDS = frozenset({"condition", "event", "barrier", "waitgroup", "queue", "semaphore",
                             "channel"})
# Go's `select {}`: blocks forever by design (the idiom that parks main while other
# goroutines work); it waits for nothing another goroutine could send.
PARKED_FOR_GOOD = "select (no cases)"
NOT_TIMERS = frozenset({"process", "event", "pipe", "socket", "unknown"})


def on_timer(t: Thread, resources: dict[str, Resource]) -> bool:
    """Does ``t`` only wait for time to pass (a sleep, a wait with a deadline)? It will run
    again, so it is never stuck, but it runs no code meanwhile."""
    if t.state == "sleeping":
        return True
    w = t.waits
    if t.state != "blocked" or w is None or w.durable:
        return False
    if w.timeout is not None:
        return True
    res = resources.get(w.resource)
    return res is not None and res.kind not in NOT_TIMERS


def writes(t: Thread) -> bool:
    """Is ``t`` blocked writing (to a pipe or socket)?"""
    return t.waits is not None and t.waits.direction == "write"


def thread_name(t: Thread | None, tid: str) -> str:
    return t.label() if t is not None else tid


def res_name(res: Resource | None, rid: str) -> str:
    if res is None:
        return rid
    return res.label or res.id


class Reading:
    """One snapshot's read facts, indexed once, and what the rules have found so far."""

    def __init__(self, snapshot: Snapshot, read: ReadFacts) -> None:
        self.snap = snapshot
        self.stated = read.stated
        self.inferred = read.inferred
        self.hang_after = read.hang_after
        self.sources = read.sources
        self.resources = snapshot.resource_map()
        self.facts: dict[str, Fact] = {f.name: f for f in snapshot.facts}  # the last one wins
        self.knowledge = Knowledge(snapshot, self.resources, self.facts, self.hang_after)
        self.known: dict[str, Known] = self.knowledge.known
        knowledge_edges = self.knowledge.edges
        self.knowledge_edges = {(e.thread, e.held_by) for e in knowledge_edges}
        self.knowledge_only: set[str] = set()  # stall waiters only knowledge admits
        stated_edges = [e for f in self.stated if f.kind == "deadlock" for e in f.cycle]
        self.graph = WaitGraph(snapshot, [*stated_edges, *knowledge_edges])
        self.threads = self.graph.threads  # read only, on both sides: one map, built once
        self.process_of: dict[str, int] = {}
        for i, p in enumerate(snapshot.processes):
            self.process_of.update(dict.fromkeys([t.id for t in p.threads], i))
        self.covered: set[str] = set()
        # Waiters judged to be an idle pool between batches (``between``): no claim is made
        # about them from this one snapshot, and no later rule makes one (but a wait the
        # source shows has lasted past the hang limit is still named as a possible hang).
        self.idle_pool: set[str] = set()
        self.findings: list[Finding] = []

    def join_may_end(self, t: Thread, waiters: list[Thread]) -> bool:
        """``t`` joins a thread that is not among ``waiters`` (it may still run and end), or
        one the dump does not identify."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        if res is None or res.kind != "thread":
            return False
        ids = {w.id for w in waiters}
        return not res.owners or not any(o in ids for o in res.owners)

    def joins_holding(self, t: Thread) -> bool:
        """A thread joins a thread the dump does not identify while it holds a lock (a lock
        held across a join: if the joined thread needs it, neither ends). Python's source
        reading and Java's `- locked` lines both show such holds."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        return (res is not None and res.kind == "thread" and not res.owners
                and any((h := self.resources.get(r)) is not None and h.kind in OWNED_KINDS
                        for r in t.holds))

    def join_runs_on(self, t: Thread, proc: Process) -> bool:
        """``t`` joins a thread that may still run: one able to progress (asleep, in a call the
        dump does not name), or, when the dump does not identify it, any such thread."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        if res is None or res.kind != "thread":
            return False
        joined = [self.threads[o] for o in res.owners if o in self.threads]
        if res.owners:
            return any(can_progress(o) for o in joined)
        return any(o is not t and can_progress(o) for o in proc.threads)

    def unknown_join(self, t: Thread) -> bool:
        """``t`` joins a thread the source does not name."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        return res is not None and res.kind == "thread" and not res.owners

    def joins_one_of(self, t: Thread, ids: set[str]) -> bool:
        """``t`` joins a thread the source does not name, and every thread it could be
        joining is in ``ids``. A join waits for a thread that is alive (one that ended would
        have ended the join) and is not the joiner; a thread idle, waiting for work, is one
        a runtime keeps (a JVM's own, a pool's), not one a program waits to end. Only where
        the source shows every thread of the process."""
        if not self.unknown_join(t) or t.id in ids:
            return False
        proc = self.snap.processes[self.process_of[t.id]]
        if proc.complete is not True:
            return False
        candidates = [o.id for o in proc.threads
                      if o.id != t.id and o.state not in ("dead", "idle")]
        return bool(candidates) and all(o in ids for o in candidates)

    def joiners_behind(self, ids: set[str]) -> list[str]:
        """The threads that join a thread the source does not name when every thread they
        could be joining is in ``ids`` (or joins one of those, in turn): they wait behind
        them (Java's Thread.join prints only the Thread object's address; a Python dump
        without --locals, the join's frame)."""
        found: list[str] = []
        inside = set(ids)
        changed = True
        while changed:
            changed = False
            for proc in self.snap.processes:
                for t in proc.threads:
                    if t.id not in inside and self.joins_one_of(t, inside):
                        found.append(t.id)
                        inside.add(t.id)
                        changed = True
        return found

    def child_wait(self, t: Thread, proc: Process) -> bool:
        """``t`` waits for another process to exit while nothing in its own process runs: the
        process depends on that one alone, worth naming (as a possible hang) with its pid."""
        assert t.waits is not None
        res = self.resources.get(t.waits.resource)
        if res is not None and res.kind == "process":
            return not any(o.state in ("running", "io") for o in proc.threads)
        # A write blocked on a full pipe or socket waits for a reader. In a complete dump
        # where no thread of the process runs, reads or polls (the others only write too, or
        # sleep, or wait), no thread here will drain it: only another process can.
        return (res is not None and res.kind in ("pipe", "socket")
                and t.waits.direction == "write" and proc.complete is True
                and not any(o.state == "running" or (o.state == "io" and not writes(o))
                            or (o.state == "unknown" and o.frames) for o in proc.threads))

    def excerpt_write(self, t: Thread, proc: Process) -> bool:
        """``t`` is blocked writing to a pipe or socket, in a text that visibly lacks threads of
        its process (an excerpt), and no thread the text does show reads, polls or runs.

        A blocking write waits only when the buffer is full: the data is ready and the reader
        is not taking it (back-pressure, unlike a read, which an idle server does for good).
        Who would read is outside the text: a thread the paste left out, or another process.
        Worth naming as a possible hang, with the capture that shows the reader; never more,
        since a reader among the missing threads may drain it the next moment."""
        assert t.waits is not None
        res = self.resources.get(t.waits.resource)
        return (res is not None and res.kind in ("pipe", "socket")
                and t.waits.direction == "write" and proc.complete is False
                and not any(o.state == "running" or (o.state == "io" and not writes(o))
                            or (o.state == "unknown" and o.frames) for o in proc.threads))

    def possible_wakers(self, t: Thread, res: Resource | None,
                        process_threads: list[Thread]) -> list[Thread]:
        if res is not None and res.wakers is not None:
            return [self.threads[w] for w in res.wakers if w in self.threads and w != t.id]
        return [o for o in process_threads if o.id != t.id]
