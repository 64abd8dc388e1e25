"""Deadlock among asyncio tasks: each task of a cycle waits for what the next one holds (an
asyncio Lock, a Semaphore's permits), would put or take (a queue, by who ever did), or is (a
task awaited, directly or in a gather or a TaskGroup).

On a loop seen stalled (``model.EventLoop``), the cycles are found here from the snapshot
(``loop_cycles``): who could end each task's wait is read from the model (a lock's or a
semaphore's holding tasks, a queue's past producers or consumers still alive, the tasks a task,
a gather or a TaskGroup awaits), the knot of waits nothing outside can end, and a cycle
through it. The walk done when a task is about to block (``stuck.runtime.aio.walk``, a fast
path over the live tasks) finds the cycle its wait closes the same way. Either way the finding
is made here from the snapshot: each step's words (``wording.cycle_step``, the words of a thread cycle), the
confidence its steps allow (``confidence.steps_confidence``), and, for a cycle the watchdog
found on a stalled loop, the proof that nothing outside it can end its waits, read from the
loop's facts (``model.EventLoop``: no other thread able to run, no Python signal handler).
"""

from __future__ import annotations

from collections.abc import Callable

from stuck.model import Confidence, Edge, EventLoop, Finding, Resource, Snapshot, Thread
from stuck.rules.confidence import steps_confidence, timed_confidence
from stuck.rules.executor import task_name, thread_name
from stuck.rules.knot import cycle_through, greatest_knot
from stuck.rules.wording import UNPROVEN, closing_words, cycle_step, wait_for_each_other

# How the cycle was found: when its last task blocked (the walk), or by the rules on a loop
# seen stalled (``loop_cycles``: the watchdog's check, a report asked for on demand, a saved
# report analysed again).
FOUND_BY = ("block", "watchdog")
MAX_WALKS = 500  # tasks a loop's cycles are looked for from (and victims among)
_AWAIT_OPS = frozenset({"await", "gather", "taskgroup"})


def loop_cycles(snapshot: Snapshot, loop: EventLoop) -> list[tuple[list[Edge], list[str]]]:
    """The cycles among the tasks of a stalled ``loop``, each with the tasks stuck behind it:
    one cycle through each knot, found from the tasks in name order."""
    threads = snapshot.thread_map()
    resources = snapshot.resource_map()
    tasks = [t for t in loop.tasks if (th := threads.get(t)) is not None and th.state != "dead"]
    cache: dict[str, list[str] | None] = {}

    def wakers(tid: str) -> list[str] | None:
        if tid not in cache:
            cache[tid] = task_wakers(tid, tasks, threads, resources)
        return cache[tid]

    found: list[list[Edge]] = []
    covered: set[str] = set()
    for root in sorted(tasks, key=lambda t: task_name(t, threads))[:MAX_WALKS]:
        if root in covered:
            continue
        stuck = _knot(root, wakers)
        path = _cycle_through(root, stuck, wakers) if stuck is not None else None
        if path is None:
            continue
        edges = []
        for i, x in enumerate(path):
            w = threads[x].waits
            assert w is not None  # a task with wakers waits
            edges.append(Edge(thread=x, waits_for=w.resource,
                              held_by=path[i + 1] if i + 1 < len(path) else root))
        covered.update(path)
        found.append(edges)
    out = []
    for edges in found:
        in_cycle = {e.thread for e in edges}
        victims = [t for t in tasks[:MAX_WALKS] if t not in in_cycle
                   and _knot(t, wakers) is not None]
        out.append((edges, victims))
    return out


def task_wakers(tid: str, tasks: list[str], threads: dict[str, Thread],
                resources: dict[str, Resource]) -> list[str] | None:
    """The tasks of the loop (``tasks``, alive) that could end ``tid``'s wait; None when it
    does not wait, or anything could end it (an event, a condition, a timer, I/O, a future)."""
    t = threads.get(tid)
    w = t.waits if t is not None else None
    if w is None or not w.durable:
        return None
    res = resources.get(w.resource)
    if res is None:
        return None
    alive = set(tasks)
    rec = res.recorded
    if w.op in _AWAIT_OPS or (w.op == "acquire" and res.kind in ("mutex", "semaphore")):
        targets = [o for o in res.owners if o in alive]
    elif w.op == "get" and res.kind == "queue":
        targets = [o for o in (rec.wakers or []) if o in alive] if rec is not None else []
    elif w.op == "put" and res.kind == "queue":
        targets = [o for o in (rec.getters or []) if o in alive] if rec is not None else []
    else:
        return None
    if targets == [tid] and w.op == "acquire" and res.kind == "mutex":
        # Its own Lock: any other task could release it (an asyncio.Lock is not owned); a
        # deadlock only once none of them can run.
        others = [o for o in tasks if o != tid]
        if any(threads[o].state == "running" for o in others):
            return None
        targets += others
    return targets or None


