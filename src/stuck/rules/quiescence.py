"""Go's own semantics for a complete goroutine dump in which no goroutine is running.

The Go runtime stops a program with "all goroutines are asleep - deadlock!" when no goroutine
can run, none sleeps and no timer is pending. A SIGQUIT dump of a program that a sleeping
goroutine or a timer keeps from that check can show the same state: every goroutine of the
program parked on a channel, a lock, a ``sync.Cond`` or a ``WaitGroup``. This rule reads such
a dump the way the runtime's check would, and says how far the dump supports it:

- **Who can still run.** Goroutines running, runnable, in a system call or in network I/O:
  then the rule claims nothing. Goroutines in ``time.Sleep`` will run again. A goroutine
  receiving (or in ``select``) from a channel that no other goroutine's arguments show, and
  with no goroutine of its own to wait for, may be fed by a timer (a ``time.Ticker``'s
  channel, ``time.After``), which a dump cannot show; it may run again too, unless the runtime
  itself said nothing can (its check counts timers).
- **Who could end a wait.** The goroutines a waiter created (``created by F`` where ``F`` is a
  function on the waiter's stack: a ``WaitGroup`` or a ``done`` channel usually waits for
  them) and the goroutines whose arguments show the waited object's address. A wait one of
  them could end, when that one may run again, is not stuck, unless the program's source
  shows that the code it runs cannot reach the wait (``stuck.stacks.gosource``: a ticker loop
  started by ``go func() {...}()`` that names nothing on the waiter's line and calls only the
  standard library).
- **What is left is stuck**, for good if nothing can run at all. A goroutine whose only
  goroutines to wait for are stuck waits behind them (``main`` joining its workers); a
  goroutine receiving with nothing in particular to wait for waits for work (an idle
  consumer). The others are the roots. One root: its wait needs a goroutine that is gone, a
  **stall**. Two or more: each waits for an action (unlock, receive, signal) that only a
  goroutine of the program can take, and the only ones left are the others; Go records no
  mutex holder and no channel partner, so if they are each other's, a **deadlock**. The same
  for one sender whose lock (its owner inferred) the goroutines behind it wait for: its
  receiver can only be one of them.

Confidence: ``certain`` when the runtime said so itself; ``probable`` when nothing in the dump
can run; ``possible`` when a sleeper or a goroutine a timer may wake could still act (it might
hold the lock, or serve the channel, when it wakes).
"""

from __future__ import annotations

from collections.abc import Iterable

from stuck.model import (
    SIGNAL_WAIT,
    Confidence,
    Finding,
    FindingKind,
    Process,
    Resource,
    Snapshot,
    Thread,
)
from stuck.rules.advice import lacks_threads
from stuck.rules.reading import Reading
from stuck.rules.wording import channel_words
from stuck.stacks import gosource

# Header reasons of waits a timer could end (a Ticker's channel, time.After in a select).
_RECEIVES = frozenset({"chan receive", "select", "chan receive (nil chan)"})
_NEVER = frozenset({"select (no cases)"})  # parked for good by design: ``select {}``
_LONG = 60.0  # seconds: a periodic timer would have fired by then
_LOCKS = frozenset({"mutex", "rwlock"})
_MAX_PARENTS = 64  # goroutines sharing the function a goroutine was created by
_KIND_WORDS = {"mutex": "unlock", "rwlock": "unlock", "channel": "receive or send",
               "condition": "signal", "waitgroup": "call Done", "semaphore": "release"}


def _rw_side(t: Thread) -> str:
    for f in t.frames[:8]:
        if f.function == "sync.(*RWMutex).RLock":
            return ":read"
        if f.function == "sync.(*RWMutex).Lock":
            return ":write"
    return ""


def _goroutines(proc: Process) -> bool:
    return bool(proc.threads) and proc.threads[0].id.startswith("goroutine ")


def _runtime_said(stated: Iterable[Finding], proc: Process) -> Finding | None:
    said = [f for f in stated if f.details.get("source") == "go runtime"]
    if said:
        ids = {t.id for t in proc.threads}
        return next((f for f in said if ids.intersection(f.threads)), None)
    return None


