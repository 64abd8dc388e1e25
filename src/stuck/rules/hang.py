"""Hang: a thread that has made no progress past the limit, and that no other rule explains.

Not a proof but a time limit the user set (``--hang-after``): always ``possible``. What the
thread was doing decides whether it is worth a finding at all: a thread in I/O or running
round the same code is; one idle, asleep or blocked in a wait the other rules judge is not,
unless other threads wait on what it holds or could signal (then they are stuck behind it).
"""

from __future__ import annotations

from stuck.model import Finding, Snapshot, Thread

# Kinds whose waits a thread that signalled them before could end (a condition's notifier).
SIGNALLED_KINDS = frozenset({"condition", "event", "queue", "future", "barrier", "semaphore"})


def held_up_by(snap: Snapshot) -> dict[str, list[str]]:
    """Thread id -> the waiters it could release: those waiting for a lock it holds, and those
    waiting on a primitive it signalled before."""
    resources = snap.resource_map()
    holders: dict[str, list[str]] = {}
    for waiter in snap.threads():
        if waiter.waits is None:
            continue
        res = resources.get(waiter.waits.resource)
        if res is None:
            continue
        for owner in res.owners:
            holders.setdefault(owner, []).append(waiter.id)
        for waker in res.wakers or ():
            if res.kind in SIGNALLED_KINDS and waker != waiter.id:
                holders.setdefault(waker, []).append(waiter.id)
    return holders


def is_hang(thread: Thread, activity: str, behind: list[str]) -> bool:
    """Whether a thread without progress past the limit is a hang: not in a durable wait (the
    deadlock and stall rules judge those), and running or in I/O, or holding others up."""
    if thread.waits is not None and thread.waits.durable:
        return False
    return activity not in ("blocked", "idle", "sleeping") or bool(behind)


def hang_finding(thread: Thread, seconds: float, activity: str, call: str | None,
                 behind: list[str], limit: float | None, pid: int) -> Finding:
    """The finding for ``thread``, without progress for ``seconds`` (``limit``: the hang
    limit) while ``activity``; ``behind``: the threads waiting on what it holds or signals."""
    where = thread.frames[0].where() if thread.frames else "?"
    func = thread.frames[0].function if thread.frames else "?"
    doing = {
        "io": f"in I/O ({call or 'a blocking call'})",
        "running": "running without progress (round the same lines)",
        "sleeping": f"sleeping ({call or 'sleep'})",
        "idle": f"idle ({call or 'waiting'})",
        "blocked": f"blocked ({call or 'waiting'})",
    }.get(activity, activity)
    summary = (f"{thread.label()} has made no progress for {seconds:.1f} s: {doing} "
               f"in {func} at {where}")
    explanation = [
        (f"The watchdog's limit is {limit:g} s. " if limit is not None else "")
        + "The thread reached no new line, entered or left "
        "no wait, I/O or sleep, and did no tracked operation in that time (values changing "
        "inside a loop do not count: a loop that counts while it waits for a flag is as stuck "
        "as one that does nothing).",
    ]
    if activity == "io":
        explanation.append("It is waiting for something outside the process (a socket, a "
                           "file, a child process); the other side may never answer. Give "
                           "the call a timeout.")
        if call is not None and "child pid" in call:
            explanation.append(f"`stuck capture --tree {pid}` reads this process and its "
                               "children from outside, with what each waits for.")
        else:
            explanation.append(f"`stuck capture {pid}` reads it from outside and names the "
                               "other end of its pipes and local sockets, and what that end "
                               "waits for (a cycle through two processes is a deadlock).")
    elif activity == "running":
        explanation.append("It is executing, but going round the same code without "
                           "change: a loop waiting for a condition nobody makes true, or a "
                           "computation much longer than expected.")
    if behind:
        explanation.append(f"{len(behind)} thread(s) wait on what it holds or could signal.")
    return Finding(
        kind="hang", confidence="possible", summary=summary,
        explanation="\n".join(explanation), threads=[thread.id], blocked_behind=behind,
        missing_evidence=["why it makes no progress is not proven: this is a time limit, "
                          "not a rule"],
        details={"seconds_without_progress": round(seconds, 3), "activity": activity,
                 "call": call},
    )
