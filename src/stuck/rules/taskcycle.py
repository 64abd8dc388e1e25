"""Deadlock among asyncio tasks: each task of a cycle waits for what the next one holds (an
asyncio Lock, a Semaphore's permits), would put or take (a queue, by who ever did), or is (a
task awaited, directly or in a gather or a TaskGroup).

The cycle itself is found by the live runtime's walk over the tasks (``stuck.runtime.aio``:
when a task is about to block, and by the watchdog on a loop none of whose tasks can run), as
the walk done when a thread blocks finds a thread cycle; this rule makes its finding from the
snapshot: each step's words (``wording.cycle_step``, the words of a thread cycle), the
confidence its steps allow (``confidence.steps_confidence``), and, for a cycle the watchdog
found on a stalled loop, the proof that nothing outside it can end its waits, read from the
loop's facts (``model.EventLoop``: no other thread able to run, no Python signal handler).
"""

from __future__ import annotations

from stuck.model import Confidence, Edge, EventLoop, Finding, Snapshot
from stuck.rules.confidence import steps_confidence, timed_confidence
from stuck.rules.executor import task_name, thread_name
from stuck.rules.wording import UNPROVEN, closing_words, cycle_step, wait_for_each_other

# How the cycle was found: when its last task blocked, by the watchdog on a stalled loop, or
# for a report asked for on demand (a signal, ``stuck.snapshot()``).
FOUND_BY = ("block", "watchdog", "snapshot")


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