def _label(t: Thread) -> str:
    at = t.waits.at if t.waits is not None else None
    where = at.function if at is not None else next(
        (f.function for f in t.frames if f.function.startswith("main.")), None)
    return f"{t.label()} ({where})" if where else t.label()


class _Process:
    """The goroutines of one process, sorted by what they can still do."""

    def __init__(self, proc: Process, resources: dict[str, Resource], covered: set[str],
                 said: bool, complete: bool, sources: tuple[str, ...] = ()) -> None:
        self.said = said
        self.sources = sources  # --source DIRs: where the Go files may be read
        self.complete = complete or said  # False: an excerpt, or a text that cannot tell
        self.resources = resources
        self.active: list[Thread] = []  # running, runnable, in a syscall or I/O
        self.sleepers: list[Thread] = []
        self.waiting: dict[str, Thread] = {}  # durable waits not yet explained elsewhere
        self.covered: list[Thread] = []  # already in a finding (a proven cycle)
        self.proc = proc
        for t in proc.threads:
            if t.id in covered:
                self.covered.append(t)
            elif t.state in ("idle", "dead") or t.detail in _NEVER:
                continue
            elif t.state == "sleeping":
                self.sleepers.append(t)
            elif t.state == "blocked" and t.waits is not None and t.waits.durable:
                self.waiting[t.id] = t
            else:
                self.active.append(t)
                break  # something runs: the rule claims nothing (see judge)

    def link(self) -> None:
        """Who made whom, and the labels: worked out only when nothing runs."""
        proc = self.proc
        self.signal_waits = [t for t in proc.threads if t.detail == SIGNAL_WAIT]
        self.labels = {t.id: _label(t) for t in proc.threads}
        # function -> goroutines whose stack holds it; goroutine -> the function that made it
        self.on_stack: dict[str, list[str]] = {}
        self.made_by: dict[str, str] = {}
        for t in proc.threads:
            for f in t.frames:
                if f.function.startswith("created by "):
                    self.made_by[t.id] = f.function[11:]
                else:
                    self.on_stack.setdefault(f.function, []).append(t.id)
        self.live = set(self.waiting) | {t.id for t in self.covered}
        self.by_id = {t.id: t for t in proc.threads}
        # (goroutine, waiter, where its code was read): waits its code was shown not to reach
        self.unreached: list[tuple[str, str, str]] = []
        self.children: dict[str, list[str]] = {}
        for child, fn in self.made_by.items():
            parents = self.on_stack.get(fn, ())
            if len(parents) > _MAX_PARENTS:
                continue  # a function on that many stacks says little about who made it
            for parent in dict.fromkeys(parents):
                if parent != child:
                    self.children.setdefault(parent, []).append(child)

    def named(self, t: Thread) -> str:
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        return res.named() if res is not None else "?"

    def kind(self, t: Thread) -> str:
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        return res.kind if res is not None else "unknown"

    def refs(self, t: Thread) -> list[str]:
        res = self.resources.get(t.waits.resource) if t.waits is not None else None
        return [r for r in (res.referenced_by or ()) if r != t.id] if res is not None else []

    def reaches(self, child: str, waiter: Thread) -> bool:
        """False when the program's source shows that ``child``'s code cannot end
        ``waiter``'s wait (``stuck.stacks.gosource``); True when it may, or cannot be told."""
        t = self.by_id.get(child)
        at = waiter.waits.at if waiter.waits is not None else None
        if t is None or at is None:
            return True
        made = next((f for f in t.frames if f.function.startswith("created by ")), None)
        if made is None:
            return True
        body = gosource.literal_body(made.file, made.line, self.sources)
        names = gosource.names_at(at.file, at.line, self.sources) if body is not None else None
        if body is None or names is None or not gosource.cannot_reach(body, names):
            return True
        self.unreached.append((child, waiter.id, f"{made.file}:{made.line}"))
        return False

    def timer_may_feed(self, t: Thread) -> bool:
        """A receive no goroutine of the dump is shown to serve: a timer's channel, perhaps."""
        if self.said or t.detail not in _RECEIVES:
            return False
        w = t.waits
        if w is not None and w.duration is not None and w.duration >= _LONG:
            return False
        live = self.live
        return not any(c in live for c in self.children.get(t.id, ())) and not any(
            r in live for r in self.refs(t))

    def may_run(self) -> set[str]:
        """Goroutines that may run again: sleepers, receives a timer may feed, and every
        waiter one of its children or a goroutine holding its object's address may wake."""
        can = {t.id for t in self.sleepers}
        queue = list(can)
        for t in self.waiting.values():
            if self.timer_may_feed(t):
                can.add(t.id)
                queue.append(t.id)
        # who waits on whom: child -> parents, holder of an address -> waiters on it
        parents: dict[str, list[str]] = {}
        for parent, kids in self.children.items():
            if parent in self.waiting:
                for k in kids:
                    if self.reaches(k, self.waiting[parent]):
                        parents.setdefault(k, []).append(parent)
        for t in self.waiting.values():
            for r in self.refs(t):
                parents.setdefault(r, []).append(t.id)
        # A goroutine whose stack the text cut before its "created by" line may be the child
        # of any waiter: when it may run, so may every wait for children (an excerpt).
        orphans = {t.id for t in [*self.sleepers, *self.waiting.values()]
                   if t.id != "goroutine 1" and not any(
                       f.function.startswith("created by ") or f.function == "main.main"
                       for f in t.frames)}
        joins = [t.id for t in self.waiting.values() if self.kind(t) in ("channel", "waitgroup")
                 and t.detail != "chan send"]
        while queue:
            x = queue.pop()
            if x in orphans:
                orphans.clear()
                parents.setdefault(x, []).extend(joins)
            for w in parents.get(x, ()):
                if w not in can:
                    can.add(w)
                    queue.append(w)
        return can


