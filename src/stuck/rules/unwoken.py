"""A wait read from stacks that nothing able to run will end: a stall.

For each durable wait not already in a finding: a lock whose owner has gone or is parked; a
signalled primitive (condition, event, queue, channel, future) when no other thread of the
process can run, or only threads waiting for time to pass, or (by ``known``) none of those that
could end it. The recorded-facts counterpart is ``stall``, which knows who declared it could
wake the waiter; a dump counts every other thread as a possible waker unless it names them
(``Resource.wakers``).
"""

from __future__ import annotations

from stuck.model import OWNED_KINDS, Confidence, Finding, Thread
from stuck.rules.advice import capture_all, capture_command
from stuck.rules.between import between_batches, pool, producers
from stuck.rules.contention import Working
from stuck.rules.knot import can_progress
from stuck.rules.known import Known
from stuck.rules.reading import (
    PARKED_FOR_GOOD,
    SIGNALLED_KINDS,
    TIMER_RULED_OUT,
    TIMER_SERVED,
    Reading,
    on_timer,
    res_name,
    thread_name,
)
from stuck.rules.signaller import blocked_on_waiters_locks
from stuck.rules.standstill import channels_of
from stuck.rules.wording import NO_WAKER_RUNS, waits_text


def unwoken_waits(dump: Reading) -> None:
    """Per process, the durable waits not yet in a finding that nothing able to run will end:
    one stall for those no thread can end, one for those only threads waiting for time to pass
    could (at most ``possible``)."""
    certain_processes = {dump.process_of[t] for f in dump.stated
                         if f.kind == "stall" for t in f.threads if t in dump.process_of}
    stated_words = {dump.process_of[t]: f.summary for f in dump.stated if f.kind == "stall"
                    for t in f.threads if t in dump.process_of}
    for pi, proc in enumerate(dump.snap.processes):
        waiters: list[Thread] = []
        proven = pi in certain_processes
        progressing = sum(1 for o in proc.threads if can_progress(o))
        # Only sleepers and deadline waits can run: nothing runs code now, and what could
        # end a signalled wait would have to do so when its timer fires. (Counted once,
        # when a signalled wait first needs it.)
        timers: list[Thread] | None = None
        awake = 0
        timer_waiters: list[Thread] = []
        parked_visible = any(o.state in ("idle", "dead") for o in proc.threads)
        # An excerpt that visibly lacks threads: who would end a wait may be among them,
        # so "no other thread can" is not known (calibration).
        excerpt = proc.complete is False
        # A dump that does not say it shows every thread (gdb threads not numbered 1..N, a
        # paste without "Full thread dump"): the others may be anywhere, so "none that could
        # wake it is left" is a guess too, the same as for a visible excerpt. (A live
        # snapshot holds every thread of the process it runs in.)
        whole_unknown = proc.complete is None and dump.snap.source.kind != "live"
        working = Working(proc.threads)  # reads the threads only if a future wait asks
        for t in proc.threads:
            if t.id in dump.covered or t.state != "blocked" or t.waits is None:
                continue
            if not t.waits.durable:
                continue
            others_progress = progressing - (1 if can_progress(t) else 0) > 0
            res = dump.resources.get(t.waits.resource)
            kind = res.kind if res is not None else "unknown"
            if kind in OWNED_KINDS:
                owners = res.owners if res is not None else []
                if proven or (owners and not excerpt
                              and all(o not in dump.threads for o in owners)):
                    waiters.append(t)
                elif not owners and parked_visible and not others_progress and not excerpt:
                    # The rest of the process is visible and parked: the owner, whoever
                    # it is, cannot run either.
                    waiters.append(t)
                elif owners and proc.complete and all(
                        o in dump.threads and dump.threads[o].state == "idle"
                        for o in owners):
                    # The owner is idle (a pool worker between tasks, which ended one
                    # holding the lock): it releases it only if it is handed work, which
                    # nothing able to run does, unless a thread woken by its timer would.
                    if not others_progress:
                        waiters.append(t)
                    else:
                        if timers is None:
                            timers = [o for o in proc.threads
                                      if on_timer(o, dump.resources)]
                            awake = progressing - len(timers)
                        if awake <= 0:
                            timer_waiters.append(t)
                continue
            if dump.graph.owned_by.get(t.waits.resource):
                continue  # someone holds it: a chain, judged by the hang rule
            if excerpt and not proven and kind == "thread":
                continue  # a join on a thread the excerpt may have left out: says nothing
            if not proven and dump.unknown_join(t) and any(
                    o.id in dump.covered for o in proc.threads):
                continue  # joins a thread not named, beside a finding: likely its victim
            if not proven and t.detail in TIMER_SERVED and (
                    t.waits.duration is None or t.waits.duration < TIMER_RULED_OUT):
                continue  # a Go receive or select a timer may end: nothing to claim
            if proven:
                waiters.append(t)
                continue
            if res is not None and res.wakers is not None:
                wakers = dump.possible_wakers(t, res, proc.threads)
                if not any(can_progress(w) for w in wakers):
                    waiters.append(t)
                continue
            k = dump.known.get(t.id)
            if k is not None and not k.busy:
                # Knowledge names the possible wakers: other threads running elsewhere
                # do not keep this wait from being a stall, one of them running does.
                if k.can_be_woken():
                    continue
                if others_progress and k.has_wakers():
                    waiters.append(t)
                    dump.knowledge_only.add(t.id)
                    continue
            if not others_progress:
                waiters.append(t)
            elif (kind in SIGNALLED_KINDS or (kind == "future"
                                              and not working.in_task_besides(t.id))) \
                    and proc.complete is not None \
                    and t.detail != PARKED_FOR_GOOD:
                # (a future is signalled too, by the pool worker that runs its task: with
                # none inside a task, only a thread woken by its timer could start one)
                if timers is None:
                    timers = [o for o in proc.threads if on_timer(o, dump.resources)]
                    awake = progressing - len(timers)
                if awake - (1 if can_progress(t) else 0) <= 0:
                    timer_waiters.append(t)
        if waiters:
            unwoken_finding(dump, waiters, proc.threads, proven, stated_words.get(pi),
                            excerpt=excerpt or whole_unknown)
        if timer_waiters:
            runners = [o for o in timers or () if o.id not in dump.covered]
            idle_pool = pool(dump, timer_waiters) if producers(runners) else []
            if idle_pool:
                # One snapshot of an idle pool between batches looks the same: no claim.
                between_batches(dump, idle_pool, producers(runners))
                timer_waiters = [t for t in timer_waiters if t not in idle_pool]
            if timer_waiters:
                unwoken_finding(dump, timer_waiters, proc.threads, proven, None,
                                excerpt=excerpt or whole_unknown, timers=runners)


