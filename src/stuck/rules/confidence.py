"""How sure a finding is: what each confidence level rests on.

``certain`` needs proof from ownership (a lock's owner, a joined thread) or from reachability
(no thread able to run can even reach the primitive). An edge read from behaviour (who used a
queue, a semaphore or a pool so far) makes a finding ``probable``, and says so in
``missing_evidence``. A plain ``Lock`` may be released by any thread, not only its owner: a
finding that holds only if the threads able to run never do is ``probable``, and waits for
``LOCK_GATE_GRACE`` first (a Lock used as a gate is opened by a thread that sleeps a moment).
A wait a Python signal handler of the program could end (``Process.signal_handlers``) is not
proven while the signal may still come: ``signal_handler_doubt``, applied by the engine to every
finding of recorded facts, of event loops and of a saved live report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stuck.model import Confidence, Finding, SignalHandler, Snapshot, Thread
from stuck.rules.facts import OWN_THREADS, TASK_PREFIX, Facts, waited

# The kinds of resource an edge of a cycle may go through that ownership proves: a lock only
# its owner releases (a plain threading.Lock among them: the rules and the walk done when a
# waiter blocks each prove first that no other thread can release it, ``any_releaser_doubt``
# and ``stuck.runtime.detect``; an asyncio.Lock is only ever released by a task of its loop),
# a condition's lock, a thread joined, an asyncio task awaited. Any other edge is read from
# behaviour (who used a queue, a semaphore or a pool so far) and makes a cycle probable.
PROVEN_KINDS = frozenset({"mutex", "rlock", "condition", "thread", "task"})

# What an edge of each inferred kind does not prove (``{who}``: thread or task).
_DOUBTS = {
    "semaphore": "a semaphore can be released by any {who}; its holders are the {who}s that "
                 "acquired it and have not released it",
    "queue": "which {who}s will use a queue is inferred from which {who}s used it so far; a "
             "{who} that never touched it could still end the wait",
    "future": "a pending future can only run on its pool's workers; another thread could "
              "still complete it by hand",
    "condition-wait": "who will notify a condition is inferred from who notified it so far; a "
                      "{who} that never did could still notify it",
}

# A plain Lock may be released by any thread. A finding that holds only if the threads able
# to run never release a Lock they did not take is probable, and is reported only once its
# waits have lasted this long: a Lock used as a gate is opened by a thread that sleeps or works
# for a moment first.
LOCK_GATE_GRACE = 2.0


def cycle_confidence(kinds: Iterable[str], who: str = "thread") -> tuple[Confidence, list[str]]:
    """A cycle through resources of ``kinds`` (``condition-wait`` for a wait on a condition,
    not for its lock): certain when ownership proves every edge, else probable; and what the
    inferred edges do not prove. ``who``: ``thread`` or ``task``, the waiters' word."""
    kinds = set(kinds)
    missing = [text.format(who=who) for kind, text in _DOUBTS.items() if kind in kinds]
    return ("certain" if kinds <= PROVEN_KINDS else "probable"), missing


def timed_confidence(confidence: Confidence) -> Confidence:
    """A cycle one wait of which has a timeout ends when it expires, if the program then lets
    go of what it holds: a step less sure than the same cycle without one."""
    return "probable" if confidence == "certain" else "possible"


# The steps of a cycle as the walk done when a waiter blocks names them (its operation, and
# for an acquire the primitive's kind), by the kind of resource each goes through. A step not
# here (an acquire of a primitive of another kind) is not proven.
STEP_KINDS = {
    "acquire-mutex": "mutex", "acquire-rlock": "rlock", "join": "thread",
    "await": "task", "gather": "task", "taskgroup": "task",  # an asyncio task awaited
    "get": "queue", "put": "queue", "result": "future", "acquire-semaphore": "semaphore",
}
PROVEN_STEPS = frozenset(step for step, kind in STEP_KINDS.items() if kind in PROVEN_KINDS)


def steps_confidence(steps: Iterable[str], who: str = "thread") -> tuple[Confidence, list[str]]:
    """``cycle_confidence`` of a cycle whose steps are ``steps`` (``acquire-mutex``, ``join``,
    ``get`` ...)."""
    return cycle_confidence({STEP_KINDS.get(step, "unknown") for step in steps}, who)