def quiescence(dump: Reading) -> None:
    """A runtime's own semantics where the model alone says too little (a Go dump in
    which no goroutine runs: ``go_quiescence``); the threads it judged, stuck or able to run
    again, are left alone by the rules after it."""
    findings, judged = go_quiescence(dump.snap, dump.stated, dump.covered, dump.findings,
                                     dump.resources, dump.sources)
    dump.findings.extend(findings)
    dump.covered.update(judged)
    for f in findings:
        dump.covered.update(f.blocked_behind)


def go_quiescence(snapshot: Snapshot, stated: list[Finding], covered: set[str],
                  earlier: Iterable[Finding] = (), resources: dict[str, Resource] | None = None,
                  sources: tuple[str, ...] = ()) -> tuple[list[Finding], set[str]]:
    """(findings, goroutines judged) for every Go process in which nothing shown runs; the
    judged goroutines (stuck, or able to run again) are left alone by the other rules.
    Goroutines that only wait behind the threads of an ``earlier`` finding (main joining the
    two halves of a proven cycle) are added to its ``blocked_behind``. ``sources``: where
    the program's Go files may be found besides the paths the dump prints (``--source``)."""
    earlier = list(earlier)
    if not any(_goroutines(proc) for proc in snapshot.processes):
        return [], set()
    if resources is None:
        resources = snapshot.resource_map()
    findings: list[Finding] = []
    judged: set[str] = set()
    for proc in snapshot.processes:
        if not _goroutines(proc):
            continue
        said = _runtime_said(stated, proc) if stated else None
        p = _Process(proc, resources, covered, said is not None, proc.complete is True, sources)
        if p.active or not p.waiting:
            continue
        p.link()
        can = p.may_run()
        judged.update(can & set(p.waiting))
        stuck = {tid: t for tid, t in p.waiting.items() if tid not in can}
        if not stuck:
            continue
        judged.update(stuck)
        victims = _behind_earlier(p, stuck, earlier)
        if victims:
            stuck = {tid: t for tid, t in stuck.items() if tid not in victims}
        if stuck:
            findings.extend(_findings(p, stuck, can, said))
    return findings, judged