def _knot(root: str, wakers: Callable[[str], list[str] | None]) -> set[str] | None:
    """The waiting tasks reachable from ``root`` that nothing outside can wake (``root`` among
    them), or None."""
    seen = {root}
    stack = [root]
    while stack:
        ws = wakers(stack.pop())
        for h in ws or ():
            if h not in seen:
                seen.add(h)
                stack.append(h)
    members = [t for t in seen if wakers(t) is not None]

    def can_end(t: str, knot: set[str]) -> str | None:
        ws = wakers(t)
        if ws is None:
            return "ends by itself"
        return "a waker outside" if any(h not in knot for h in ws) else None

    stuck, _ = greatest_knot(members, can_end, watch=root, ordered=False)
    return stuck if root in stuck else None


def _cycle_through(start: str, stuck: set[str], wakers: Callable[[str], list[str] | None]
                   ) -> list[str] | None:
    return cycle_through(start, stuck, lambda t: wakers(t) or ())


def task_cycle_finding(snapshot: Snapshot, cycle: list[Edge], *, found_by: str, policy: str,
                       timed: bool, blocked_behind: list[str]) -> Finding:
    """The finding of ``cycle`` (its first step is the task that closed it, or where the walk
    began). ``timed``: its first task waits under a timeout, or a callback already scheduled on
    the loop acts on its wait. ``policy``: what the policy does about it (block time)."""
    threads = snapshot.thread_map()
    resources = snapshot.resource_map()
    parts: list[str] = []
    steps: set[str] = set()
    for e in cycle:
        t = threads.get(e.thread)
        res = resources.get(e.waits_for)
        op = t.waits.op if t is not None and t.waits is not None else None
        kind = res.kind if res is not None else "unknown"
        name = (res.label or res.id) if res is not None else e.waits_for
        parts.append(f"{task_name(e.thread, threads)} " + cycle_step(
            op, kind, name, task_name(e.held_by, threads), e.thread == e.held_by))
        steps.add(f"acquire-{kind}" if op == "acquire" else str(op))
    root = task_name(cycle[0].thread, threads)
    loop = next((lp for lp in snapshot.loops if cycle[0].thread in lp.tasks), None)
    loop_name = thread_name(loop.thread if loop is not None else None, threads)
    summary = parts[0] if len(cycle) == 1 else \
        f"{wait_for_each_other(len(cycle), 'asyncio tasks')}: " + "; ".join(parts)
    confidence: Confidence
    confidence, missing = steps_confidence(steps, who="task")
    lines: list[str] = []
    if timed:
        confidence = timed_confidence(confidence)
        lines.append(f"{root} waits under a timeout, or a callback already scheduled on the "
                     "loop acts on its wait: the cycle may end then, if the program lets go of "
                     "what it holds.")
    if found_by == "block":
        lines.append(f"{root} closed the cycle by starting to wait.")
        words = closing_words(policy, root, "tasks")
        if words:
            lines.append(words)
    elif found_by == "watchdog":
        lines.append("The cycle was closed by awaiting a task, which stuck does not intercept; "
                     "the watchdog found it once the event loop had nothing left to run.")
    if found_by != "block" or policy in ("report", UNPROVEN):
        lines.append(f"The event loop (thread {loop_name}) goes on running its other tasks; "
                     "these will never resume.")
    if found_by == "watchdog" and not timed and confidence == "probable" \
            and _nothing_else_can_end(loop):
        confidence, missing = "certain", []
        lines.append("Who could end these waits is not known from ownership, but nothing "
                     "outside the cycle can: the event loop has no other callback, timer or "
                     "I/O, no other thread is able to run, and no Python signal handler could "
                     "run on the loop's thread.")
    return Finding(kind="deadlock", confidence=confidence, summary=summary,
                   explanation="\n".join(lines), threads=[e.thread for e in cycle],
                   resources=[e.waits_for for e in cycle], cycle=cycle,
                   blocked_behind=blocked_behind, missing_evidence=missing,
                   details={"detected_by": cycle[0].thread, "policy": policy,
                            "event_loop_thread": loop_name})


def _nothing_else_can_end(loop: EventLoop | None) -> bool:
    """The loop was seen stalled with nothing of its own to run, no other thread could call
    ``loop.call_soon_threadsafe``, and no Python signal handler could run on its thread: only
    the tasks of the cycle could end their waits. Who used a queue or a semaphore so far then
    no longer matters."""
    return loop is not None and loop.stalled and loop.quiet() \
        and loop.runnable_threads == [] and not loop.signal_handlers
