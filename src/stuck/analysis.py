"""Snapshot -> Report: thread classification, resource inference, the rules, stack grouping.

The rules are written once, on the model, so they apply alike to a gdb dump, a goroutine dump,
a kernel report and a live Python process:

- a cycle in the wait-for graph is a **deadlock**;
- a waiter on something only another thread can provide (a condition, a channel, a queue, a
  future, a WaitGroup), when every thread that could provide it is idle, blocked or gone, is a
  **stall** (with ``Resource.wakers`` when the source knows them: live; otherwise every other
  thread of the process is a possible waker);
- a lock-order cycle stated by the source (lockdep) is a **lock-order** finding;
- a long durable wait that none of the above explains is a **hang**.

Where a dump cannot say who would end a wait, ``stuck.knowledge`` may: its rules name, for
well-known library waits (RocksDB's ``DelayWrite`` on ``bg_cv_``), the threads that could end
them by role. Those become the possible wakers: none able to run is a stall, wakers that wait
back on the waiter close a cycle. Facts the text states outside stacks (a library's LOG lines,
printed fields) let a long call into the library count as such a wait. Findings that rest on
knowledge are never ``certain`` and name the rule they used.

Threads caught in a finding's wait chain without being part of it are its ``blocked_behind``
victims. What the source cannot show goes in ``missing_evidence``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stuck.groups import GroupKey, group_key
from stuck.knowledge import Matcher, RoleSource, WaitRule, evidence_fields, hints
from stuck.model import (
    Confidence,
    Edge,
    Fact,
    Finding,
    Group,
    Process,
    Report,
    Resource,
    Snapshot,
    Thread,
    Wait,
)
from stuck.rules import evaluate, recorded_part
from stuck.rules.confidence import task_thread_doubt
from stuck.rules.contention import Working, ordinary_wait
from stuck.rules.graph import WaitGraph
from stuck.rules.knot import can_progress as _can_progress
from stuck.rules.signaller import blocked_on_waiters_locks
from stuck.rules.wording import wait_text as _wait_text
from stuck.stacks.native import base_name, classify
from stuck.stacks.python import SLEEP_ONLY

HANG_AFTER = 60.0  # seconds: a durable wait at least this long is worth reporting

def infer_native_waits(snapshot: Snapshot, prefix: str = "inferred") -> None:
    """Classify threads whose source gave no state, adding a Wait and Resource where blocked."""
    existing = {r.id for r in snapshot.resources}
    for proc_index, proc in enumerate(snapshot.processes, start=1):
        for t in proc.threads:
            if t.state != "unknown" or t.waits is not None:
                continue
            if t.frames and (t.frames[0].file or "").endswith(".py"):
                continue  # a Python frame: its parser already said all it could
            c = classify(t.frames)
            t.state = c.state
            if c.kind is None or c.state != "blocked":
                continue
            rid = f"{prefix}{proc_index}:{t.id}:{c.kind}"
            if rid not in existing:
                where = c.at.function if c.at is not None else (
                    t.frames[c.primitive].function if c.primitive is not None else "?")
                snapshot.resources.append(
                    Resource(id=rid, kind=c.kind, label=f"(unnamed, in {base_name(where)})"))
                existing.add(rid)
            t.waits = Wait(resource=rid, durable=c.durable, at=c.at)


# --- the rules ---------------------------------------------------------------------------

OWNED_KINDS = frozenset({"mutex", "rlock", "rwlock", "monitor"})
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


def _on_timer(t: Thread, resources: dict[str, Resource]) -> bool:
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


def _writes(t: Thread) -> bool:
    """Is ``t`` blocked writing (to a pipe or socket)?"""
    return t.waits is not None and t.waits.direction == "write"


def _name(t: Thread | None, tid: str) -> str:
    return t.label() if t is not None else tid


def _res_name(res: Resource | None, rid: str) -> str:
    if res is None:
        return rid
    return res.label or res.id


KNOWLEDGE_EDGES_PER_WAITER = 8  # edges to blocked wakers: enough to close any real cycle
KNOWLEDGE_EDGES = 50_000  # in all: a hostile dump cannot make the graph quadratic


@dataclass(slots=True)
class _Wakers:
    """The threads of one process with a role that could end one rule's waits (shared by
    every waiter of that rule in the process, so many waiters cost no more than one)."""

    members: dict[str, tuple[Thread, RoleSource]]  # thread id -> (thread, how its role was read)
    progressing: int  # members that can go on to run
    blocked: list[Thread]  # members blocked themselves


@dataclass(slots=True)
class _Known:
    """A thread whose wait a knowledge rule explains, and who could end it."""

    thread: Thread
    rule: WaitRule
    site_from: RoleSource  # where the wait's site was read: its frames, or the paste's label
    group: _Wakers
    busy: list[Fact]  # facts that say the awaited work is under way

    def _is_member(self) -> bool:
        return self.thread.id in self.group.members

    def has_wakers(self) -> bool:
        return len(self.group.members) - self._is_member() > 0

    def can_be_woken(self) -> bool:
        """Could some waker (not the waiter itself) still run and end the wait?"""
        own = self._is_member() and _can_progress(self.thread)
        return self.group.progressing - own > 0

    def wakers(self, limit: int) -> list[tuple[Thread, RoleSource]]:
        out = []
        for tid, member in self.group.members.items():
            if tid != self.thread.id:
                out.append(member)
                if len(out) >= limit:
                    break
        return out

    def count(self) -> int:
        return len(self.group.members) - self._is_member()


class _Analysis:
    def __init__(self, snapshot: Snapshot, stated: list[Finding],
                 inferred: dict[str, str], hang_after: float) -> None:
        self.snap = snapshot
        self.stated = stated
        self.inferred = inferred
        self.hang_after = hang_after
        self.resources = snapshot.resource_map()
        self.facts: dict[str, Fact] = {f.name: f for f in snapshot.facts}  # the last one wins
        self.matcher = Matcher()
        self.known = self._knowledge()
        knowledge_edges = self._knowledge_edges()
        self.knowledge_edges = {(e.thread, e.held_by) for e in knowledge_edges}
        self.knowledge_only: set[str] = set()  # stall waiters only knowledge admits
        stated_edges = [e for f in stated if f.kind == "deadlock" for e in f.cycle]
        self.graph = WaitGraph(snapshot, [*stated_edges, *knowledge_edges])
        self.threads = self.graph.threads  # read only, on both sides: one map, built once
        self.process_of: dict[str, int] = {}
        for i, p in enumerate(snapshot.processes):
            self.process_of.update(dict.fromkeys([t.id for t in p.threads], i))
        self.covered: set[str] = set()
        self.findings: list[Finding] = []

    # knowledge ---------------------------------------------------------------------------
    def _knowledge(self) -> dict[str, _Known]:
        """Threads whose wait a ``stuck.knowledge`` rule explains, with their possible wakers.

        A condition rule needs a durable wait on a condition at the rule's site; a call rule a
        long call into the library (at least ``hang_after``) while the fact it needs holds.
        Roles are read only in processes where some rule applies.
        """
        matcher = self.matcher
        known: dict[str, _Known] = {}
        for proc in self.snap.processes:
            matches: list[tuple[Thread, WaitRule, RoleSource]] = []
            for t in proc.threads:
                w = t.waits
                if w is None:
                    continue
                found = None
                if t.state == "blocked" and w.durable:
                    res = self.resources.get(w.resource)
                    if res is not None and res.kind == "condition":
                        found = matcher.rule_for(t, "condition")
                elif not w.durable and w.duration is not None and w.duration >= self.hang_after:
                    found = matcher.rule_for(t, "call")
                    if found is not None and found[0].needs is not None:
                        need = self.facts.get(found[0].needs)
                        if need is None or need.value <= 0:
                            found = None
                if found is not None:
                    matches.append((t, *found))
            if not matches:
                continue
            roles = [(o, matcher.roles_of(o)) for o in proc.threads]
            groups: dict[str, _Wakers] = {}
            for t, rule, site_from in matches:
                group = groups.get(rule.name)
                if group is None:
                    members: dict[str, tuple[Thread, RoleSource]] = {}
                    for o, has in roles:
                        how = next((has[r] for r in rule.ended_by if r in has), None)
                        if how is not None:
                            members[o.id] = (o, how)
                    group = groups[rule.name] = _Wakers(
                        members=members,
                        progressing=sum(1 for o, _ in members.values() if _can_progress(o)),
                        blocked=[o for o, _ in members.values()
                                 if o.state == "blocked" and o.waits is not None])
                busy = [f for n in rule.busy if (f := self.facts.get(n)) is not None
                        and f.value > 0]
                known[t.id] = _Known(t, rule, site_from, group, busy)
        return known

    def _knowledge_edges(self) -> list[Edge]:
        """Waits only the waiter's possible wakers could end, when none of them can run:
        an edge to each waker that is itself blocked, so a cycle through conditions shows."""
        edges: list[Edge] = []
        for tid, k in self.known.items():
            if k.rule.wait != "condition" or k.busy or not k.has_wakers() \
                    or k.can_be_woken() or k.thread.waits is None:
                continue
            n = 0
            for w in k.group.blocked:
                if w.id == tid:
                    continue
                edges.append(Edge(thread=tid, waits_for=k.thread.waits.resource, held_by=w.id))
                n += 1
                if n >= KNOWLEDGE_EDGES_PER_WAITER or len(edges) >= KNOWLEDGE_EDGES:
                    break
            if len(edges) >= KNOWLEDGE_EDGES:
                break
        return edges

    def _facts_words(self, rule: WaitRule) -> list[str]:
        """What the text states about the rule's library, and what that suggests."""
        prefix = rule.library.lower() + "."
        stated = [f.text for f in self.facts.values() if f.name.startswith(prefix)]
        return stated + hints(self.facts, prefix) if stated else []

    def _roles_what(self, rule: WaitRule) -> str:
        return " or ".join(dict.fromkeys(self.matcher.role_what(r) for r in rule.ended_by))

    def _known_words(self, t: Thread, k: _Known, who: str | None = None
                     ) -> tuple[str, list[str]]:
        """(explanation, missing evidence) for a wait a knowledge rule explains; ``who`` names
        the waiters when several share the rule (default: the thread)."""
        rule = k.rule
        roles = self._roles_what(rule)
        who = who or t.label()
        words = (f"By {rule.library}'s code, {who} waits on {rule.on} for {rule.until} "
                 f"({rule.reason}).")
        if k.has_wakers():
            states = ", ".join(f"{w.label()} ({w.state})" for w, _ in k.wakers(6))
            more = f" and {k.count() - 6} more" if k.count() > 6 else ""
            words += f" Only {roles} can do that; here: {states}{more}."
        else:
            words += f" Only {roles} can do that, and the dump shows none."
        facts = self._facts_words(rule)
        if facts:
            words += " The text says: " + "; ".join(facts) + "."
        if rule.wait == "condition":
            first = (f"the dump does not show which thread would signal {rule.on} for "
                     f"{who}; that only {roles} can is {rule.library}'s known behaviour "
                     f"(rule {rule.name}): {rule.proof}")
        else:
            at = base_name(t.waits.at.function) if t.waits and t.waits.at else rule.library
            first = (f"the dump does not show what {who} waits for inside {at}; that it "
                     f"is {rule.on} is read from {rule.library}'s known behaviour (rule "
                     f"{rule.name}): {rule.proof}")
        missing = [first]
        if k.site_from == "label":
            missing.append(f"{t.label()}'s frames are cut off: where it waits is read from the "
                           f"paste's label \"{t.paste_label}\"")
        for w, how in k.wakers(6):
            if how == "label":
                missing.append(f"{w.label()}'s role ({roles}) comes from the paste's label "
                               f"\"{w.paste_label}\": its own frames are cut off")
        if facts:
            missing.append("the log lines and printed fields are read from the whole text; "
                           "that they describe this same process is assumed")
        return words, missing

    # deadlock ----------------------------------------------------------------------------
    def deadlocks(self) -> None:
        for cycle in self.graph.cycles():
            tids = [e.thread for e in cycle]
            rids = list(dict.fromkeys(e.waits_for for e in cycle))
            inferred = [rid for rid in rids if rid in self.inferred]
            missing = [f"owner of {_res_name(self.resources.get(rid), rid)}: "
                       f"{self.inferred[rid]}" for rid in inferred]
            stated_only = [e for e in cycle if self.threads[e.thread].waits is None]
            if stated_only:
                missing.append("part of the cycle comes from the dump's own deadlock report, "
                               "not from the thread stacks")
            known_steps = [e for e in cycle if (e.thread, e.held_by) in self.knowledge_edges]
            behind = self.graph.behind(tids)
            names = [_name(self.threads.get(t), t) for t in tids]
            steps = []
            for e in cycle[:12]:
                res = self.resources.get(e.waits_for)
                waiter = _name(self.threads.get(e.thread), e.thread)
                other = _name(self.threads.get(e.held_by), e.held_by)
                k = self.known.get(e.thread) if (e.thread, e.held_by) in self.knowledge_edges \
                    else None
                if k is not None:
                    steps.append(f"{waiter} waits on {k.rule.on} for {k.rule.until}, which "
                                 f"only {self._roles_what(k.rule)} could bring about, and "
                                 f"here that is {other}")
                else:
                    steps.append(f"{waiter} waits for {_res_name(res, e.waits_for)}, held by "
                                 f"{other}")
            if len(cycle) > 12:
                steps.append(f"… {len(cycle) - 12} more steps")
            self_wait = len(cycle) == 1 and cycle[0].thread == cycle[0].held_by
            if self_wait:
                res0 = self.resources.get(cycle[0].waits_for)
                explanation = (f"{names[0]} waits for {_res_name(res0, cycle[0].waits_for)}, "
                               "which it holds itself: a lock that is not re-entrant, taken "
                               "twice by one thread, waits forever (a self-deadlock).")
            else:
                explanation = ("; ".join(steps) + ". None of them can continue until another "
                               "in the cycle does, so none will.")
            if behind:
                explanation += (f" {len(behind)} more thread(s) wait behind the cycle without "
                                "being part of it.")
            details: dict[str, object] = {}
            reasons: list[str] = []
            for e in known_steps:
                k = self.known[e.thread]
                _, more = self._known_words(k.thread, k)
                missing.extend(m for m in more if m not in missing)
                reason = f"{k.rule.library}: {k.rule.reason}."
                if reason not in reasons:
                    reasons.append(reason)
                for fact in self._facts_words(k.rule):
                    if fact not in reasons:
                        reasons.append(fact)
            if reasons:
                explanation += " " + " ".join(reasons)
            libraries = ", ".join(dict.fromkeys(self.known[e.thread].rule.library
                                                for e in known_steps))
            if known_steps:
                rules = list(dict.fromkeys(self.known[e.thread].rule.name for e in known_steps))
                details["knowledge"] = rules
                missing.append("the cycle runs through condition variables, which have no "
                               "owner a dump can show: who would signal each one is read "
                               "from the library's known behaviour")
            # A join whose target is inferred, not read, is a guess: the edge may not exist.
            guessed = any((r := self.resources.get(rid)) is not None and r.kind == "thread"
                          for rid in inferred)
            confidence: Confidence = ("possible" if known_steps or guessed
                                      else "probable" if missing else "certain")
            if confidence != "possible" and any(
                    self.snap.processes[self.process_of[t]].complete is False
                    for t in tids if t in self.process_of) and not stated_only:
                confidence = "possible"  # an excerpt: the threads it left out may change it
                missing.append(self._capture_all())
            self.findings.append(Finding(
                kind="deadlock", confidence=confidence,
                summary=(f"{names[0]} waits for "
                         f"{_res_name(self.resources.get(rids[0]), rids[0])}, which it holds "
                         "itself (a self-deadlock)") if self_wait else
                        (" and ".join(names) if len(names) < 3 else ", ".join(names[:5])
                         + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
                        + " wait for each other in a cycle"
                        + (f" (through condition variables, by {libraries}'s known waits)"
                           if known_steps else ""),
                explanation=explanation, threads=tids, resources=rids, cycle=cycle,
                blocked_behind=behind, missing_evidence=missing, details=details))
            self.covered.update(tids)
            self.covered.update(behind)

    # whole-process stall ------------------------------------------------------------------
    def process_stalls(self) -> None:
        """A process whose every thread is shown and none can run: nothing in it will wake
        anyone. Only for sources that show every thread (``Process.complete``)."""
        stated_stall = {t for f in self.stated if f.kind == "stall" for t in f.threads}
        for proc in self.snap.processes:
            # A Python excerpt too (py-spy's header names the process; what the paste lacks is
            # visible): its claims stay possible, and joins on threads not shown say nothing.
            if not proc.complete and not (proc.complete is False and proc.name == "python"):
                continue
            if any(t.id in self.known or t.id in stated_stall for t in proc.threads):
                continue  # the stall rule says more: what the runtime or the library said
            waiters: list[Thread] = []
            unnamed: list[Thread] = []  # off the CPU in a call the dump does not name
            sleepers: list[Thread] = []  # will run again, and might hold a lock meanwhile
            timers: list[Thread] = []  # may be woken by a timer the dump cannot show
            for t in proc.threads:
                if t.state in ("idle", "dead"):
                    continue
                if t.state == "blocked" and t.waits is not None and t.waits.durable:
                    if t.detail in TIMER_SERVED and (t.waits.duration is None
                                                     or t.waits.duration < TIMER_RULED_OUT):
                        timers.append(t)
                    else:
                        waiters.append(t)
                elif t.state == "unknown" and t.frames and t.detail != "active":
                    unnamed.append(t)
                elif t.state == "sleeping":
                    sleepers.append(t)
                else:
                    break
            else:
                working = Working(proc.threads)
                waiters = [t for t in waiters if t.id not in self.covered and not ordinary_wait(
                    t, self.resources.get(t.waits.resource) if t.waits else None, working)]
                if waiters and any(t.id in self.covered for t in proc.threads) and all(
                        self._unknown_join(t) for t in waiters):
                    continue  # joins on threads not named, beside a finding: likely its victims
                if waiters:
                    self._process_stall(waiters, unnamed, sleepers, timers,
                                        excerpt=proc.complete is False)

    def _channel_words(self, waiters: list[Thread]) -> list[str]:
        """For each channel waited on: who waits, in which direction, and who else could have
        served it (goroutines that pass its address as an argument)."""
        by_channel: dict[str, list[Thread]] = {}
        for t in waiters:
            if t.waits is not None and (res := self.resources.get(t.waits.resource)) is not None \
                    and res.kind == "channel":
                by_channel.setdefault(res.id, []).append(t)
        words = []
        for rid, ts in list(by_channel.items())[:8]:
            res = self.resources[rid]
            how = ", ".join(f"{t.label()} ({t.detail or 'waits'})" for t in ts[:4])
            others = [self.threads[o] for o in res.referenced_by or () if o in self.threads][:4]
            if others:
                served = ("it could have been served by " + ", ".join(
                    f"{o.label()} ({o.state}"
                    + (f", in {base_name(o.waits.at.function)}"
                       if o.waits is not None and o.waits.at is not None else "") + ")"
                    for o in others) + ", whose arguments show its address; none can run")
            elif res.address:
                served = ("no other goroutine's arguments show its address: whoever would "
                          "serve it has returned, or its arguments were not printed ('?')")
            else:
                served = ("its address is not printed, so who else could serve it cannot be "
                          "told from the dump")
            words.append(f"On {_res_name(res, rid)}: {how}; {served}.")
        return words

    def _join_may_end(self, t: Thread, waiters: list[Thread]) -> bool:
        """``t`` joins a thread that is not among ``waiters`` (it may still run and end), or
        one the dump does not identify."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        if res is None or res.kind != "thread":
            return False
        ids = {w.id for w in waiters}
        return not res.owners or not any(o in ids for o in res.owners)

    def _joins_holding(self, t: Thread) -> bool:
        """A thread joins a thread the dump does not identify while it holds a lock (a lock
        held across a join: if the joined thread needs it, neither ends). Python's source
        reading and Java's `- locked` lines both show such holds."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        return (res is not None and res.kind == "thread" and not res.owners
                and any((h := self.resources.get(r)) is not None and h.kind in OWNED_KINDS
                        for r in t.holds))

    def _join_runs_on(self, t: Thread, proc: Process) -> bool:
        """``t`` joins a thread that may still run: one able to progress (asleep, in a call the
        dump does not name), or, when the dump does not identify it, any such thread."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        if res is None or res.kind != "thread":
            return False
        joined = [self.threads[o] for o in res.owners if o in self.threads]
        if res.owners:
            return any(_can_progress(o) for o in joined)
        return any(o is not t and _can_progress(o) for o in proc.threads)

    def _unknown_join(self, t: Thread) -> bool:
        """``t`` joins a thread the source does not name."""
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        return res is not None and res.kind == "thread" and not res.owners

    def _child_wait(self, t: Thread, proc: Process) -> bool:
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
                and not any(o.state == "running" or (o.state == "io" and not _writes(o))
                            or (o.state == "unknown" and o.frames) for o in proc.threads))

    def _capture_command(self) -> str:
        """The exact command that captures every thread again, for this dump's source."""
        fmt = self.snap.source.format or ""
        return {"gdb": "gdb -p PID -batch -ex 'thread apply all bt'",
                "go": "GOTRACEBACK=all and kill -QUIT PID (every goroutine)",
                "jstack": "jstack -l PID"}.get(fmt.split("+", 1)[0], "py-spy dump --pid PID")

    def _capture_all(self) -> str:
        """What to capture when the text visibly lacks threads: the exact command."""
        how = self._capture_command()
        return ("the text lacks threads of this process (an excerpt), and who holds or would "
                f"end these waits may be among them: capture every thread ({how}), or run "
                "`stuck capture PID`")

    def _owner_hint(self, res: Resource) -> str:
        """What to capture to learn who holds ``res``: the exact command for its source."""
        name = _res_name(res, res.id)
        if res.id.startswith("gdb") and res.kind in ("mutex", "rwlock"):
            if res.label.isidentifier():
                how = f"`print {res.label}`"
            elif res.address:
                how = (f"`print *(pthread_mutex_t *) {res.address}` (without symbols: "
                       f"`x/3dw {res.address}`, the third number)")
            else:
                how = "`print *mutex` in the waiting thread's pthread_mutex_lock frame"
            return (f"which thread holds {name} is not in the dump: in gdb, {how} shows "
                    "`__owner`, the LWP that holds it")
        if res.id.startswith("go"):
            return (f"which goroutine holds {name} is not in the dump: Go does not record "
                    "mutex owners; look for the goroutine that locked it and has not unlocked "
                    "it (a method on the same object: its address as the first argument)")
        if res.id.startswith("linux"):
            return (f"which task holds {name} is not in the dump: lockdep's 'Showing all locks "
                    "held' list (`echo d > /proc/sysrq-trigger`) names it")
        if "jstack" in (self.snap.source.format or ""):
            if res.kind == "rwlock":
                return (f"which threads hold {name} is not in the dump: `jstack -l PID` "
                        "prints a write lock's owner under 'Locked ownable synchronizers'; "
                        "no thread dump shows read-lock holders (a heap dump does: "
                        "`jcmd PID GC.heap_dump FILE`)")
            return f"which thread holds {name} is not in the dump: `jstack -l PID` prints it"
        return (f"which thread holds {name} is not in the dump; take the dump with `py-spy dump "
                "--locals` (an RLock prints `owner=`) or run the program under `stuck run`, "
                "which tracks owners")

    def _process_stall(self, waiters: list[Thread], unnamed: list[Thread],
                       sleepers: list[Thread], timers: list[Thread],
                       excerpt: bool = False) -> None:
        """Nothing in the process runs. With sleepers, any wait might still end when one wakes:
        only the weakest claim stands, a possible lock cycle (a sleeper might hold a lock).
        ``timers``: goroutines receiving from a channel or in select, which a timer could wake
        (a Ticker's channel, time.After): not named as stuck, and the claim is only possible."""
        python = self.snap.processes[self.process_of[waiters[0].id]].name == "python"
        blocked = waiters
        # A sleeper whose loop, by the source, does nothing but sleep can wake no one.
        inert = [t for t in sleepers if t.detail == SLEEP_ONLY]
        sleepers = [t for t in sleepers if t.detail != SLEEP_ONLY]
        if python and (unnamed or sleepers or excerpt):
            # A join ends when the joined thread does: one that may run (asleep, or in a call
            # the dump does not name), or that the dump does not identify, is no stuck wait.
            waiters = [t for t in waiters if not self._join_may_end(t, waiters)]
            if not waiters:
                return
        waiter_ids = {t.id for t in waiters}
        # Root waits: not on something another waiter holds (a join on a waiting thread, a
        # lock a waiter holds). The rest wait behind the roots.
        roots = [t for t in waiters if t.waits is not None and not any(
            o != t.id and o in waiter_ids for o in self.graph.owned_by.get(t.waits.resource, ()))]
        if not roots:
            roots = waiters
        if python:  # a join on a thread the dump does not identify says least: named last
            roots.sort(key=self._unknown_join)
        root_ids = {t.id for t in roots}
        # A thread off the CPU in a call the dump does not name may be asleep (py-spy shows no
        # frame for time.sleep): it is described, never named as stuck.
        tids = [t.id for t in roots] + ([] if python else [t.id for t in unnamed])
        tid_set = set(tids)
        rids = list(dict.fromkeys(t.waits.resource for t in roots if t.waits is not None))
        behind = [b for b in self.graph.behind(tids, rids) if b not in tid_set]
        behind_set = set(behind)
        behind += [t.id for t in waiters if t.id not in root_ids and t.id not in behind_set]
        words = ["; ".join(_wait_text(t, self.resources) for t in roots[:10])
                 + (f"; and {len(roots) - 10} more" if len(roots) > 10 else "") + "."]
        missing: list[str] = []
        pid = self.snap.processes[self.process_of[waiters[0].id]].pid or "PID"
        for t in unnamed[:10]:
            top = t.frames[0]
            where = f"{base_name(top.function)} ({top.where()})"
            words.append(f"{t.label()} is off the CPU in {where}, inside a call the dump "
                         "does not name.")
            missing.append(f"what {t.label()} waits for in {where} is not in the dump (a lock "
                           f"acquire, a sleep or I/O look alike here); `pystack remote {pid}` "
                           f"or `py-spy dump --native --pid {pid}` would show the call")
        unowned = [r for r in rids if (res := self.resources.get(r)) is not None
                   and res.kind in OWNED_KINDS and not res.owners]
        unowned_set = set(unowned)
        for r in unowned[:10]:
            missing.append(self._owner_hint(self.resources[r]))
        lock_roots = [t for t in roots if t.waits is not None
                      and t.waits.resource in unowned_set]
        # Every root waits for a lock nobody visible is known to hold, on at least two locks:
        # if each holds what another waits for, a cycle; the dump lacks the owners to say.
        # Python: the holder of a Lock is a live thread or none (a thread that ended holding
        # it); with every thread shown and none able to run but sleepers, it is one of these
        # waiters (the lock waiter itself, or a thread that joins it) or an abandoned lock.
        # (A Python join on a thread the dump does not identify, beside them, waits behind one.)
        py_joins = [t for t in roots if python and self._unknown_join(t)]
        lock_cycle = (not unnamed and len(lock_roots) + len(py_joins) == len(roots)
                      and (len(unowned_set) > 1 or (python and bool(lock_roots))))
        if python and excerpt and lock_roots:
            return  # the holder may be a thread the paste lacks: the hang rule names the wait
        if lock_cycle and python:  # each blocked thread may be a holder: all are parties
            extra = [t.id for t in blocked if t.id not in root_ids]
            if len(unowned_set) == 1 and not extra and len(roots) == 1:
                lock_cycle = False  # a lone waiter: a lock an ended thread kept is as likely
            else:
                tids += extra
                behind = [b for b in behind if b not in set(extra)]
                if len(unowned_set) == 1:
                    missing.append("a thread that ended while holding the lock (a release "
                                   "skipped on an error path) leaves the same picture: then "
                                   "it is a stall, not a cycle")
        # Every root waits for a thread the dump does not name: the holder of one lock, or
        # the thread a join waits for (Java's Thread.join names no thread). That thread is
        # one of the waiters (the waiter itself, a thread waiting behind it), a sleeper, or
        # one that exited. Any waiter closes a cycle: name them all as parties. (Python's
        # own reading of the same, above, also weighs joins that may end.)
        joins = [t for t in roots if self._unknown_join(t)]
        holders: list[Thread] = []
        if not python and not unnamed and len(lock_roots) + len(joins) == len(roots) \
                and (len(unowned_set) == 1 or (joins and len(unowned_set) <= 1)):
            holders = [*roots, *(t for t in waiters if t.id not in root_ids)]
            if len(holders) < 2:
                holders = []  # a lone waiter: a lock left held by an exited thread as likely
        lock_cycle = lock_cycle or bool(holders)
        if sleepers and not lock_cycle and not python:
            return  # a sleeper may wake and end these waits: nothing to claim
        for t in sleepers[:4]:
            missing.append(f"{t.label()} sleeps and will run again: if it holds one of these "
                           "locks, it may release it" if lock_cycle else
                           f"{t.label()} sleeps and will run again: if it would then signal "
                           "what these threads wait for, they are not stuck; a second dump a "
                           "while later showing them at the same lines rules it out"
                           + (f" (py-spy dump --pid {pid})" if python else ""))
        if excerpt:
            missing.append(self._capture_all())
        if len(lock_roots) + len(unnamed) > 1 and lock_roots:
            missing.append("if each lock waiter holds a lock another one waits for, this is a "
                           "deadlock; the dump does not show which locks a thread holds")
        goroutines = roots[0].id.startswith("goroutine ")
        if goroutines:
            words.extend(self._channel_words(roots))
            if any(t.detail == "select" for t in roots):
                missing.append("a goroutine in select may also have a timer case (time.After, "
                               "a ticker) that the dump does not show; the Go runtime's own "
                               "check counts timers")
            proc = self.snap.processes[self.process_of[roots[0].id]]
            signal_waits = [t for t in proc.threads if t.detail == "signal wait"]
            if signal_waits:
                missing.append("os/signal's goroutine waits for a signal (signal.Notify): a "
                               "signal from outside could still run the program's handler, and "
                               "it also keeps the Go runtime from reporting \"all goroutines "
                               "are asleep\" itself")
        if inert:
            who_inert = ", ".join(t.label() for t in inert[:4])
            words.append(f"{who_inert}: asleep in a `while True:` loop that calls nothing but "
                         "the sleep (read from the source), so it can wake no one.")
            missing.append(f"that {who_inert} does nothing but sleep is read from the source "
                           "beside the dump, assumed to be the code that ran")
        if excerpt:
            words.append("No thread the paste shows can run, but the paste lacks threads of "
                         "the process: one of those may end these waits.")
        elif sleepers:
            words.append("No thread of the process is running: the others are idle, finished, "
                         "waiting behind these, or asleep ("
                         + ", ".join(t.label() for t in sleepers[:4]) + ").")
        elif unnamed and python:
            words.append("No thread of the process is seen running: the others are idle, "
                         "finished, waiting behind these, or in calls the dump does not name "
                         "(which may be a sleep, and end).")
        elif inert:
            words.append("Every other thread of the process is idle, finished, waiting behind "
                         "these or only sleeps: none of these waits can end from inside it.")
        else:
            words.append("Every other thread of the process is idle, finished or waiting "
                         "behind these: no thread in this process can run, so none of these "
                         "waits can end from inside it.")
        if timers:
            names_t = ", ".join(f"{t.label()} ({t.detail})" for t in timers[:4]) + (
                f" and {len(timers) - 4} more" if len(timers) > 4 else "")
            words.append(f"{names_t} may be waiting for a timer (a time.Ticker's channel, "
                         "time.After), which would wake them; they are not counted as stuck.")
            missing.append(f"{names_t}: whether a timer feeds the channel is not in a goroutine "
                           "dump (the Go runtime's own check counts timers); a dump taken a "
                           "few minutes later showing ', N minutes' on these waits rules it out")
        confidence: Confidence = ("possible" if unnamed or lock_cycle or timers or sleepers
                                  or excerpt else "probable")
        if confidence == "probable" and all(
                t.waits is None or t.waits.duration is None for t in roots):
            # The assumption "probable" rests on, stated: the waits last. One snapshot of a
            # busy program can catch every thread just signalled and not yet back on a CPU.
            missing.append("the dump does not say how long the threads have waited: threads "
                           "woken just before it was taken look the same; a second dump a few "
                           "seconds later that shows the same waits rules that out ("
                           f"{self._capture_command()})")
        first = roots[0]
        others = f" and {len(tids) - 1} more thread(s)" if len(tids) > 1 else ""
        if holders:
            parts = []
            if unowned:
                lock_name = _res_name(self.resources.get(unowned[0]), unowned[0])
                lockers = ", ".join(t.label() for t in lock_roots[:4]) + (
                    f" and {len(lock_roots) - 4} more" if len(lock_roots) > 4 else "")
                parts.append(f"{lockers} wait(s) for {lock_name}, whose holder the dump does "
                             "not show")
                words.append(f"Whoever holds {lock_name} is one of these waiters (a thread that "
                             "takes a lock it already holds waits for itself; one that holds "
                             "it while waiting for the lock's waiter waits in a cycle), a "
                             "sleeping thread, or a thread that exited holding it.")
                missing.append(f"if a thread exited while holding {lock_name}, no thread here "
                               "is in a cycle: the lock was abandoned (a stall)")
            if joins:
                joiners = ", ".join(t.label() for t in joins[:4])
                parts.append(f"{joiners} wait(s) for a thread to finish that the dump does not "
                             "name")
                words.append(f"The thread {joiners} joins is alive (a finished thread ends a "
                             "join), so it is one of the waiters here or a sleeping thread; "
                             "if it is a waiter, the join closes a cycle.")
                missing.append(f"which thread {joiners} joins is not in a thread dump (the "
                               "wait names only the Thread object's address): a heap dump "
                               "(`jcmd PID GC.heap_dump FILE`) shows that object's name")
            behind_h = [t for t in holders if t.id not in root_ids]
            summary = ("; ".join(parts)
                       + ("; " + ", ".join(t.label() for t in behind_h[:4])
                          + " wait(s) behind them" if behind_h else "")
                       + ": no other thread can run, so if those unseen threads are among "
                       "these waiters, they wait for each other in a cycle")
            tids = [t.id for t in holders]
            tid_set = set(tids)
            behind = [b for b in behind if b not in tid_set]
        elif lock_cycle and len(unowned_set) == 1:  # Python: one lock, its holder not shown
            res1 = self.resources[unowned[0]]
            others_w = [self.threads[i].label() for i in tids if i != lock_roots[0].id][:4]
            # (a thread re-entering an RLock it holds does not wait: no self-deadlock there)
            ifs_self = [] if res1.kind == "rlock" else ["it holds it itself (a self-deadlock)"]
            ifs = ifs_self + (
                [f"{', '.join(others_w)}, which wait(s) for it, holds it"] if others_w
                else [] if ifs_self else ["a thread that waits behind it holds it"])
            summary = (f"{lock_roots[0].label()} waits for {res1.named()}, whose holder the "
                       "dump does not show, and no thread that could release it can run: if "
                       + " or ".join(ifs) + ", they wait in a cycle")
        elif lock_cycle:
            names = ", ".join(t.label() for t in lock_roots[:4]) + (
                f" and {len(lock_roots) - 4} more" if len(lock_roots) > 4 else "")
            summary = (f"{names} each wait for a lock whose holder the dump does not show, and "
                       "nothing else in the process can run: if each holds what another waits "
                       "for, they wait for each other in a cycle")
        elif python and (unnamed or sleepers or excerpt):
            res_first = self.resources.get(first.waits.resource) if first.waits else None
            head = (f"{first.label()} waits on {_res_name(res_first, roots[0].id)}"
                    if first.waits is not None else first.label())
            head += f" (and {len(tids) - 1} more)" if len(tids) > 1 else ""
            if unnamed:
                tail = ("no thread of this process is seen running ("
                        + ", ".join(t.label() for t in unnamed[:3])
                        + (" and more" if len(unnamed) > 3 else "")
                        + " stopped in calls the dump does not name): if those are waits too, "
                        "nothing can wake it")
            elif sleepers:
                tail = ("the only threads able to run are asleep ("
                        + ", ".join(t.label() for t in sleepers[:3])
                        + (" and more" if len(sleepers) > 3 else "")
                        + "): unless one of them would signal it, nothing will")
            else:
                tail = ("no thread the paste shows can run; the threads it lacks might")
            summary = f"{head}; {tail}"
        elif unnamed:
            summary = (f"no thread of this process is seen running: {first.label()}{others} "
                       "are off the CPU; if the unnamed calls are waits too, nothing can wake "
                       "them")
        elif goroutines:
            summary = (f"all goroutines are asleep: {first.label()}{others} wait and none can "
                       "run (what the Go runtime reports as \"all goroutines are asleep\"; it "
                       "did not say so here)")
        elif inert:
            summary = (f"nothing in this process can wake {first.label()}{others}: the only "
                       "threads that run (" + ", ".join(t.label() for t in inert[:3])
                       + ") do nothing but sleep")
        else:
            summary = (f"nothing in this process can run: {first.label()}{others} wait, and "
                       "no thread is left to wake them")
        self.findings.append(Finding(
            kind="deadlock" if lock_cycle else "stall", confidence=confidence, summary=summary,
            explanation=" ".join(words), threads=tids, resources=rids, blocked_behind=behind,
            missing_evidence=missing,
            details={"whole_process": True,
                     "evidence": "every thread of the process is shown and none can run"}))
        self.covered.update(tids)
        self.covered.update(behind)

    # stall --------------------------------------------------------------------------------
    def stalls(self) -> None:
        certain_processes = {self.process_of[t] for f in self.stated
                             if f.kind == "stall" for t in f.threads if t in self.process_of}
        stated_words = {self.process_of[t]: f.summary for f in self.stated if f.kind == "stall"
                        for t in f.threads if t in self.process_of}
        for pi, proc in enumerate(self.snap.processes):
            waiters: list[Thread] = []
            proven = pi in certain_processes
            progressing = sum(1 for o in proc.threads if _can_progress(o))
            # Only sleepers and deadline waits can run: nothing runs code now, and what could
            # end a signalled wait would have to do so when its timer fires. (Counted once,
            # when a signalled wait first needs it.)
            timers: list[Thread] | None = None
            awake = 0
            timer_waiters: list[Thread] = []
            parked_visible = any(o.state in ("idle", "dead") for o in proc.threads)
            # An excerpt that visibly lacks threads: who would end a wait may be among them,
            # so "no other thread can" is not known (calibration).
            excerpt = proc.complete is False
            working = Working(proc.threads)  # reads the threads only if a future wait asks
            for t in proc.threads:
                if t.id in self.covered or t.state != "blocked" or t.waits is None:
                    continue
                if not t.waits.durable:
                    continue
                others_progress = progressing - (1 if _can_progress(t) else 0) > 0
                res = self.resources.get(t.waits.resource)
                kind = res.kind if res is not None else "unknown"
                if kind in OWNED_KINDS:
                    owners = res.owners if res is not None else []
                    if proven or (owners and not excerpt
                                  and all(o not in self.threads for o in owners)):
                        waiters.append(t)
                    elif not owners and parked_visible and not others_progress and not excerpt:
                        # The rest of the process is visible and parked: the owner, whoever
                        # it is, cannot run either.
                        waiters.append(t)
                    elif owners and proc.complete and all(
                            o in self.threads and self.threads[o].state == "idle"
                            for o in owners):
                        # The owner is idle (a pool worker between tasks, which ended one
                        # holding the lock): it releases it only if it is handed work, which
                        # nothing able to run does, unless a thread woken by its timer would.
                        if not others_progress:
                            waiters.append(t)
                        else:
                            if timers is None:
                                timers = [o for o in proc.threads
                                          if _on_timer(o, self.resources)]
                                awake = progressing - len(timers)
                            if awake <= 0:
                                timer_waiters.append(t)
                    continue
                if self.graph.owned_by.get(t.waits.resource):
                    continue  # someone holds it: a chain, judged by the hang rule
                if excerpt and not proven and kind == "thread":
                    continue  # a join on a thread the excerpt may have left out: says nothing
                if not proven and self._unknown_join(t) and any(
                        o.id in self.covered for o in proc.threads):
                    continue  # joins a thread not named, beside a finding: likely its victim
                if not proven and t.detail in TIMER_SERVED and (
                        t.waits.duration is None or t.waits.duration < TIMER_RULED_OUT):
                    continue  # a Go receive or select a timer may end: nothing to claim
                if proven:
                    waiters.append(t)
                    continue
                if res is not None and res.wakers is not None:
                    wakers = self._possible_wakers(t, res, proc.threads)
                    if not any(_can_progress(w) for w in wakers):
                        waiters.append(t)
                    continue
                k = self.known.get(t.id)
                if k is not None and not k.busy:
                    # Knowledge names the possible wakers: other threads running elsewhere
                    # do not keep this wait from being a stall, one of them running does.
                    if k.can_be_woken():
                        continue
                    if others_progress and k.has_wakers():
                        waiters.append(t)
                        self.knowledge_only.add(t.id)
                        continue
                if not others_progress:
                    waiters.append(t)
                elif (kind in SIGNALLED_KINDS or (kind == "future"
                                                  and not working.in_task_besides(t.id))) \
                        and proc.complete is not None \
                        and t.detail != PARKED_FOR_GOOD:
                    # (a future is signalled too, by the pool worker that runs its task: with
                    # none inside a task, only a thread woken by its timer could start one)
                    if timers is None:
                        timers = [o for o in proc.threads if _on_timer(o, self.resources)]
                        awake = progressing - len(timers)
                    if awake - (1 if _can_progress(t) else 0) <= 0:
                        timer_waiters.append(t)
            if waiters:
                self._stall_finding(waiters, proc.threads, proven, stated_words.get(pi),
                                    excerpt=excerpt)
            if timer_waiters:
                self._stall_finding(timer_waiters, proc.threads, proven, None, excerpt=excerpt,
                                    timers=[o for o in timers or () if o.id not in self.covered])

    def _possible_wakers(self, t: Thread, res: Resource | None,
                         process_threads: list[Thread]) -> list[Thread]:
        if res is not None and res.wakers is not None:
            return [self.threads[w] for w in res.wakers if w in self.threads and w != t.id]
        return [o for o in process_threads if o.id != t.id]

    def _stall_finding(self, waiters: list[Thread], process_threads: list[Thread],
                       proven: bool, stated: str | None, excerpt: bool = False,
                       timers: list[Thread] | None = None) -> None:
        """``timers``: threads that only wait for time to pass and will run again: any of
        them might end the waits when it does, so the claim is at most possible."""
        tids = [t.id for t in waiters]
        rids = list(dict.fromkeys(t.waits.resource for t in waiters if t.waits is not None))
        tid_set = set(tids)
        others = [o for o in process_threads if o.id not in tid_set]
        idle = [o.id for o in others if o.state == "idle"]
        blocked = [o.id for o in others if o.state == "blocked"]
        dead = [o.id for o in others if o.state == "dead"]
        behind = self.graph.behind(tids, rids)
        behind = [b for b in behind if b not in tid_set]
        missing: list[str] = []
        lockers = [] if proven else blocked_on_waiters_locks(tids, behind, self.graph,
                                                              self.resources)
        if lockers:  # each may be the signaller: a party to the stall, not only its victim
            locker_ids = {b for b, _, _ in lockers}
            tids += [b for b, _, _ in lockers]
            behind = [b for b in behind if b not in locker_ids]
            missing.append("; ".join(
                f"{_name(self.threads.get(b), b)} waits for "
                f"{_res_name(self.resources.get(r), r)}, which {_name(self.threads.get(h), h)} "
                "holds while it waits" for b, r, h in lockers[:4])
                + ": if one of them is the thread that would signal, they wait for each other "
                "(a deadlock through the wait); a dump does not show who signals what")
        known = {t.id: k for t in waiters if (k := self.known.get(t.id)) is not None
                 and not k.busy}
        known_rids = {k.thread.waits.resource for k in known.values()
                      if k.thread.waits is not None}
        by_knowledge = [t for t in tids if t in self.knowledge_only]
        wakers_known = all(
            self.resources.get(r) is not None and self.resources[r].wakers is not None
            for r in rids)
        absent_owner = []
        for t in waiters:
            assert t.waits is not None
            res = self.resources.get(t.waits.resource)
            if res is not None and res.kind in OWNED_KINDS and res.owners and all(
                    o not in self.threads or self.threads[o].state == "idle"
                    for o in res.owners):
                present = [o for o in res.owners if o in self.threads]
                said = (f"{_res_name(res, res.id)} is owned by "
                        + (f"{', '.join(_name(self.threads[o], o) for o in present)}, which "
                           "is idle, waiting for work, and releases it only if handed a task"
                           if present else f"{', '.join(res.owners)}, which is not in the "
                           "dump (exited while holding it?)"))
                if said not in absent_owner:
                    absent_owner.append(said)
        if proven or wakers_known:
            confidence: Confidence = "certain"
        else:
            unowned_wait = any(
                self.resources.get(r) is not None and self.resources[r].kind in OWNED_KINDS
                and not self.resources[r].owners for r in rids)
            confidence = "probable" if not any(o.state == "unknown" for o in others) \
                and not unowned_wait and not by_knowledge else "possible"
            for r in rids:
                if r in known_rids:
                    continue  # knowledge says who could signal it (below)
                res = self.resources.get(r)
                if res is not None and res.kind in OWNED_KINDS and res.owners:
                    continue  # a lock is released by its owner, named above: no signaller
                missing.append(f"which thread would signal {_res_name(res, r)} is not in the "
                               "dump: every other thread of the process counts as a possible "
                               "waker")
            unowned = [r for r in rids if self.resources.get(r) is not None
                       and self.resources[r].kind in OWNED_KINDS
                       and not self.resources[r].owners]
            if unowned:
                missing.append("which thread holds " + ", ".join(
                    _res_name(self.resources.get(r), r) for r in unowned)
                    + " is not in the dump; if the waiters hold what the others want, this is a "
                    "deadlock (gdb: print the mutex and read __owner)")
            if len(waiters) > 1 and len(known) < len(waiters) and len(absent_owner) < len(rids):
                missing.append("if these waiters are meant to wake each other, this is a "
                               "deadlock through conditions; the dump cannot show which "
                               "signals which")
        if timers:
            confidence = "possible"
            names_t = ", ".join(f"{o.label()} ({o.state})" for o in timers[:4]) + (
                f" and {len(timers) - 4} more" if len(timers) > 4 else "")
            missing.append(f"{names_t} only wait(s) for time to pass and will run again: if "
                           "one of them ends these waits when it wakes, they are not stuck; "
                           "a second dump a minute later showing the same waits rules that out "
                           f"({self._capture_command()})")
        if excerpt and not proven and not wakers_known:
            # The claim "nothing can wake it" needs the threads the excerpt left out.
            confidence = "possible"
            missing.append(self._capture_all())
        knowledge_words: list[str] = []
        by_rule: dict[str, list[_Known]] = {}
        for k in known.values():
            by_rule.setdefault(k.rule.name, []).append(k)
        for group in by_rule.values():
            first_k = group[0]
            who = first_k.thread.label() + (f" (and {len(group) - 1} more)"
                                            if len(group) > 1 else "")
            words_k, missing_k = self._known_words(first_k.thread, first_k, who)
            knowledge_words.append(words_k)
            missing.extend(m for m in missing_k if m not in missing)
        waits = "; ".join(_wait_text(t, self.resources) for t in waiters[:10])
        if len(waiters) > 10:
            waits += f"; and {len(waiters) - 10} more"
        words = [waits + "."]
        if waiters[0].id.startswith("goroutine "):
            words.extend(self._channel_words(waiters))
        if stated:
            words.append(f"The runtime itself reported it: {stated}.")
        elif absent_owner:
            words.extend(absent_owner)
        else:
            state_words = []
            if idle:
                state_words.append(f"{len(idle)} idle ("
                                   + ", ".join(_name(self.threads.get(i), i) for i in idle[:6])
                                   + (", …" if len(idle) > 6 else "") + ")")
            if blocked:
                state_words.append(f"{len(blocked)} blocked themselves")
            if dead:
                state_words.append(f"{len(dead)} finished")
            if timers:
                words.append("No thread of the process runs code now: the others "
                             + (f"are {', '.join(state_words)}, or " if state_words else "")
                             + "wait only for time to pass ("
                             + ", ".join(o.label() for o in timers[:4])
                             + (", …" if len(timers) > 4 else "") + ").")
            elif by_knowledge:
                words.append("Other threads of the process are running, but none of those "
                             "that could end these waits.")
            elif not others:
                words.append("No thread that could wake it is running: "
                             + ("it is the only thread of its process." if len(waiters) == 1
                                else f"all {len(waiters)} threads of the process wait here."))
            elif state_words:
                words.append("No thread that could wake it is running: the other threads are "
                             + ", ".join(state_words) + ".")
            else:
                words.append("No thread that could wake it is running.")
            if idle:
                words.append("Idle workers wait for work that nobody is left to hand them.")
        words.extend(knowledge_words)
        first = waiters[0]
        assert first.waits is not None
        res0 = self.resources.get(first.waits.resource)
        summary = (f"{first.label()} waits on {_res_name(res0, first.waits.resource)}"
                   + (f" (and {len(waiters) - 1} more)" if len(waiters) > 1 else "")
                   + ("; no thread that could wake it runs: the only ones that can run again "
                      "just wait for time to pass" if timers
                      else "; no thread that could wake it is able to run"))
        details: dict[str, object] = {"idle": idle, "blocked": blocked, "finished": dead}
        if known:
            details["knowledge"] = list(dict.fromkeys(k.rule.name for k in known.values()))
        self.findings.append(Finding(
            kind="stall", confidence=confidence, summary=summary, explanation=" ".join(words),
            threads=tids, resources=rids, blocked_behind=behind, missing_evidence=missing,
            details=details))
        self.covered.update(tids)
        self.covered.update(behind)

    # stalls only the library's own words reveal -------------------------------------------
    def evidence_stalls(self) -> None:
        """Threads in a long call into a library (a goroutine in a cgo call) while the text
        says the library is in a state that makes such calls wait (RocksDB: writes stopped),
        and nothing shows the work that would end it under way: a stall on that state."""
        for pi, proc in enumerate(self.snap.processes):
            by_rule: dict[str, list[_Known]] = {}
            for t in proc.threads:
                k = self.known.get(t.id)
                if k is None or k.rule.wait != "call" or t.id in self.covered or k.busy:
                    continue
                if k.can_be_woken():
                    continue
                by_rule.setdefault(k.rule.name, []).append(k)
            for group in by_rule.values():
                self._evidence_stall(pi, group)

    def _evidence_stall(self, pi: int, group: list[_Known]) -> None:
        rule = group[0].rule
        rid = f"knowledge{pi + 1}:{rule.name}"
        if rid not in self.resources:
            res = Resource(id=rid, kind="condition",
                           label=f"{rule.library} {rule.on.removeprefix('the ')}")
            self.snap.resources.append(res)
            self.resources[rid] = res
        waiters = [k.thread for k in group]
        tids = [t.id for t in waiters]
        idle_pool = group[0].has_wakers()  # wakers seen, and none can run (checked above)
        quiet = bool(rule.busy) and all((f := self.facts.get(n)) is not None and f.value == 0
                                        for n in rule.busy)
        confidence: Confidence = "probable" if idle_pool or quiet else "possible"
        words = ["; ".join(_wait_text(t, self.resources) for t in waiters[:10])
                 + (f"; and {len(waiters) - 10} more" if len(waiters) > 10 else "") + "."]
        others = f" (and {len(waiters) - 1} more)" if len(waiters) > 1 else ""
        words_k, missing = self._known_words(waiters[0], group[0], waiters[0].label() + others)
        words.append(words_k)
        if not quiet:
            fields = evidence_fields(rule.busy)
            missing.append("nothing in the text shows whether the work that would end the wait "
                           "is scheduled or under way"
                           + (f" (printed fields that would: {', '.join(fields)})"
                              if fields else ""))
        summary = (f"{waiters[0].label()}{others} waits in {rule.library} on {rule.on}; "
                   f"nothing shows {self._roles_what(rule)} able to lift it")
        behind = [b for b in self.graph.behind(tids) if b not in set(tids)]
        self.findings.append(Finding(
            kind="stall", confidence=confidence, summary=summary, explanation=" ".join(words),
            threads=tids, resources=[rid], blocked_behind=behind, missing_evidence=missing,
            details={"knowledge": [rule.name],
                     "facts": [f.text for f in self.facts.values()
                               if f.name.startswith(rule.library.lower() + ".")]}))
        self.covered.update(tids)
        self.covered.update(behind)

    # lock order ---------------------------------------------------------------------------
    def lock_orders(self) -> None:
        for f in self.stated:
            if f.kind == "lock-order":
                self.findings.append(f)

    # stated deadlocks the graph could not confirm -----------------------------------------
    def stated_deadlocks(self) -> None:
        for f in self.stated:
            if f.kind != "deadlock":
                continue
            if all(t in self.covered for t in f.threads):
                continue
            # Keep only threads on a closed loop of the stated edges; the rest are victims.
            succ = {e.thread: e.held_by for e in f.cycle}
            on_loop: list[str] = []
            for start in succ:
                seen: list[str] = []
                node: str | None = start
                while node is not None and node not in seen:
                    seen.append(node)
                    node = succ.get(node)
                if node is not None and node == start:
                    on_loop = seen
                    break
            if not on_loop:
                continue
            loop_set = set(on_loop)
            cycle = [e for e in f.cycle if e.thread in loop_set]
            behind = [t for t in dict.fromkeys(list(f.threads) + list(succ)) if t not in loop_set]
            self.findings.append(Finding(
                kind="deadlock", confidence=f.confidence, summary=f.summary,
                explanation=f.explanation, threads=on_loop,
                resources=list(dict.fromkeys(e.waits_for for e in cycle)), cycle=cycle,
                blocked_behind=behind, missing_evidence=[*f.missing_evidence,
                    "taken from the dump's own deadlock report; the thread stacks do not show it"],
                details=f.details))
            self.covered.update(on_loop)
            self.covered.update(behind)

    # hang ---------------------------------------------------------------------------------
    def hangs(self) -> None:
        by_root: dict[str, list[str]] = {}
        peer_root: dict[str, str] = {}  # resource -> first unowned waiter on it
        roots = self.graph.roots()
        for proc in self.snap.processes:
            idle_process = proc.complete is not False and not any(
                t.state in ("running", "io", "sleeping") for t in proc.threads)
            working = Working(proc.threads)
            for t in proc.threads:
                if t.id in self.covered or t.waits is None:
                    continue
                long = t.waits.duration is not None and t.waits.duration >= self.hang_after
                if t.detail in TIMER_SERVED and not long:
                    continue  # a Go receive or select a timer may end at any moment
                if not long and self._unknown_join(t) and any(
                        o.id in self.covered for o in proc.threads):
                    continue  # joins a thread not named, beside a finding: likely its victim
                if not long and proc.name == "python" and self._join_runs_on(t, proc):
                    continue  # the joined thread may still be running: it ends the join
                if t.state == "blocked" and t.waits.durable:
                    # A source that shows every thread but no durations (Python dumps): a
                    # lock wait with no timeout is worth naming, as a possible hang.
                    res = self.resources.get(t.waits.resource)
                    # (an excerpt too: the lock waiter is in the text, its holder may not be)
                    lock_wait = (proc.complete is not None and t.waits.duration is None
                                 and res is not None
                                 and (res.kind in OWNED_KINDS or res.kind == "future"
                                      or self._joins_holding(t)))
                    if lock_wait and ordinary_wait(t, res, working):
                        continue  # contention or a future in the works, caught in a snapshot
                    if not (long or lock_wait or (t.waits.duration is None and idle_process)):
                        continue
                elif not long and not self._child_wait(t, proc):
                    continue
                root = roots.get(t.id, t.id)
                if root in self.covered:
                    continue
                if root == t.id and t.waits.resource in peer_root:
                    root = peer_root[t.waits.resource]  # same wait, no known owner: peers
                elif root == t.id:
                    peer_root[t.waits.resource] = t.id
                by_root.setdefault(root, []).append(t.id)
        for root, members in by_root.items():
            root_t = self.threads[root]
            peers = [m for m in members if m != root and root_t.waits is not None
                     and self.graph.waits_on.get(m) == root_t.waits.resource]
            peer_set = set(peers)
            behind = [m for m in members if m != root and m not in peer_set]
            seen_behind = set(behind)
            behind += [b for b in self.graph.behind([root], [])
                       if b not in seen_behind and b != root]
            rids: list[str] = []
            words = []
            for m in members:
                w = self.threads[m].waits
                if m != root and w is not None and w.resource not in rids:
                    rids.append(w.resource)
            if root_t.waits is not None and root_t.waits.resource not in rids:
                rids.append(root_t.waits.resource)
            missing = [f"owner of {_res_name(self.resources.get(r), r)}: {self.inferred[r]}"
                       for r in rids if r in self.inferred]
            if root_t.waits is not None:
                res = self.resources.get(root_t.waits.resource)
                words.append(_wait_text(root_t, self.resources) + ".")
                if res is not None and res.kind == "future" and not res.owners:
                    proc = self.snap.processes[self.process_of[root]]
                    idle = [o.label() for o in proc.threads if o.state == "idle"]
                    missing.append("which thread runs the future is not in the dump"
                                   + (f"; every pool worker shown is idle ({', '.join(idle[:4])}"
                                      + (", …" if len(idle) > 4 else "") + ")" if idle else "")
                                   + ": the one running it may be cut from the dump or waiting "
                                   "outside Python (a subprocess, a socket); py-spy dump "
                                   "--native or a complete dump would show it")
                elif res is not None and self._joins_holding(root_t):
                    held = ", ".join(_res_name(self.resources.get(h), h)
                                     for h in root_t.holds[:3])
                    missing.append(f"{root_t.label()} holds {held} while it joins a thread the "
                                   "dump does not show: if that thread needs it, they wait for "
                                   "each other (a deadlock); a complete dump shows the joined "
                                   "thread ("
                                   + ("jstack -l PID" if "jstack" in (self.snap.source.format
                                                                     or "")
                                      else "py-spy dump --locals --pid PID") + ")")
                elif res is not None and res.kind in ("pipe", "socket") \
                        and root_t.waits.direction == "write":
                    fd = res.label.split(" to be read", 1)[0]
                    missing.append(
                        f"who would read {fd} is not in a thread dump, and no thread of this "
                        "process reads, polls or runs: if its read end is held by this process "
                        "(a pipe inside one process, or one a child shares while this process "
                        "waits for it), nothing will drain it; `stuck capture PID` reads "
                        "/proc/PID/fd and fdinfo and names who holds the other end")
                elif res is not None and res.kind == "process":
                    missing.append(
                        f"whether {res.label.removesuffix(' to exit')} can exit is not in this "
                        "dump (nothing else in this process runs): if it waits on this one (a "
                        "pipe this process should read or close), the two wait for each other; "
                        "capture both with `stuck capture --tree PID`, or dump the child too "
                        "(gdb -p CHILD -batch -ex 'thread apply all bt')")
                elif res is not None and res.label.startswith("cgo call"):
                    missing.append("what the C code called here waits for is not in a goroutine "
                                   "dump: take a native backtrace too (gdb -p PID -batch -ex "
                                   "'thread apply all bt')")
                elif (res is not None and res.kind in OWNED_KINDS and not res.owners
                      and self.snap.processes[self.process_of[root]].complete):
                    missing.append(self._owner_hint(res))  # the command for this source
                elif res is not None and not self.graph.owned_by.get(res.id):
                    missing.append(f"who holds or would end the wait on {_res_name(res, res.id)} "
                                   "is not in the dump")
            else:
                words.append(f"{root_t.label()} is {root_t.state}"
                             + (f" in {base_name(root_t.frames[0].function)}"
                                if root_t.frames else "") + ".")
            if behind:
                first = self.threads[behind[0]]
                words.append(f"{len(behind)} thread(s) wait behind it"
                             + (f", e.g. {_wait_text(first, self.resources)}"
                                if first.waits is not None else "") + ".")
            words.append("No cycle and no idle-only wake-up set is proven, so this is reported "
                         "as a hang, not a deadlock.")
            durations: list[float] = []
            for m in members:
                w = self.threads[m].waits
                if w is not None and w.duration is not None:
                    durations.append(w.duration)
            longest = max(durations) if durations else None
            summary = (_wait_text(root_t, self.resources) if root_t.waits is not None
                       else f"{root_t.label()} is {root_t.state}")
            if peers:
                summary += f" (and {len(peers)} more waiting for the same)"
            summary += (f"; {len(behind)} thread(s) blocked behind it" if behind else "")
            summary += "; nothing in the dump shows what would end it"
            if longest is None:
                missing.append("the dump does not say how long the threads have waited")
            if self.snap.processes[self.process_of[root]].complete is False:
                missing.append(self._capture_all())
            self.findings.append(Finding(
                kind="hang", confidence="possible", summary=summary, explanation=" ".join(words),
                threads=[root, *peers], resources=rids, blocked_behind=behind,
                missing_evidence=missing))
            self.covered.add(root)
            self.covered.update(peers)
            self.covered.update(behind)

    def runtime_rules(self) -> None:
        """A runtime's own semantics where the model alone says too little (a Go dump in
        which no goroutine runs: ``stuck.dumps.goquiet``); the threads it judged, stuck or
        able to run again, are left alone by the rules after it."""
        from stuck.dumps.goquiet import judge

        findings, judged = judge(self.snap, self.stated, self.covered, self.findings,
                                 self.resources)
        self.findings.extend(findings)
        self.covered.update(judged)
        for f in findings:
            self.covered.update(f.blocked_behind)

    def run(self) -> list[Finding]:
        self.deadlocks()
        self.stated_deadlocks()
        self.runtime_rules()
        self.process_stalls()
        self.stalls()
        self.evidence_stalls()
        self.lock_orders()
        self.hangs()
        return self.findings