def _behind_earlier(p: _Process, stuck: dict[str, Thread], earlier: list[Finding]
                    ) -> set[str]:
    """Stuck goroutines that join children, or wait for a lock, all of which are in an earlier
    finding and none stuck here: added to that finding's victims."""
    owner_of: dict[str, Finding] = {}
    for f in earlier:
        for tid in [*f.threads, *f.blocked_behind]:
            owner_of.setdefault(tid, f)
    victims: set[str] = set()
    for t in stuck.values():
        res = p.resources.get(t.waits.resource) if t.waits is not None else None
        if res is not None and res.kind in _LOCKS:
            on = [o for o in res.owners if o != t.id]
        elif res is not None and res.kind in ("channel", "waitgroup"):
            on = list(p.children.get(t.id, ()))
        else:
            continue
        if on and all(o in owner_of and o not in stuck for o in on):
            f = owner_of[on[0]]
            if t.id not in f.blocked_behind and t.id not in f.threads:
                f.blocked_behind.append(t.id)
            victims.add(t.id)
    return victims


def _findings(p: _Process, stuck: dict[str, Thread], can: set[str],
              said: Finding | None) -> list[Finding]:
    """Sort the stuck goroutines into roots, joiners and idle consumers, and group the roots:
    lock waiters (a lock's holder is a goroutine that locked it: among the stuck ones, or
    gone) and senders (a send waits for a receiver, which may be another stuck sender) that
    can be each other's partners form a deadlock; the rest are stalls."""
    stuck_or_done = set(stuck) | {t.id for t in p.covered}
    behind: list[Thread] = []
    consumers: list[Thread] = []
    roots: list[Thread] = []
    for t in stuck.values():
        kids = [c for c in p.children.get(t.id, ()) if c in stuck_or_done]
        res = p.resources.get(t.waits.resource) if t.waits is not None else None
        if res is not None and any(o != t.id and o in stuck_or_done for o in res.owners):
            behind.append(t)  # waits for a lock a stuck goroutine is known (or inferred) to hold
        elif kids and p.kind(t) in ("channel", "waitgroup"):
            behind.append(t)  # joins goroutines it made, which are stuck
        elif t.detail in _RECEIVES and not kids:
            consumers.append(t)  # waits for work to arrive
        else:
            roots.append(t)
    if not roots:
        roots, consumers = consumers, []
    if not roots:
        roots, behind = behind, []
    locks = [t for t in roots if p.kind(t) in _LOCKS]
    sends = [t for t in roots if t.detail == "chan send" and p.kind(t) not in _LOCKS]
    partner_ids = {t.id for t in locks} | {t.id for t in sends}
    others = [t for t in roots if t.id not in partner_ids]
    # Waiters on one and the same lock or channel are peers, not each other's partners: a
    # cycle needs two locks (or channels) at least, or a lock whose holder can only be one of
    # the other stuck goroutines.
    # An RWMutex's two sides count apart: a writer waits for the readers that hold it, and
    # new readers wait behind a waiting writer, so a reader that already holds a read lock and
    # takes it again waits for the writer that waits for it (Go forbids recursive RLock).
    lock_objects = {t.waits.resource + _rw_side(t) for t in locks if t.waits is not None}
    send_objects = {t.waits.resource for t in sends if t.waits is not None}
    if len(lock_objects) >= 2:
        cycle, rest = locks, sends + others
    elif locks and (sends or others):
        cycle, rest = roots, []  # the one lock's holder can only be one of the others
    elif not locks and len(send_objects) >= 2:
        cycle, rest = sends, others
    else:
        cycle, rest = [], roots
    if not cycle and sends:
        # A sender that holds a lock others wait for (its owner, read or inferred): nothing
        # else can run, so its receiver can only be one of them, and they wait for it.
        sending = {t.id for t in sends}
        held_by = [t for t in behind if t.waits is not None and p.kind(t) in _LOCKS and any(
            o in sending for o in p.resources[t.waits.resource].owners)]
        if held_by:
            owners = {o for t in held_by if t.waits is not None
                      for o in p.resources[t.waits.resource].owners}
            cycle = [t for t in sends if t.id in owners] + held_by
            rest = [t for t in rest if t.id not in owners]
            behind = [t for t in behind if t not in held_by]
    out = []
    if cycle:
        out.append(_finding(p, "deadlock", cycle, behind, consumers, can, said))
        behind, consumers = [], []
    # In an excerpt, a lock's holder or a send's receiver may be among the goroutines left
    # out (and waiting in turn): for those waits the excerpt says no more than a hang.
    partnered = [t for t in rest if not p.complete and t.id in partner_ids]
    rest = [t for t in rest if p.complete or t.id not in partner_ids]
    if rest:
        out.append(_finding(p, "stall", rest, behind, consumers, can, said))
        behind, consumers = [], []
    if partnered:
        out.append(_finding(p, "hang", partnered, behind, consumers, can, said))
    return out


