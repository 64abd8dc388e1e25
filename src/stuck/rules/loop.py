"""An event loop nothing can wake: every task of an asyncio event loop waits, the loop has
nothing left to run (no callback ready, no timer, no I/O watched, its thread idle in the
selector), so no code on it will run again to end those waits.

The facts are the model's (``model.EventLoop``, set by a live source that read the loop):
which tasks the loop has, whether it is quiet, whether its tasks were seen in the same waits
across two observations (``stalled``), which other threads could still call
``loop.call_soon_threadsafe``, and which signal handlers of the program could run. Each task is
a thread of the snapshot; its ``Wait.op`` says what it waits for: ``acquire``, ``wait``,
``get``, ``put`` or ``queue-join`` on a primitive; ``await``, ``gather`` or ``taskgroup`` on
other tasks; ``result`` on a call running in an executor (the future's owner is the thread
running it). What a primitive's history says (who set an event, who ever put to a queue, a
lock's owner that has ended) is on its ``Resource``; a task that ended is a dead thread with
how it ended (``Thread.ended``).

Cycles among the tasks and the executor chains (``stuck.rules.executor``) are found before
this rule and cover their tasks (``covered``); the tasks left are one stall, explained at the
waits that say why.
"""

from __future__ import annotations

from stuck.model import Confidence, EventLoop, Finding, Resource, Snapshot, Thread
from stuck.rules.executor import (
    called,
    chain_words,
    executor_chain,
    loop_thread_name,
    task_name,
    thread_name,
)

# Waits on a primitive (the task's own record of what it waits for): they say why.
PRIMITIVE_OPS = frozenset({"acquire", "wait", "get", "put", "queue-join"})
AWAIT_OPS = frozenset({"await", "gather", "taskgroup"})  # waits on other tasks


def loop_stalls(snapshot: Snapshot, covered: set[str]) -> list[Finding]:
    """One stall per stalled, quiet event loop, of its tasks not in ``covered``."""
    threads = snapshot.thread_map()
    resources = snapshot.resource_map()
    out: list[Finding] = []
    for loop in snapshot.loops:
        if not loop.stalled or not loop.quiet():
            continue
        if not loop.tasks_read:
            blind = _unwakeable(loop, threads)
            if blind is not None and (loop.thread or "") not in covered:
                out.append(blind)
            continue
        rest = [threads[t] for t in loop.tasks
                if t not in covered and t in threads and threads[t].state != "dead"]
        if rest:
            out.append(_stall(loop, rest, threads, resources))
    return out


def _unwakeable(loop: EventLoop, threads: dict[str, Thread]) -> Finding | None:
    """A loop seen from outside (its tasks not read): its thread waits in the selector with no
    timeout (no callback ready, no timer), watching nothing but its own wake-up pipe (no I/O
    can wake it), and no other thread of the process can run to call
    ``loop.call_soon_threadsafe``, and the program handles no signal that could. Whatever its
    tasks wait for, no code on the loop will run again. Possible, not more: which tasks wait,
    and on what, is not seen (nor whether the program meant to idle for ever)."""
    if loop.thread is None or loop.runnable_threads != [] or loop.signal_handlers:
        return None  # another thread, or a signal the program handles, may still wake it
    name = thread_name(loop.thread, threads)
    return Finding(
        kind="stall", confidence="possible",
        summary=(f"the event loop in thread {name} waits with no timeout on nothing but its "
                 "own wake-up pipe"),
        explanation=(
            f"Thread {name} waits in the selector with no timeout, so no callback is ready "
            "and no timer is scheduled; the selector watches only the loop's own wake-up pipe "
            "(a socket pair whose other end only this process holds), so no I/O can wake "
            "it; no other thread of the process can run to wake it "
            "(loop.call_soon_threadsafe), and the program handles no signal that could. No "
            "code on the loop will run again: every task on it that waits, waits for ever."),
        threads=[loop.thread], missing_evidence=[
            "which task waits on what is not readable from outside: run the program under "
            "`stuck run` (py-spy cannot see asyncio tasks)",
            "whether the program meant to sit idle for ever (a loop that only waits to be "
            "stopped by Ctrl-C) is not known"],
        details={"rule": "event-loop-unwakeable", "event_loop_thread": name})


def _ops(t: Thread) -> str | None:
    return t.waits.op if t.waits is not None else None