def any_releaser_doubt(findings: list[Finding], facts: Facts, stuck: set[str],
                       strict: set[str], freed_strict: dict[str, str]) -> list[Finding]:
    """The findings that still stand once any thread may release a plain Lock.

    ``stuck``: the knot with a Lock released by its owner only; ``strict``: with a Lock
    released by any thread able to run (``freed_strict``: why each thread left it). A finding
    whose threads are stuck only in the first is probable, and is dropped while its waits are
    younger than ``LOCK_GATE_GRACE``."""
    threads = facts.threads
    kept: list[Finding] = []
    for f in findings:
        loose = [x for x in f.threads if x in stuck and x not in strict]
        if loose:
            if any((waited(threads[x], facts.now) or 0.0) < LOCK_GATE_GRACE for x in f.threads
                   if x in threads and threads[x].wait is not None):
                continue
            if f.confidence == "certain":
                f.confidence = "probable"
            first = threads[loose[0]].wait
            res = facts.resources.get(first.resource) if first is not None else None
            what = "a semaphore" if res is not None and res.kind == "semaphore" \
                else "a plain Lock"
            f.missing_evidence.insert(0, f"{what} may be released by any thread, not only "
                                         f"the one that took it: {freed_strict[loose[0]]}")
        kept.append(f)
    return kept


# What a snapshot shows of a thread that could still do something: not blocked, not idle.
ABLE_STATES = frozenset({"running", "sleeping", "io", "unknown"})


def task_thread_doubt(finding: Finding, threads: Iterable[Thread]) -> None:
    """A cycle through asyncio tasks and threads (a task holding a thread's lock across an
    await of a call a thread runs): certain only when no thread or task outside it is able to
    run (running, sleeping, in I/O), since one could still release a plain Lock it did not
    take (a task runs on the loop's thread, which owns the lock), or complete the future by
    hand. Otherwise probable, saying which threads. The same for the live report and
    for ``stuck analyze`` of it: both read the states of the snapshot's threads."""
    members = set(finding.threads)
    if not any(t.startswith(TASK_PREFIX) for t in members) \
            or all(t.startswith(TASK_PREFIX) for t in members):
        return
    able = [t.name or t.id for t in threads
            if t.id not in members and t.name not in OWN_THREADS and t.state in ABLE_STATES]
    if not able:
        return
    if finding.confidence == "certain":
        finding.confidence = "probable"
    shown = ", ".join(able[:5]) + (f", … {len(able) - 5} more" if len(able) > 5 else "")
    words = (f"threads or tasks outside the cycle can still run ({shown}): one could release "
             "a lock it did not take (a task, on the loop's own thread, even an RLock), or "
             "complete the future by hand")
    if words not in finding.missing_evidence:
        finding.missing_evidence.insert(0, words)


def unsure_doubt(findings: Iterable[Finding], unsure: Mapping[str, str]) -> None:
    """A finding through a resource its source read but is unsure of (``ReadFacts.unsure``: a
    capture that could not read every process mapping a shared futex) is at most probable,
    and says why."""
    if not unsure:
        return
    for f in findings:
        why = [unsure[r] for r in f.resources if r in unsure]
        if why and f.confidence == "certain":
            f.confidence = "probable"
        f.missing_evidence.extend(u for u in dict.fromkeys(why) if u not in f.missing_evidence)


# Python signal handlers that interrupt a wait and never end it: Python's own SIGINT handler
# (KeyboardInterrupt), ``asyncio.run``'s (cancels the main task on Ctrl-C) and pytest-timeout's
# signal method (fails the test). With only these installed, a stall is still a stall: the
# handler only makes the program give up on it. By (module, qualified name); None: any.
INTERRUPTING_HANDLERS: tuple[tuple[str, str | None], ...] = (
    ("_signal", "default_int_handler"),
    ("asyncio.runners", None),
    ("pytest_timeout", None),
)