# SIGQUIT ends a Go program, so "take another dump" must say how to get one that shows the
# waits have lasted: the runtime prints ', N minutes' on a wait of a minute or more.
_LATER_DUMP = ("a dump that shows the same waits with ', N minutes' in their headers rules "
               "that out: SIGQUIT ends the program, so take it a minute or more into the "
               "hang next time (GOTRACEBACK=all, kill -QUIT PID), or, if the program serves "
               "net/http/pprof, read the same stacks without stopping it: curl "
               "'http://HOST:PORT/debug/pprof/goroutine?debug=2'")


def _finding(p: _Process, kind: FindingKind, roots: list[Thread], behind: list[Thread],
             consumers: list[Thread], can: set[str], said: Finding | None) -> Finding:
    rids = list(dict.fromkeys(t.waits.resource for t in roots if t.waits is not None))
    if kind == "hang":  # the chain's resources first, as the hang rule lists them
        rids = list(dict.fromkeys([*(t.waits.resource for t in behind if t.waits is not None),
                                   *rids]))
    kinds = [p.resources[r].kind if r in p.resources else "unknown" for r in rids]
    words = ["; ".join(f"{_label(t)} waits in {t.detail or 'a wait'} on {p.named(t)}"
                       for t in roots[:8])
             + (f"; and {len(roots) - 8} more" if len(roots) > 8 else "") + "."]
    timers = [p.waiting[x] for x in sorted(can) if x in p.waiting
              and p.timer_may_feed(p.waiting[x])]
    wake = [f"{t.label()} sleeps in time.Sleep" for t in p.sleepers[:3]]
    wake += [f"{t.label()} waits in {t.detail} on a channel no other goroutine is shown to "
             "serve (a timer's, perhaps)" for t in timers[:3]]
    missing: list[str] = []
    confidence: Confidence
    details: dict[str, object] = {
        "rule": "go quiescence",
        "evidence": ("the Go runtime's own verdict" if said is not None else
                     "every thread of the process is shown and none can run" if p.complete
                     else "the goroutines shown: none can run"),
        "able_to_run_again": sorted(can)[:50]}
    if said is not None:
        confidence = "certain"
        words.append(f"The runtime itself reported it: {said.summary}; no goroutine can run, "
                     "so none of these waits can end.")
    elif not p.complete:
        confidence = "possible"
        words.append("No goroutine shown is running, runnable, in a system call or in I/O, but "
                     "the text lacks goroutines (an excerpt): who would end these waits may "
                     "be among them.")
        missing.append(lacks_threads("go"))
    elif wake:
        confidence = "possible"
        words.append("No goroutine is running, runnable, in a system call or in I/O; only "
                      + "; ".join(wake) + ", and may run again.")
        missing.append("; ".join(wake) + ": when it runs again it may end one of these waits "
                       "(hold the lock, serve the channel); " + _LATER_DUMP)
    else:
        confidence = "probable"
        words.append("No goroutine is running, runnable, sleeping, in a system call or in "
                     "I/O, so none of these waits can end from inside the program.")
        missing.append("the Go runtime did not stop the program itself (cgo, os/signal, or a "
                       "timer the dump cannot show keeps its check off); whether a timer is "
                       "pending is not in a goroutine dump: " + _LATER_DUMP)
    if p.signal_waits and said is None:
        missing.append("os/signal's goroutine waits for a signal (signal.Notify): a signal "
                       "from outside could still run the program's handler, and it also keeps "
                       "the Go runtime from reporting \"all goroutines are asleep\" itself")
    words.extend(channel_words(roots, p.resources, p.labels.get))
    involved = {t.id for t in [*roots, *behind, *consumers]}
    read = [(c, w, where) for c, w, where in p.unreached if w in involved]
    if read:
        words.append(" ".join(
            f"The program's source shows that {p.labels.get(c, c)}, which may run again, "
            f"cannot end {p.labels.get(w, w)}'s wait: the function literal it runs ({where}) "
            "names nothing on the line that wait is at and calls only the standard library."
            for c, w, where in read[:4]))
        missing.append("the source files on disk were read as the code that ran; if the "
                       "program was built from other source, the claim does not hold")
        details["source_read"] = sorted({where for _, _, where in read})[:20]
    if behind:
        words.append(", ".join(_label(t) for t in behind[:4])
                     + (f" and {len(behind) - 4} more" if len(behind) > 4 else "")
                     + " wait(s) behind them: for goroutines they started, which are stuck, "
                     "or for a lock one of them holds.")
    if consumers:
        words.append(", ".join(_label(t) for t in consumers[:4])
                     + (f" and {len(consumers) - 4} more" if len(consumers) > 4 else "")
                     + " wait(s) to receive work that no goroutine is left to send.")
    unknown = [p.resources[r] for r in rids if r in p.resources
               and p.resources[r].kind in _LOCKS and not p.resources[r].owners]
    if unknown:
        missing.append("Go does not record mutex owners (" + ", ".join(
            r.named() for r in unknown[:4]) + "): a goroutine that locked it and has not "
            "unlocked it holds it; its stack shows a method on the same object, or a Lock "
            "earlier in the same function (the program's source at the frame's line)")
    if "channel" in kinds:
        missing.append("who would receive from or send on each channel is not in the dump: "
                       "goroutines whose arguments show its address are the candidates, and "
                       "an optimised build prints few arguments (one built with "
                       "-gcflags=all=-N -l prints them all)")
    threads = [t.id for t in roots]
    behind_ids = [t.id for t in behind]
    prefix = ("all goroutines are asleep: " if confidence in ("certain", "probable")
              else "no goroutine shown is running: ")
    names = ", ".join(_label(t) for t in roots[:4]) + (
        f" and {len(roots) - 4} more" if len(roots) > 4 else "")
    if kind == "deadlock":
        actions = " / ".join(dict.fromkeys(_KIND_WORDS.get(k, "act") for k in kinds))
        words.append(f"Each of them waits for an action ({actions}) that only another "
                     "goroutine of the program can take, and the goroutines that could are "
                     "stuck too: if each waits for another, they wait for each other in a "
                     "cycle. " + (
                         "A Go dump shows no channel partners, and the lock's holder only as "
                         "inferred from the arguments, so which waits for which is not all in "
                         "it." if any(p.resources[r].owners for r in rids if r in p.resources)
                         else "A Go dump shows no lock holders and no channel partners, so "
                         "which waits for which is not in it."))
        missing.append("if one of these waits for a goroutine that has returned instead (a "
                       "lock never unlocked, a channel nobody reads any more), it is a stall, "
                       "not a cycle")
        summary = (f"{prefix}{names} wait for actions (" + actions + ") "
                   "that only each other could take; Go does not show who holds what")
    elif kind == "hang":
        words.append("The goroutine that would end each of these waits (a lock's holder, a "
                     "send's receiver) is not among those shown.")
        summary = f"{names} wait{'s' if len(roots) == 1 else ''} on {p.named(roots[0])}" + (
            " and more" if len(roots) > 1 else "") + (
            "; none of the goroutines shown can end the wait, and the text lacks the others")
    else:
        for root in roots[:4]:
            action = _KIND_WORDS.get(p.kind(root), "act")
            words.append(f"Only another goroutine could {action} on {p.named(root)} for "
                         f"{root.label()}, and none that could is left to run.")
        missing.append("which goroutine should have ended " + ", ".join(
            f"{_label(t)}'s" for t in roots[:4]) + " wait is not in the dump: the one that "
            "would have has returned, or is among the stuck ones (an error path that skipped "
            "the send, Signal, Done or Unlock)")
        more = f" (and {len(roots) - 1} more)" if len(roots) > 1 else ""
        summary = (f"{prefix}{_label(roots[0])} waits on "
                   f"{p.named(roots[0])}{more} and no goroutine that could end the wait is "
                   "left to run")
    return Finding(kind=kind, confidence=confidence, summary=summary,
                   explanation=" ".join(words), threads=threads, resources=rids,
                   blocked_behind=behind_ids, missing_evidence=missing, details=details)
