"""Hang: a thread that has made no progress past the limit, and that no other rule explains.

Not a proof but a time limit: always ``possible``.

- Live (``hang_finding``, applied by the watchdog, which samples progress over time): the limit
  the user set (``--hang-after``). What the thread was doing decides whether it is worth a
  finding at all: a thread in I/O or running round the same code is; one idle, asleep or
  blocked in a wait the other rules judge is not, unless other threads wait on what it holds
  or could signal (then they are stuck behind it).
- Read from stacks (``hangs``, the last rule for read facts): a wait that lasted at least
  ``ReadFacts.hang_after`` (or, from a source that shows no durations, a lock wait or a wait in
  a process where nothing runs), reported at the root of its wait chain with what the dump
  lacks to say more. One such root says more: a write on a full pipe or socket by a thread
  that holds a lock others are blocked on, where nothing else reads, polls or runs: those lock
  waiters may be the reader, a possible stall naming them (``_write_under_lock``). A write on
  a full pipe or socket in an excerpt, beside no shown thread that reads, polls or runs, is a
  root too (``Reading.excerpt_write``): its reader is outside the text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stuck.model import OWNED_KINDS, Finding, Snapshot, Thread
from stuck.rules.wording import wait_text
from stuck.stacks.native import base_name

if TYPE_CHECKING:
    from stuck.rules.reading import Reading

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
                 behind: list[str], limit: float | None, pid: int,
                 interval: float | None = None, samples: int | None = None) -> Finding:
    """The finding for ``thread``, without progress for ``seconds`` (``limit``: the hang
    limit) while ``activity``; ``behind``: the threads waiting on what it holds or signals;
    ``interval``: seconds between the watchdog's samples, ``samples``: how many showed no
    progress."""
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
    how_often = [f"every {interval:g} s"] if interval is not None else []
    if samples is not None:
        how_often.append(f"{samples} sample{'s' if samples != 1 else ''} in that time")
    explanation = [
        (f"The watchdog's limit is {limit:g} s. " if limit is not None else "")
        + "The watchdog samples every thread's stack"
        + (f" ({'; '.join(how_often)})" if how_often else "")
        + ": at no sample was this thread at a line or in a stack it had not been seen at "
        f"before, and it was in the same state at every sample ({doing}). What it does "
        "between samples is not seen: a poll loop that sleeps and checks a flag nobody sets "
        "wakes many times, yet is seen asleep on the same line each time, and that is what a "
        "hang looks like. Values changing inside a loop do not count either: a loop that "
        "counts while it waits for a flag is as stuck as one that does nothing. Nor does "
        "work repeated by the same lines: a loop that submits thousands of jobs for longer "
        "than the limit is reported too, so keep the limit above the longest such loop.",
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


def hangs(dump: Reading) -> None:
    """Long or unexplained waits no earlier rule covered, one finding per root of a wait
    chain (threads waiting for the same thing with no known owner are its peers), always
    ``possible``: no cycle and no idle-only wake-up set is proven."""
    # Imported here: the watchdog imports this module for hang_finding and reads no stacks
    # (as in engine.judge_read).
    from stuck.rules.advice import capture_all, owner_hint
    from stuck.rules.contention import Working, ordinary_wait
    from stuck.rules.reading import TIMER_SERVED, res_name

    by_root: dict[str, list[str]] = {}
    peer_root: dict[str, str] = {}  # resource -> first unowned waiter on it
    roots = dump.graph.roots()
    for proc in dump.snap.processes:
        idle_process = proc.complete is not False and not any(
            t.state in ("running", "io", "sleeping") for t in proc.threads)
        working = Working(proc.threads)
        for t in proc.threads:
            if t.id in dump.covered or t.waits is None:
                continue
            long = t.waits.duration is not None and t.waits.duration >= dump.hang_after
            if t.id in dump.idle_pool and not long:
                continue  # an idle pool between batches, as far as one snapshot shows
            if t.detail in TIMER_SERVED and not long:
                continue  # a Go receive or select a timer may end at any moment
            if not long and dump.unknown_join(t) and any(
                    o.id in dump.covered for o in proc.threads):
                continue  # joins a thread not named, beside a finding: likely its victim
            if not long and proc.name == "python" and dump.join_runs_on(t, proc):
                continue  # the joined thread may still be running: it ends the join
            if t.state == "blocked" and t.waits.durable:
                # A source that shows every thread but no durations (Python dumps): a
                # lock wait with no timeout is worth naming, as a possible hang.
                res = dump.resources.get(t.waits.resource)
                # (an excerpt too: the lock waiter is in the text, its holder may not be)
                lock_wait = (proc.complete is not None and t.waits.duration is None
                             and res is not None
                             and (res.kind in OWNED_KINDS or res.kind == "future"
                                  or dump.joins_holding(t)))
                if lock_wait and ordinary_wait(t, res, working):
                    continue  # contention or a future in the works, caught in a snapshot
                if not (long or lock_wait or (t.waits.duration is None and idle_process)):
                    continue
            elif not long and not dump.child_wait(t, proc) and not dump.excerpt_write(t, proc):
                continue
            root = roots.get(t.id, t.id)
            if root in dump.covered:
                continue
            root_t = dump.threads.get(root)
            if root != t.id and root_t is not None and root_t.waits is not None and not (
                    root_t.waits.duration is not None
                    and root_t.waits.duration >= dump.hang_after) \
                    and dump.unknown_join(root_t) \
                    and any(o.id in dump.covered for o in proc.threads):
                continue  # behind a join on a thread not named, beside a finding: a victim too
            if root == t.id and t.waits.resource in peer_root:
                root = peer_root[t.waits.resource]  # same wait, no known owner: peers
            elif root == t.id:
                peer_root[t.waits.resource] = t.id
            by_root.setdefault(root, []).append(t.id)
    for root, members in by_root.items():
        root_t = dump.threads[root]
        peers = [m for m in members if m != root and root_t.waits is not None
                 and dump.graph.waits_on.get(m) == root_t.waits.resource]
        peer_set = set(peers)
        behind = [m for m in members if m != root and m not in peer_set]
        seen_behind = set(behind)
        behind += [b for b in dump.graph.behind([root], [])
                   if b not in seen_behind and b != root]
        if _write_under_lock(dump, root_t, behind):
            continue
        rids: list[str] = []
        words = []
        for m in members:
            w = dump.threads[m].waits
            if m != root and w is not None and w.resource not in rids:
                rids.append(w.resource)
        if root_t.waits is not None and root_t.waits.resource not in rids:
            rids.append(root_t.waits.resource)
        missing = [f"owner of {res_name(dump.resources.get(r), r)}: {dump.inferred[r]}"
                   for r in rids if r in dump.inferred]
        if root_t.waits is not None:
            res = dump.resources.get(root_t.waits.resource)
            words.append(wait_text(root_t, dump.resources) + ".")
            if res is not None and res.kind == "future" and not res.owners:
                proc = dump.snap.processes[dump.process_of[root]]
                idle = [o.label() for o in proc.threads if o.state == "idle"]
                missing.append("which thread runs the future is not in the dump"
                               + (f"; every pool worker shown is idle ({', '.join(idle[:4])}"
                                  + (", …" if len(idle) > 4 else "") + ")" if idle else "")
                               + ": the one running it may be cut from the dump or waiting "
                               "outside Python (a subprocess, a socket); py-spy dump "
                               "--native or a complete dump would show it")
            elif res is not None and dump.joins_holding(root_t):
                held = ", ".join(res_name(dump.resources.get(h), h)
                                 for h in root_t.holds[:3])
                missing.append(f"{root_t.label()} holds {held} while it joins a thread the "
                               "dump does not show: if that thread needs it, they wait for "
                               "each other (a deadlock); a complete dump shows the joined "
                               "thread ("
                               + ("jstack -l PID" if "jstack" in (dump.snap.source.format
                                                                  or "")
                                  else "py-spy dump --locals --pid PID") + ")")
            elif res is not None and res.kind in ("pipe", "socket") \
                    and root_t.waits.direction == "write":
                fd = res.label.split(" to be read", 1)[0]
                if dump.snap.processes[dump.process_of[root]].complete is False:
                    missing.append(
                        f"who would read {fd} is not in the text: a thread the paste left out "
                        "(blocked too, or busy with the last record: a pipeline whose reader "
                        "is slower than its writer is caught this way as well), or another "
                        "process; `stuck capture PID` reads /proc/PID/fd and fdinfo and names "
                        "who holds the other end and what it waits for")
                else:
                    missing.append(
                        f"who would read {fd} is not in a thread dump, and no thread of this "
                        "process reads, polls or runs: if its read end is held by this "
                        "process (a pipe inside one process, or one a child shares while this "
                        "process waits for it), nothing will drain it; `stuck capture PID` "
                        "reads /proc/PID/fd and fdinfo and names who holds the other end")
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
            elif res is not None and res.kind in OWNED_KINDS and not res.owners:
                # The command for this source that prints who holds it: in an excerpt too,
                # where it tells a holder among the threads shown from one the text lacks.
                missing.append(owner_hint(dump.snap, res))
            elif res is not None and not dump.graph.owned_by.get(res.id):
                missing.append(f"who holds or would end the wait on {res_name(res, res.id)} "
                               "is not in the dump")
        else:
            words.append(f"{root_t.label()} is {root_t.state}"
                         + (f" in {base_name(root_t.frames[0].function)}"
                            if root_t.frames else "") + ".")
        if behind:
            first = dump.threads[behind[0]]
            words.append(f"{len(behind)} thread(s) wait behind it"
                         + (f", e.g. {wait_text(first, dump.resources)}"
                            if first.waits is not None else "") + ".")
        words.append("No cycle and no idle-only wake-up set is proven, so this is reported "
                     "as a hang, not a deadlock.")
        durations: list[float] = []
        for m in members:
            w = dump.threads[m].waits
            if w is not None and w.duration is not None:
                durations.append(w.duration)
        longest = max(durations) if durations else None
        summary = (wait_text(root_t, dump.resources) if root_t.waits is not None
                   else f"{root_t.label()} is {root_t.state}")
        if peers:
            summary += f" (and {len(peers)} more waiting for the same)"
        summary += (f"; {len(behind)} thread(s) blocked behind it" if behind else "")
        summary += "; nothing in the dump shows what would end it"
        if longest is None:
            missing.append("the dump does not say how long the threads have waited")
        if dump.snap.processes[dump.process_of[root]].complete is False:
            missing.append(capture_all(dump.snap))
        dump.findings.append(Finding(
            kind="hang", confidence="possible", summary=summary, explanation=" ".join(words),
            threads=[root, *peers], resources=rids, blocked_behind=behind,
            missing_evidence=missing))
        dump.covered.add(root)
        dump.covered.update(peers)
        dump.covered.update(behind)


def _write_under_lock(dump: Reading, writer: Thread, behind: list[str]) -> bool:
    """A write blocked on a full pipe or socket, in a complete dump where no thread of the
    process reads, polls or runs, by a thread that holds a lock others are blocked on: each of
    those may be the reader (it would read once it had the lock), and then the two wait for
    each other. A dump does not show who holds the read end (another process may), so it is a
    possible stall naming the writer and those lock waiters. True when it was reported."""
    from stuck.rules.reading import res_name, thread_name
    from stuck.rules.signaller import blocked_on_waiters_locks

    w = writer.waits
    res = dump.resources.get(w.resource) if w is not None else None
    if w is None or res is None or res.kind not in ("pipe", "socket") or w.direction != "write":
        return False
    proc = dump.snap.processes[dump.process_of[writer.id]]
    if not dump.child_wait(writer, proc):
        return False  # a thread of the process may still read it
    lockers = blocked_on_waiters_locks([writer.id], behind, dump.graph, dump.resources)
    if not lockers:
        return False
    fd = res.label.split(" to be read", 1)[0]
    locks = list(dict.fromkeys(r for _, r, _ in lockers))
    lock_names = ", ".join(res_name(dump.resources.get(r), r) for r in locks)
    names = ", ".join(thread_name(dump.threads.get(b), b) for b, _, _ in lockers[:4])
    tids = [writer.id, *dict.fromkeys(b for b, _, _ in lockers)]
    rest = [b for b in behind if b not in set(tids)]
    summary = (f"{writer.label()} waits for {res.kind} {fd} to be read while it holds "
               f"{lock_names}; "
               f"{names} wait(s) for that lock: if one of them is the reader, they wait for "
               "each other, and no other thread of the process reads, polls or runs")
    words = [wait_text(writer, dump.resources) + ".",
             f"It holds {lock_names} (the owner print shows it), which {names} wait(s) for.",
             f"A write on a full {res.kind} ends only when the other end reads; every thread "
             "of this process is shown, and none reads, polls or runs: the reader is one of "
             "the threads waiting for the writer's lock, or another process."]
    missing = [f"who reads {fd} is not in a thread dump: if its read end is held by another "
               "process, that process may still drain it; `stuck capture PID` reads "
               "/proc/PID/fd and fdinfo and names who holds the other end",
               "if one of the lock waiters is the reader, this is a deadlock through the "
               f"{res.kind}; a dump does not show who reads what"]
    dump.findings.append(Finding(
        kind="stall", confidence="possible", summary=summary, explanation=" ".join(words),
        threads=tids, resources=[w.resource, *locks], blocked_behind=rest,
        missing_evidence=missing,
        details={"evidence": f"a write on a full {res.kind} under a lock its waiters need"}))
    dump.covered.update(tids)
    dump.covered.update(rest)
    return True