def analyze(snapshot: Snapshot, stated: Iterable[Finding] = (),
            inferred: dict[str, str] | None = None, hang_after: float = HANG_AFTER) -> Report:
    """Classify, infer, apply the rules and group stacks: the Report every format renders."""
    infer_native_waits(snapshot)
    for proc in snapshot.processes:  # "no progress for N s": every wait is at least that old
        if proc.no_progress_for is not None:
            for t in proc.threads:
                if t.waits is not None and t.waits.duration is None:
                    t.waits.duration = proc.no_progress_for
    findings = _Analysis(snapshot, list(stated), inferred or {}, hang_after).run()
    findings = _recorded_rules(snapshot, findings)
    groups = _group_threads(snapshot)
    return Report(snapshot=snapshot, findings=findings, groups=groups)


def _recorded_rules(snapshot: Snapshot, findings: list[Finding]) -> list[Finding]:
    """Processes whose primitives carry a live source's facts (a saved ``stuck run`` report)
    get their stalls and deadlocks from ``stuck.rules.evaluate``, the one rule that decided
    them when the program ran, so both say the same."""
    sub = recorded_part(snapshot)
    if sub is None:
        return findings
    ids = {t.id for t in sub.threads()}
    # A cycle through an asyncio task (a task holding a thread's lock across an await of a
    # call that thread runs): the rules leave tasks to the event-loop rule, so the wait-for
    # graph's cycle stands, and its threads are not judged again without their task.
    with_tasks = [f for f in findings if f.kind == "deadlock"
                  and any(t.startswith("task:") for t in f.threads)]
    covered = {t for f in with_tasks for t in f.threads}
    for f in with_tasks:  # as the live rule judged it (stuck.rules.confidence)
        task_thread_doubt(f, sub.threads())
    kept = [f for f in findings if f.kind in ("lock-order", "hang") or f in with_tasks
            or not (set(f.threads) | set(f.blocked_behind)) & ids]
    # settle 0: the report is judged as it was saved (its waits lasted what they lasted)
    return kept + [f for f in evaluate(sub, settle=0.0) if not set(f.threads) <= covered]


def _group_threads(snapshot: Snapshot) -> list[Group]:
    """``stuck.groups.group_threads``, with each distinct frame list keyed once.

    Dump parsers share one frame list between threads with the same stack (100,000
    goroutines are usually a few hundred stacks), so the key is computed per list, not per
    thread. The groups, their order and ids are exactly those ``group_threads`` gives.
    """
    keys: dict[int, GroupKey] = {}
    groups: dict[GroupKey, Group] = {}
    for thread in snapshot.threads():
        frames = thread.frames
        fkey = keys.get(id(frames))
        if fkey is None:
            fkey = keys[id(frames)] = group_key(thread.state, frames)
        key = fkey if fkey[0] == thread.state else (thread.state, fkey[1])
        group = groups.get(key)
        if group is None:
            group = Group(id=f"g{len(groups) + 1}", threads=[], frames=list(frames),
                          state=thread.state)
            groups[key] = group
        group.threads.append(thread.id)
        thread.group = group.id
    return list(groups.values())


__all__ = ["Edge", "analyze", "base_name", "classify", "infer_native_waits"]
