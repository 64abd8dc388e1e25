"""A whole-process stall read from stacks: every thread is shown and none can run.

Only for sources that show every thread (``Process.complete``). Nothing in such a process will
wake anyone: the root waits (not behind another waiter) are named, and why nothing ends them.
Sleepers, goroutines a timer may feed, threads in calls the dump does not name, and locks whose
holder the dump does not print each weaken the claim, and each is said. A thread blocked on a
lock that a named waiter holds while it waits to be signalled is a party, not only a victim: it
may be the thread that would signal (``stuck.rules.signaller``).
"""

from __future__ import annotations

from stuck.model import OWNED_KINDS, SIGNAL_WAIT, Confidence, Finding, Thread
from stuck.rules.advice import capture_all, capture_command, owner_hint
from stuck.rules.between import between_batches, pool
from stuck.rules.contention import Working, ordinary_wait
from stuck.rules.reading import (
    SIGNALLED_KINDS,
    TIMER_RULED_OUT,
    TIMER_SERVED,
    Reading,
    res_name,
    thread_name,
)
from stuck.rules.signaller import blocked_on_waiters_locks
from stuck.rules.wording import channel_words, waits_text
from stuck.stacks.native import base_name
from stuck.stacks.python import SLEEP_ONLY


def standstills(dump: Reading) -> None:
    """A process whose every thread is shown and none can run: nothing in it will wake
    anyone. Only for sources that show every thread (``Process.complete``)."""
    stated_stall = {t for f in dump.stated if f.kind == "stall" for t in f.threads}
    for pi, proc in enumerate(dump.snap.processes):
        # A Python excerpt too (py-spy's header names the process; what the paste lacks is
        # visible): its claims stay possible, and joins on threads not shown say nothing.
        if not proc.complete and not (proc.complete is False and proc.name == "python"):
            continue
        if any(t.id in dump.known or t.id in stated_stall for t in proc.threads):
            continue  # the stall rule says more: what the runtime or the library said
        waiters: list[Thread] = []
        unnamed: list[Thread] = []  # off the CPU in a call the dump does not name
        sleepers: list[Thread] = []  # will run again, and might hold a lock meanwhile
        timers: list[Thread] = []  # may be woken by a timer the dump cannot show
        for t in proc.threads:
            if t.state in ("idle", "dead"):
                continue
            if t.state == "blocked" and t.waits is not None and t.waits.durable:
                if _ended_outside(dump, t, pi):
                    break  # another process may end it: the rules across processes judge it
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
            waiters = [t for t in waiters if t.id not in dump.covered and not ordinary_wait(
                t, dump.resources.get(t.waits.resource) if t.waits else None, working)]
            if waiters and any(t.id in dump.covered for t in proc.threads) and all(
                    dump.unknown_join(t) for t in _roots(dump, waiters)):
                # Joins on threads not named, beside a finding: likely its victims, and so
                # are the threads waiting behind them (a JVM's launcher joining main).
                continue
            if waiters:
                standstill_finding(dump, waiters, unnamed, sleepers, timers,
                                   excerpt=proc.complete is False)


def _roots(dump: Reading, waiters: list[Thread]) -> list[Thread]:
    """The waits not on something another of ``waiters`` holds (a join on a waiting thread, a
    lock a waiter holds); the rest wait behind them. All of them when each waits behind
    another."""
    ids = {t.id for t in waiters}
    roots = [t for t in waiters if t.waits is not None and not any(
        o != t.id and o in ids for o in dump.graph.owned_by.get(t.waits.resource, ()))
        and not dump.joins_one_of(t, ids - {t.id})]
    return roots or waiters


def _ended_outside(dump: Reading, t: Thread, pi: int) -> bool:
    """Can a thread of another process end ``t``'s wait (the reader of a pipe it writes, as
    a capture links them)? Then nothing in its own process running is no standstill."""
    assert t.waits is not None
    res = dump.resources.get(t.waits.resource)
    if res is None:
        return False
    return any(dump.process_of.get(o, pi) != pi for o in (*res.owners, *(res.wakers or ())))