# The waits a Python signal handler can end. CPython runs it in the main thread between
# bytecodes, and interrupts a lock wait of the main thread to run it, so it runs even while
# every thread waits. It can set an event, release a semaphore or a plain Lock (any thread
# may), put to or take from a queue, notify a condition, complete a future, abort a barrier,
# or do any of these through ``loop.call_soon_threadsafe`` for an asyncio primitive. It cannot
# release a lock another thread owns, nor end a thread (a join waits for the joined thread's
# own wait, judged by itself); a lock it takes it releases before it returns.
_HANDLER_ENDS = frozenset({"event", "semaphore", "queue", "future", "barrier", "mutex"})


def interrupts_only(handler: SignalHandler) -> bool:
    """Whether ``handler`` is one that only interrupts a wait (``INTERRUPTING_HANDLERS``)."""
    module = handler.module or ""
    return any((module == m or module.startswith(m + ".")) and (name is None
               or handler.handler == name) for m, name in INTERRUPTING_HANDLERS)


def handler_could_end(kind: str, op: str | None) -> bool:
    """Whether a Python signal handler could end a wait on a resource of ``kind`` by ``op``."""
    if kind == "condition":
        return op != "acquire"  # a notify ends a wait; the condition's lock is owned
    return kind in _HANDLER_ENDS


def steps_a_handler_could_end(steps: Iterable[str]) -> bool:
    """Whether a Python signal handler could end one of the waits of a cycle whose steps are
    ``steps`` (``acquire-mutex``, ``join``, ``get``, ``wait`` ...), as the walk done when a
    waiter blocks names them: the same judgement as ``handler_could_end``."""
    for step in steps:
        if step.startswith("acquire-"):
            kind, op = step.removeprefix("acquire-"), "acquire"
        else:
            kind, op = STEP_KINDS.get(step, "condition" if step == "wait" else step), step
        if handler_could_end(kind, op):
            return True
    return False


def signal_handler_doubt(findings: list[Finding], snapshot: Snapshot) -> None:
    """A deadlock or stall one of whose waits a Python signal handler of the program could
    end is not proven while that signal may still come: at most probable, naming the handlers
    (``Process.signal_handlers``, recorded by a live source). A handler whose code names the
    very primitive waited on (``SignalHandler.names``: ``signal.signal(SIGTERM, lambda *a:
    stop.set())`` beside ``stop.wait()``, the graceful-shutdown pattern) makes that wait a
    wait for the signal, as a read waits for a peer: the finding is dropped, since nothing but
    the signal was ever going to end it. Calls a handler makes are not followed, so a genuine
    stall beside a handler that names none of its primitives is probable, never dropped."""
    waking: dict[str, list[SignalHandler]] = {}
    for proc in snapshot.processes:
        installed = [h for h in proc.signal_handlers or () if not interrupts_only(h)]
        if installed:
            for thread in proc.threads:
                waking[thread.id] = installed
    if not waking:
        return
    threads = snapshot.thread_map()
    resources = snapshot.resource_map()
    awaited: list[Finding] = []  # findings resting on a wait for a signal
    for f in findings:
        if f.kind not in ("deadlock", "stall"):
            continue
        handlers: list[SignalHandler] = []
        for tid in f.threads:
            t = threads.get(tid)
            w = t.waits if t is not None and t.state != "dead" else None
            res = resources.get(w.resource) if w is not None else None
            if w is not None and res is not None and handler_could_end(res.kind, w.op):
                if any(res.id in h.names for h in waking.get(tid, ())):
                    awaited.append(f)
                    break
                handlers.extend(h for h in waking.get(tid, ()) if h not in handlers)
        if not handlers or f in awaited:
            continue
        if f.confidence == "certain":
            f.confidence = "probable"
        shown = "; ".join(h.named() for h in handlers[:3]) + (
            f"; … {len(handlers) - 3} more" if len(handlers) > 3 else "")
        words = (f"a Python signal handler is installed ({shown}): CPython runs it in the main "
                 "thread even while every thread waits, and it could end these waits (set, "
                 f"release, put or notify); if the signal never comes, this is a {f.kind}")
        f.details["signal_handlers"] = [h.named() for h in handlers]
        if not any("Python signal handler" in m for m in f.missing_evidence):
            f.missing_evidence.insert(0, words)  # not again (an event-loop rule's own words)
    if awaited:
        findings[:] = [f for f in findings if not any(f is a for a in awaited)]