def unwoken_finding(dump: Reading, waiters: list[Thread], process_threads: list[Thread],
                    proven: bool, stated: str | None, excerpt: bool = False,
                    timers: list[Thread] | None = None) -> None:
    """``timers``: threads that only wait for time to pass and will run again: any of
    them might end the waits when it does, so the claim is at most possible."""
    tids = [t.id for t in waiters]
    rids = list(dict.fromkeys(t.waits.resource for t in waiters if t.waits is not None))
    tid_set = set(tids)
    others = [o for o in process_threads if o.id not in tid_set]
    idle = [o.id for o in others if o.state == "idle"]
    blocked = [o.id for o in others if o.state == "blocked"]
    dead = [o.id for o in others if o.state == "dead"]
    behind = dump.graph.behind(tids, rids)
    behind = [b for b in behind if b not in tid_set]
    missing: list[str] = []
    lockers = [] if proven else blocked_on_waiters_locks(tids, behind, dump.graph,
                                                         dump.resources)
    if lockers:  # each may be the signaller: a party to the stall, not only its victim
        locker_ids = {b for b, _, _ in lockers}
        tids += [b for b, _, _ in lockers]
        behind = [b for b in behind if b not in locker_ids]
        missing.append("; ".join(
            f"{thread_name(dump.threads.get(b), b)} waits for "
            f"{res_name(dump.resources.get(r), r)}, which {thread_name(dump.threads.get(h), h)} "
            "holds while it waits" for b, r, h in lockers[:4])
            + ": if one of them is the thread that would signal, they wait for each other "
            "(a deadlock through the wait); a dump does not show who signals what")
    known = {t.id: k for t in waiters if (k := dump.known.get(t.id)) is not None
             and not k.busy}
    known_rids = {k.thread.waits.resource for k in known.values()
                  if k.thread.waits is not None}
    by_knowledge = [t for t in tids if t in dump.knowledge_only]
    wakers_known = all(
        dump.resources.get(r) is not None and dump.resources[r].wakers is not None
        for r in rids)
    absent_owner = []
    for t in waiters:
        assert t.waits is not None
        res = dump.resources.get(t.waits.resource)
        if res is not None and res.kind in OWNED_KINDS and res.owners and all(
                o not in dump.threads or dump.threads[o].state == "idle"
                for o in res.owners):
            present = [o for o in res.owners if o in dump.threads]
            said = (f"{res_name(res, res.id)} is owned by "
                    + (f"{', '.join(thread_name(dump.threads[o], o) for o in present)}, which "
                       "is idle, waiting for work, and releases it only if handed a task"
                       if present else f"{', '.join(res.owners)}, which is not in the "
                       "dump (exited while holding it?)"))
            if said not in absent_owner:
                absent_owner.append(said)
    if proven or wakers_known:
        confidence: Confidence = "certain"
    else:
        unowned_wait = any(
            dump.resources.get(r) is not None and dump.resources[r].kind in OWNED_KINDS
            and not dump.resources[r].owners for r in rids)
        confidence = "probable" if not any(o.state == "unknown" for o in others) \
            and not unowned_wait and not by_knowledge else "possible"
        for r in rids:
            if r in known_rids:
                continue  # knowledge says who could signal it (below)
            res = dump.resources.get(r)
            if res is not None and res.kind in OWNED_KINDS and res.owners:
                continue  # a lock is released by its owner, named above: no signaller
            missing.append(f"which thread would signal {res_name(res, r)} is not in the "
                           "dump: every other thread of the process counts as a possible "
                           "waker")
        unowned = [r for r in rids if dump.resources.get(r) is not None
                   and dump.resources[r].kind in OWNED_KINDS
                   and not dump.resources[r].owners]
        if unowned:
            missing.append("which thread holds " + ", ".join(
                res_name(dump.resources.get(r), r) for r in unowned)
                + " is not in the dump; if the waiters hold what the others want, this is a "
                "deadlock (gdb: print the mutex and read __owner)")
        if len(waiters) > 1 and len(known) < len(waiters) and len(absent_owner) < len(rids):
            missing.append("if these waiters are meant to wake each other, this is a "
                           "deadlock through conditions; the dump cannot show which "
                           "signals which")
    if timers:
        confidence = "possible"
        names_t = ", ".join(f"{o.label()} ({o.state})" for o in timers[:4]) + (
            f" and {len(timers) - 4} more" if len(timers) > 4 else "")
        missing.append(f"{names_t} only wait(s) for time to pass and will run again: if "
                       "one of them ends these waits when it wakes, they are not stuck; "
                       "a second dump a minute later showing the same waits rules that out "
                       f"({capture_command(dump.snap)})")
    if excerpt and not proven and not wakers_known:
        # The claim "nothing can wake it" needs the threads the excerpt left out.
        confidence = "possible"
        missing.append(capture_all(dump.snap))
    knowledge_words: list[str] = []
    by_rule: dict[str, list[Known]] = {}
    for k in known.values():
        by_rule.setdefault(k.rule.name, []).append(k)
    for group in by_rule.values():
        first_k = group[0]
        who = first_k.thread.label() + (f" (and {len(group) - 1} more)"
                                        if len(group) > 1 else "")
        words_k, missing_k = dump.knowledge.words(first_k.thread, first_k, who)
        knowledge_words.append(words_k)
        missing.extend(m for m in missing_k if m not in missing)
    words = [waits_text(waiters, dump.resources) + "."]
    if waiters[0].id.startswith("goroutine "):
        words.extend(channels_of(dump, waiters))
    if stated:
        words.append(f"The runtime itself reported it: {stated}.")
    elif absent_owner:
        words.extend(absent_owner)
    else:
        state_words = []
        if idle:
            state_words.append(f"{len(idle)} idle ("
                               + ", ".join(thread_name(dump.threads.get(i), i) for i in idle[:6])
                               + (", …" if len(idle) > 6 else "") + ")")
        if blocked:
            state_words.append(f"{len(blocked)} blocked themselves")
        if dead:
            state_words.append(f"{len(dead)} finished")
        if timers:
            words.append("No thread of the process runs code now: the others "
                         + (f"are {', '.join(state_words)}, or " if state_words else "")
                         + "wait only for time to pass ("
                         + ", ".join(o.label() for o in timers[:4])
                         + (", …" if len(timers) > 4 else "") + ").")
        elif by_knowledge:
            words.append("Other threads of the process are running, but none of those "
                         "that could end these waits.")
        elif not others:
            words.append("No thread that could wake it is running: "
                         + ("it is the only thread of its process." if len(waiters) == 1
                            else f"all {len(waiters)} threads of the process wait here."))
        elif state_words:
            words.append("No thread that could wake it is running: the other threads are "
                         + ", ".join(state_words) + ".")
        else:
            words.append("No thread that could wake it is running.")
        if idle:
            words.append("Idle workers wait for work that nobody is left to hand them.")
    words.extend(knowledge_words)
    first = waiters[0]
    assert first.waits is not None
    res0 = dump.resources.get(first.waits.resource)
    summary = (f"{first.label()} waits on {res_name(res0, first.waits.resource)}"
               + (f" (and {len(waiters) - 1} more)" if len(waiters) > 1 else "")
               + ("; no thread that could wake it runs: the only ones that can run again "
                  "just wait for time to pass" if timers
                  else f"; {NO_WAKER_RUNS}"))
    details: dict[str, object] = {"idle": idle, "blocked": blocked, "finished": dead}
    if known:
        details["knowledge"] = list(dict.fromkeys(k.rule.name for k in known.values()))
    dump.findings.append(Finding(
        kind="stall", confidence=confidence, summary=summary, explanation=" ".join(words),
        threads=tids, resources=rids, blocked_behind=behind, missing_evidence=missing,
        details=details))
    dump.covered.update(tids)
    dump.covered.update(behind)

