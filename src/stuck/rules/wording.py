"""Words shared by every finding: thread names, what a thread is doing, how long it waited."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stuck.model import Resource, Thread
from stuck.rules.facts import Facts, ThreadFacts, waited
from stuck.stacks.native import base_name

# A stall's headline, after the wait: nothing able to run can end it (recorded facts or read).
NO_WAKER_RUNS = "no thread that could wake it is able to run"


def name_of(facts: Facts, tid: str) -> str:
    t = facts.threads.get(tid)
    return t.name if t is not None else tid


def state_of(facts: Facts, tid: str, stuck: set[str]) -> str:
    t = facts.threads.get(tid)
    if t is None:
        return "gone"
    if not t.alive:
        return t.ended or "ended"
    if tid in stuck and t.wait is not None:
        res = facts.resources.get(t.wait.resource)
        what = kind_and_label(res.kind, res.label) if res is not None else t.wait.resource
        return f"itself blocked for good on {what}"
    return "able to run"


def kind_and_label(kind: str, label: str) -> str:
    """``semaphore slots`` for a sentence; a label that already says its kind (a barrier
    bound to ``barrier``) as it is, not ``barrier barrier``."""
    if not label or label == kind or label.startswith((f"{kind} ", f"{kind}.")):
        return label or kind
    return f"{kind} {label}"


def for_how_long(t: ThreadFacts, now: float) -> str:
    w = waited(t, now)
    return f" for {w:.1f} s" if w is not None and w >= 0.05 else ""  # not "for 0.0 s"


def unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``: how long a wait has lasted, for a dump's finding."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def wait_text(t: Thread, resources: dict[str, Resource]) -> str:
    """``worker (LWP 12) waits for mutex mu in pthread_mutex_lock (3 min)``: one thread's
    wait, in the words of every finding built from a snapshot's threads."""
    assert t.waits is not None
    res = resources.get(t.waits.resource)
    text = f"{t.label()} waits for {res.named() if res else t.waits.resource}"
    if t.waits.at is not None:
        where = f" in {base_name(t.waits.at.function)}"
        if not text.endswith(where):  # a label made from the wait says where already
            text += where
    if t.waits.duration is not None:
        text += f" ({duration(t.waits.duration)})"
    return text


def waits_text(threads: list[Thread], resources: dict[str, Resource], most: int = 10) -> str:
    """The waits of ``threads`` (``wait_text``), the first ``most`` of them named, then how
    many more: ``a waits for mutex m in f (3 min); b waits ...; and 4 more``."""
    return "; ".join(wait_text(t, resources) for t in threads[:most]) \
        + (f"; and {len(threads) - most} more" if len(threads) > most else "")


def wait_for_each_other(n: int, who: str = "threads") -> str:
    """``3 threads wait for each other``: a cycle's summary before its steps, whichever source
    found it. ``who``: what waits (``threads``, ``asyncio tasks``)."""
    return f"{n} {who} wait for each other"


def self_deadlock(name: str, lock: str) -> str:
    """Why a thread waiting for a lock it holds itself waits forever, in every source's words."""
    return (f"{name} waits for {lock}, which it holds itself: a lock that is not re-entrant, "
            "taken twice by one thread, waits forever (a self-deadlock).")


# The policy word of a cycle found when its last waiter blocked that raise or abort leave alone
# until it is proven (``stuck.runtime.policy``); the others are the policies' own names.
UNPROVEN = "unproven"


def closing_words(policy: str, closer: str, who: str = "threads") -> str:
    """What the policy did about a cycle found when ``closer``, its last waiter, blocked: said
    after the rules' account of the cycle. ``who``: the waiters (threads, asyncio tasks)."""
    return {
        "raise": f"stuck raised DeadlockError in {closer} instead, with every lock left as it "
                 "was.",
        "abort": "stuck is stopping the program.",
        "report": f"The {who} keep waiting; stuck reports it and does not act.",
        UNPROVEN: f"The {who} keep waiting while stuck looks for the proof the policy needs "
                  "(below).",
    }.get(policy, "")


def cycle_step(op: str | None, kind: str, name: str, other: str, self_loop: bool) -> str:
    """One step of a deadlock cycle, after the waiter's name: ``joins worker``, ``waits for
    mutex_a held by t2``, ``puts on full queue jobs, which only consumer gets from``. The same
    words whether the cycle was found when its last thread blocked or later by the watchdog.
    ``op``: the waiter's operation (acquire, join, put, get, result ...; for an asyncio task
    also await, gather, taskgroup); ``kind``: the
    resource's; ``name``: the resource's; ``other``: the thread holding it or able to end it;
    ``self_loop``: the waiter holds it itself."""
    if op == "join" or kind == "thread":
        return f"joins {other}"
    if op == "await":  # an asyncio task awaiting another
        return f"awaits task {other}"
    if op in ("gather", "taskgroup"):  # ... awaiting a gather or a TaskGroup's tasks
        return f"awaits {name}, in which {other} is not done"
    if self_loop and op in (None, "acquire"):
        return f"takes {name}, which it already holds ({kind} is not reentrant)"
    if op == "put":
        return f"puts on full queue {name}, which only {other} gets from"
    if op == "get" or kind == "queue":
        return f"gets from empty queue {name}, which only {other} puts to"
    if op == "result" or kind == "future":
        return f"waits for {name}, which only {other} can complete"
    if op in (None, "acquire") or kind in ("mutex", "rlock", "semaphore"):
        return f"waits for {name} held by {other}"
    if op == "wait" and kind == "condition":
        return f"waits on condition {name}, which only {other} could wake (it signalled it before)"
    return f"waits for {name} ({op}), which {other} could end"


def channel_words(waiters: list[Thread], resources: Mapping[str, Resource],
                  who: Callable[[str], str | None]) -> list[str]:
    """For each Go channel ``waiters`` wait on (at most 8): who waits on it, in which
    direction, and who else could have served it: the goroutines whose arguments show its
    address, none of which can run. ``who``: how a finding names such a goroutine (None: not
    in the dump)."""
    by_channel: dict[str, list[Thread]] = {}
    for t in waiters:
        if t.waits is not None and (res := resources.get(t.waits.resource)) is not None \
                and res.kind == "channel":
            by_channel.setdefault(res.id, []).append(t)
    words = []
    for rid, ts in list(by_channel.items())[:8]:
        res = resources[rid]
        how = ", ".join(f"{t.label()} ({t.detail or 'waits'})" for t in ts[:4])
        others = [name for o in res.referenced_by or () if (name := who(o)) is not None][:4]
        if others:
            served = ("it could have been served by " + ", ".join(others)
                      + ", whose arguments show its address; none can run")
        elif res.address:
            served = ("no other goroutine's arguments show its address: whoever would "
                      "serve it has returned, or its arguments were not printed ('?')")
        else:
            served = ("its address is not printed, so who else could serve it cannot be "
                      "told from the dump")
        words.append(f"On {res.label or rid}: {how}; {served}.")
    return words