def _stall(loop: EventLoop, tasks: list[Thread], threads: dict[str, Thread],
           resources: dict[str, Resource]) -> Finding:
    name = loop_thread_name(loop, threads)
    lines: list[str] = []
    rids: list[str] = []
    phrases: list[str] = []
    # The tasks waiting on primitives first: they say why; those awaiting them follow.
    tasks = sorted(tasks, key=lambda t: (_ops(t) not in PRIMITIVE_OPS, t.name or t.id))
    for task in tasks:
        words, rid = _what(task, loop, threads, resources)
        phrase = f"{task.name or task.id} {words}"
        phrases.append(phrase)
        if _ops(task) in PRIMITIVE_OPS:
            lines.append(phrase + ".")
        if rid is not None and rid not in rids:
            rids.append(rid)
    lines.append(f"The event loop (thread {name}) has no callback ready to run, no timer "
                 "scheduled and no I/O to watch, so no code on it will run again to end these "
                 "waits.")
    missing = ["which code was meant to end these waits is not recorded"]
    confidence: Confidence = "certain"
    others = loop.runnable_threads
    if others is None:
        confidence = "probable"
        missing.insert(0, "whether another thread could still wake the loop "
                          "(loop.call_soon_threadsafe) was not read")
    elif others:
        confidence = "probable"
        lines.append("Threads still able to run: " + ", ".join(others[:5])
                     + ("" if len(others) <= 5 else f", … {len(others) - 5} more") + ".")
        missing.insert(0, "another thread could still wake the loop "
                          "(loop.call_soon_threadsafe); whether one will is not known")
    # A task on a future no task completes (an executor's, or a plain one): a Python signal
    # handler runs on the main thread and could complete it.
    on_futures = [t for t in tasks if _ops(t) not in PRIMITIVE_OPS and _ops(t) not in AWAIT_OPS]
    if on_futures and loop.signal_handlers:
        confidence = "probable"
        missing.insert(0, "a Python signal handler (" + ", ".join(loop.signal_handlers[:3])
                          + ") runs on the loop's thread and could complete the futures "
                          "awaited")
    n = len(tasks)
    summary = (f"{n} asyncio task{'s' if n != 1 else ''} on the event loop in thread "
               f"{name} wait{'s' if n == 1 else ''} and nothing left can wake "
               f"{'it' if n == 1 else 'them'}: " + "; ".join(phrases[:3])
               + ("" if n <= 3 else f"; … {n - 3} more"))
    return Finding(kind="stall", confidence=confidence, summary=summary,
                   explanation="\n".join(lines), threads=[t.id for t in tasks],
                   resources=rids, missing_evidence=missing,
                   details={"rule": "event-loop-stall", "event_loop_thread": name,
                            "tasks": n})


def _what(task: Thread, loop: EventLoop, threads: dict[str, Thread],
          resources: dict[str, Resource]) -> tuple[str, str | None]:
    """How a stuck task's wait reads in a report, and the resource id it waits on."""
    w = task.waits
    if w is None:
        return "awaits a future that nothing left running can complete", None
    res = resources.get(w.resource)
    if res is None:
        return "waits", None
    label = res.label or res.id
    op = w.op
    if op == "await":
        return f"awaits task {label}", res.id
    if op in AWAIT_OPS:
        return f"awaits {label}", res.id
    if op == "result":
        chain = executor_chain(task, res, loop, threads, resources)
        if chain is not None:
            return chain_words(task, res, chain, loop, threads), res.id
        if res.owners:
            return (f"awaits {called(res)} running on thread "
                    f"{thread_name(res.owners[0], threads)}"), res.id
        return "awaits a future that nothing left running can complete", None
    rec = res.recorded
    if res.kind == "event":
        setter = rec.set_by if rec is not None else None
        return (f"waits for event {label}, "
                + ("which nothing has ever set" if setter is None
                   else f"last set by {setter} and cleared since")), res.id
    if res.kind == "condition" and op == "wait":
        notifier = rec.set_by if rec is not None else None
        return (f"waits on condition {label}, "
                + ("which nothing has ever notified" if notifier is None
                   else f"last notified by {notifier}")), res.id
    if res.kind == "queue":
        if op == "get":
            producers = list(rec.wakers or []) if rec is not None else []
            if not producers and rec is not None and rec.epoch:
                # Something was put and taken, by tasks no longer there (or a callback).
                return f"waits to get from empty queue {label}, to which nothing left " \
                       "running puts (what put to it before is gone)", res.id
            if not producers:
                return f"waits to get from empty queue {label}, to which nothing has ever " \
                       "been put", res.id
            return f"waits to get from empty queue {label}, " \
                + _producers_words(producers[:3], threads), res.id
        if op == "put":
            return f"waits to put on full queue {label}", res.id
        return f"waits for the items of queue {label} to be processed", res.id
    if res.kind == "mutex":
        ended = [o for o in res.owners if (t := threads.get(o)) is not None and t.state == "dead"]
        if ended:
            return (f"waits for lock {label}, held by task {task_name(ended[0], threads)}, "
                    "which ended without releasing it"), res.id
        owners = ", ".join(task_name(o, threads) for o in res.owners) or "nobody"
        return f"waits for lock {label} held by {owners}", res.id
    if res.kind == "semaphore":
        return f"waits for semaphore {label}", res.id
    return f"waits for {label}", res.id


def _producers_words(producers: list[str], threads: dict[str, Thread]) -> str:
    """How a queue's producers ended, or that they are done or stuck: "(Task-2) are done or
    stuck", or, when one ended with an exception, "Task-2 ended with RuntimeError: ...": the
    cause a reader looks for."""
    died = [(p, how.removeprefix("died of ")) for p in producers
            if (t := threads.get(p)) is not None and (how := t.ended) is not None
            and how.startswith("died of ")]
    names = [task_name(p, threads) for p in producers]
    if not died:
        return f"whose producers ({', '.join(names)}) are done or stuck"
    parts = [f"{task_name(p, threads)} ended with {how}" for p, how in died]
    parts += [f"{task_name(p, threads)} is done or stuck" for p in producers
              if all(p != q for q, _ in died)]
    return ("whose producer " if len(producers) == 1 else "whose producers: ") + "; ".join(parts)