def channels_of(dump: Reading, waiters: list[Thread]) -> list[str]:
    """``channel_words`` of a dump's waiters, naming each goroutine that could serve a channel
    with what it is doing."""

    def served_by(tid: str) -> str | None:
        o = dump.threads.get(tid)
        if o is None:
            return None
        return (f"{o.label()} ({o.state}"
                + (f", in {base_name(o.waits.at.function)}"
                   if o.waits is not None and o.waits.at is not None else "") + ")")

    return channel_words(waiters, dump.resources, served_by)


def standstill_finding(dump: Reading, waiters: list[Thread], unnamed: list[Thread],
                       sleepers: list[Thread], timers: list[Thread],
                       excerpt: bool = False) -> None:
    """Nothing in the process runs. With sleepers, any wait might still end when one wakes:
    only the weakest claim stands, a possible lock cycle (a sleeper might hold a lock).
    ``timers``: goroutines receiving from a channel or in select, which a timer could wake
    (a Ticker's channel, time.After): not named as stuck, and the claim is only possible."""
    python = dump.snap.processes[dump.process_of[waiters[0].id]].name == "python"
    blocked = waiters
    # A sleeper whose loop, by the source, does nothing but sleep can wake no one.
    inert = [t for t in sleepers if t.detail == SLEEP_ONLY]
    sleepers = [t for t in sleepers if t.detail != SLEEP_ONLY]
    if python and (unnamed or sleepers or excerpt):
        # A join ends when the joined thread does: one that may run (asleep, or in a call
        # the dump does not name), or that the dump does not identify, is no stuck wait.
        waiters = [t for t in waiters if not dump.join_may_end(t, waiters)]
        if not waiters:
            return
    if (sleepers or (python and unnamed)) and not excerpt:
        # A pool of workers waiting for work beside a thread that sleeps (or, in a Python
        # dump, is in a call the dump does not name, which a sleep prints as), and may hand
        # them some when it wakes: one snapshot of an idle pool between batches (``between``).
        idle_pool = pool(dump, waiters)
        if idle_pool:
            between_batches(dump, idle_pool, [*sleepers, *unnamed])
            waiters = [t for t in waiters if t not in idle_pool]
            if not waiters:
                return
    # Root waits: not on something another waiter holds. The rest wait behind the roots.
    roots = _roots(dump, waiters)
    if python:  # a join on a thread the dump does not identify says least: named last
        roots.sort(key=dump.unknown_join)
    root_ids = {t.id for t in roots}
    # A thread off the CPU in a call the dump does not name may be asleep (py-spy shows no
    # frame for time.sleep): it is described, never named as stuck.
    tids = [t.id for t in roots] + ([] if python else [t.id for t in unnamed])
    tid_set = set(tids)
    rids = list(dict.fromkeys(t.waits.resource for t in roots if t.waits is not None))
    behind = [b for b in dump.graph.behind(tids, rids) if b not in tid_set]
    behind_set = set(behind)
    behind += [t.id for t in waiters if t.id not in root_ids and t.id not in behind_set]
    words = [waits_text(roots, dump.resources) + "."]
    missing: list[str] = []
    pid = dump.snap.processes[dump.process_of[waiters[0].id]].pid or "PID"
    for t in unnamed[:10]:
        top = t.frames[0]
        where = f"{base_name(top.function)} ({top.where()})"
        words.append(f"{t.label()} is off the CPU in {where}, inside a call the dump "
                     "does not name.")
        missing.append(f"what {t.label()} waits for in {where} is not in the dump (a lock "
                       f"acquire, a sleep or I/O look alike here); `pystack remote {pid}` "
                       f"or `py-spy dump --native --pid {pid}` would show the call")
    unowned = [r for r in rids if (res := dump.resources.get(r)) is not None
               and res.kind in OWNED_KINDS and not res.owners]
    unowned_set = set(unowned)
    for r in unowned[:10]:
        missing.append(owner_hint(dump.snap, dump.resources[r]))
    lock_roots = [t for t in roots if t.waits is not None
                  and t.waits.resource in unowned_set]
    # Every root waits for a lock nobody visible is known to hold, on at least two locks:
    # if each holds what another waits for, a cycle; the dump lacks the owners to say.
    # (A Python join on a thread the dump does not identify, beside them, waits behind one.)
    py_joins = [t for t in roots if python and dump.unknown_join(t)]
    lock_cycle = (not unnamed and len(lock_roots) + len(py_joins) == len(roots)
                  and len(unowned_set) > 1)
    if python and excerpt and lock_roots:
        return  # the holder may be a thread the paste lacks: the hang rule names the wait
    if lock_cycle and python:  # each blocked thread may be a holder: all are parties
        extra = [t.id for t in blocked if t.id not in root_ids]
        tids += extra
        behind = [b for b in behind if b not in set(extra)]
    # Every root waits for a thread the dump does not name: the holder of one lock (a
    # C mutex or a Python Lock whose holder is not printed: a live thread, or one that
    # ended holding it), or the thread a join waits for (Java's Thread.join names no
    # thread). That thread is one of the waiters (the waiter itself, a thread waiting
    # behind it), a sleeper, or one that exited. Any waiter closes a cycle: name them all
    # as parties. The same rule for every runtime; a Python dump shows the lock wait
    # through its native frames (lock_PyThread_acquire_lock) or its source line, and a
    # Python join counts only where its target is identified (one that may end, asleep
    # or in a call the dump does not name, was set aside above).
    joins = [t for t in roots if dump.unknown_join(t)]
    holders: list[Thread] = []
    if not unnamed and len(lock_roots) + len(joins) == len(roots) \
            and (len(unowned_set) == 1 or (joins and len(unowned_set) <= 1)) \
            and (lock_roots or not python):
        holders = [*roots, *(t for t in blocked if t.id not in root_ids)]
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
        missing.append(capture_all(dump.snap))
    if len(lock_roots) + len(unnamed) > 1 and lock_roots:
        missing.append("if each lock waiter holds a lock another one waits for, this is a "
                       "deadlock; the dump does not show which locks a thread holds")
    goroutines = roots[0].id.startswith("goroutine ")
    if goroutines:
        words.extend(channels_of(dump, roots))
        if any(t.detail == "select" for t in roots):
            missing.append("a goroutine in select may also have a timer case (time.After, "
                           "a ticker) that the dump does not show; the Go runtime's own "
                           "check counts timers")
        proc = dump.snap.processes[dump.process_of[roots[0].id]]
        signal_waits = [t for t in proc.threads if t.detail == SIGNAL_WAIT]
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
                       f"{capture_command(dump.snap)})")
    if not lock_cycle:
        # A thread blocked on a lock that a root holds while it waits to be signalled (a
        # queue, an event, a condition) may be the one that would signal it: a party to the
        # stall, not only its victim (``stuck.rules.signaller``).
        signallers = [(b, r, h) for b, r, h in blocked_on_waiters_locks(
            tids, behind, dump.graph, dump.resources) if _signalled(dump, h)]
        if signallers:
            locker_ids = {b for b, _, _ in signallers}
            tids += [b for b in dict.fromkeys(b for b, _, _ in signallers)]
            behind = [b for b in behind if b not in locker_ids]
            missing.append("; ".join(
                f"{thread_name(dump.threads.get(b), b)} waits for "
                f"{res_name(dump.resources.get(r), r)}, which "
                f"{thread_name(dump.threads.get(h), h)} holds while it waits" for b, r, h
                in signallers[:4])
                + ": if one of them is the thread that would signal, they wait for each "
                "other (a deadlock through the wait); a dump does not show who signals what")
    first = roots[0]
    others = f" and {len(tids) - 1} more thread(s)" if len(tids) > 1 else ""
    if holders:
        parts = []
        if unowned:
            lock_name = res_name(dump.resources.get(unowned[0]), unowned[0])
            lockers = ", ".join(t.label() for t in lock_roots[:4]) + (
                f" and {len(lock_roots) - 4} more" if len(lock_roots) > 4 else "")
            parts.append(f"{lockers} wait(s) for {lock_name}, whose holder the dump does "
                         "not show")
            # (a thread re-entering an RLock it holds does not wait: no self-deadlock there)
            itself = ("a thread re-entering an RLock it holds does not wait, so not the "
                      "waiter itself" if dump.resources[unowned[0]].kind == "rlock" else
                      "a thread that takes a lock it already holds waits for itself")
            words.append(f"Whoever holds {lock_name} is one of these waiters ({itself}; one "
                         "that holds it while waiting for the lock's waiter waits in a "
                         "cycle), a sleeping thread, or a thread that exited holding it.")
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
        summary = _one_waiter_summary(dump, lock_roots, unowned, behind_h, sleepers) \
            if unowned and not joins and len(lock_roots) == 1 else ("; ".join(parts)
                   + ("; " + ", ".join(t.label() for t in behind_h[:4])
                      + " wait(s) behind them" if behind_h else "")
                   + ": no other thread can run"
                   + (" but sleepers, which might be those unseen threads" if sleepers else "")
                   + ", so if those unseen threads are among these waiters, they wait for "
                   "each other in a cycle")
        tids = [t.id for t in holders]
        tid_set = set(tids)
        behind = [b for b in behind if b not in tid_set]
    elif lock_cycle:
        names = ", ".join(t.label() for t in lock_roots[:4]) + (
            f" and {len(lock_roots) - 4} more" if len(lock_roots) > 4 else "")
        summary = (f"{names} each wait for a lock whose holder the dump does not show, and "
                   "nothing else in the process can run: if each holds what another waits "
                   "for, they wait for each other in a cycle")
    elif python and (unnamed or sleepers or excerpt):
        res_first = dump.resources.get(first.waits.resource) if first.waits else None
        head = (f"{first.label()} waits on {res_name(res_first, roots[0].id)}"
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
        summary = (f"nothing in this process can run: {first.label()}{others} "
                   + ("wait" if others else "waits")
                   + ", and no thread is left to wake " + ("them" if others else "it"))
    dump.findings.append(Finding(
        kind="deadlock" if lock_cycle else "stall", confidence=confidence, summary=summary,
        explanation=" ".join(words), threads=tids, resources=rids, blocked_behind=behind,
        missing_evidence=list(dict.fromkeys(missing)),  # two locks of one label: said once
        details={"whole_process": True,
                 "evidence": "every thread of the process is shown and none can run"}))
    dump.covered.update(tids)
    dump.covered.update(behind)


def _one_waiter_summary(dump: Reading, lock_roots: list[Thread], unowned: list[str],
                        behind: list[Thread], sleepers: list[Thread]) -> str:
    """One thread waits for a lock whose holder is not shown, the others behind it: who could
    hold it, in a sentence."""
    res1 = dump.resources[unowned[0]]
    others = [t.label() for t in behind[:4]]
    # (a thread re-entering an RLock it holds does not wait: no self-deadlock there)
    ifs = [] if res1.kind == "rlock" else ["it holds it itself (a self-deadlock)"]
    if others:
        ifs.append(f"{', '.join(others)}, which wait(s) behind it, holds it")
    elif not ifs:
        ifs.append("a thread that waits behind it holds it")
    return (f"{lock_roots[0].label()} waits for {res1.named()}, whose holder the dump does "
            "not show, and no thread that could release it can run"
            + (" but sleepers, which might hold it" if sleepers else "")
            + ": if " + " or ".join(ifs) + ", they wait in a cycle")


def _signalled(dump: Reading, tid: str) -> bool:
    """Whether ``tid`` waits for another thread's signal (not for a lock or a join)."""
    t = dump.threads.get(tid)
    res = dump.resources.get(t.waits.resource) if t is not None and t.waits else None
    return res is not None and res.kind in SIGNALLED_KINDS
