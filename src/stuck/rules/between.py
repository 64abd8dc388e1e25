"""A pool waiting for work beside a thread that will run again: one snapshot of an idle pool
between batches.

Workers waiting on a condition, a queue, a channel or a job semaphore while another thread of
the process sleeps (or waits with a deadline, or, in a Python dump, is in a call the dump does
not name, as a sleep prints) is what every healthy worker pool looks like between batches: the
dispatcher sleeps, and when it wakes it hands the workers work. The same picture is a stall
when the sleeper never will. One snapshot cannot tell the two apart, so no stall is claimed
from it: the report carries a note that says so, and what tells them apart (a second dump a
while later, or ``stuck capture PID``, which reads every thread twice).

A pool is two or more threads with the same stack (one worker loop) waiting on a resource of a
kind work is handed through. A lone waiter beside a sleeper is not one: a thread waiting for
one signal (a result, a flag) keeps the claim the other rules make, at most ``possible``, with
the sleeper named as what might still end it.

The claim stands where the snapshot itself shows why no other thread can be the one to end the
waits: each waits itself with no deadline (then none is able to run), it has ended, or the
program's source shows its loop does nothing but sleep (``SLEEP_ONLY``). A wait beside a
thread running code is never claimed from one snapshot in the first place (``unwoken``).
"""

from __future__ import annotations

from stuck.model import Thread
from stuck.rules.advice import capture_command
from stuck.rules.reading import Reading, res_name
from stuck.stacks.python import SLEEP_ONLY

MAX_NAMED = 4
# What a pool of workers waits on for its next piece of work: a condition, a queue, a channel,
# a semaphore counting jobs. Not a barrier, a latch, a future or an event: their waiters wait
# for one moment (a party to arrive, a count to reach zero, a result), not for work.
POOL_KINDS = frozenset({"condition", "queue", "channel", "semaphore"})


def pool(dump: Reading, waiters: list[Thread]) -> list[Thread]:
    """The waiters that make up a pool: at least two threads whose stacks are the same (the
    same function, file and line in every frame: one worker loop) waiting on a resource of a
    ``POOL_KINDS`` kind. A lone waiter is not a pool: a thread waiting for one signal beside a
    sleeper keeps its claim (at most possible), as before."""
    by_stack: dict[tuple[object, ...], list[Thread]] = {}
    for t in waiters:
        res = dump.resources.get(t.waits.resource) if t.waits is not None else None
        if res is None or res.kind not in POOL_KINDS:
            continue
        key = (res.kind, *((f.function, f.file, f.line) for f in t.frames))
        by_stack.setdefault(key, []).append(t)
    return [t for group in by_stack.values() if len(group) > 1 for t in group]


def may_produce(t: Thread) -> bool:
    """Could ``t``, which only waits for time to pass, be the thread that hands the waiters
    work when it wakes? Yes, unless the source shows its loop does nothing but sleep."""
    return t.detail != SLEEP_ONLY


def producers(runners: list[Thread]) -> list[Thread]:
    """The threads among ``runners`` (those that will run again) that may end the waits."""
    return [t for t in runners if may_produce(t)]


def _how(t: Thread) -> str:
    """How a thread that may end the waits will run again, in a few words."""
    if t.state == "sleeping":
        return "sleeps"
    if t.state == "blocked":
        return "waits with a deadline"
    if t.state == "unknown":
        return "is in a call the dump does not name (a sleep prints so)"
    return "runs"


def _some(items: list[str]) -> str:
    return ", ".join(items[:MAX_NAMED]) + (
        f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def between_batches(dump: Reading, waiters: list[Thread], runners: list[Thread]) -> None:
    """No stall is claimed for ``waiters``: ``runners`` will run again and may end their
    waits. The report says so once, with what would tell (a note, not a finding: exit 0),
    and no later rule names the waiters from this snapshot alone (``Reading.idle_pool``)."""
    if not waiters or not runners:
        return
    dump.idle_pool.update(t.id for t in waiters)
    rids = list(dict.fromkeys(t.waits.resource for t in waiters if t.waits is not None))
    what = _some(list(dict.fromkeys(res_name(dump.resources.get(r), r) for r in rids)))
    who = _some([t.label() for t in waiters])
    runs = _some([f"{t.label()} {_how(t)}" for t in runners])
    again = capture_command(dump.snap)
    second = ("run `stuck capture PID` again a while later" if again == "stuck capture PID"
              else f"take a second dump a while later ({again}) or run `stuck capture PID`, "
              "which reads every thread twice")
    them = "that thread" if len(runners) == 1 else "those threads"
    note = (f"{who} wait(s) on {what}, a pool waiting for work, while {runs}: {them} "
            "will run again and may then hand them work. An idle pool between batches looks "
            "like this, and so does a stall; one snapshot cannot tell them apart, so no "
            f"stall is claimed. To tell, {second}: workers still waiting at the same lines "
            f"after {them} ran again are stuck")
    if note not in dump.snap.notes:
        dump.snap.notes.append(note)
