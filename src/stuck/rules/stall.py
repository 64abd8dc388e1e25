"""Stall: a wait nothing able to run can end, without a cycle; reported at its root with why.

The reasons: a future whose executor has no worker able to run it; a put on a full queue no
thread able to run takes from; a barrier that cannot collect its parties; a condition, event,
semaphore or queue whose only signallers are dead or stuck, or that nobody ever signalled and
nobody able to run can reach; a lost wake-up (notified before the wait began); and the job
queued where no live thread will take it, named when the source can see it.
"""

from __future__ import annotations

from typing import Literal

from stuck.model import Finding
from stuck.rules.facts import Facts, ResourceFacts, Signal, ThreadFacts, waited
from stuck.rules.knot import can_run, out_of_reach, waits_on
from stuck.rules.wording import (
    NO_WAKER_RUNS,
    for_how_long,
    kind_and_label,
    name_of,
    state_of,
    unique,
)


def report_order(t: ThreadFacts, facts: Facts, stuck: set[str],
              now: float) -> tuple[int, int, float, str]:
    """Report order: the waiters first, then the threads that should have woken them (they
    appear inside the waiter's finding: the idle flush worker inside the writer's stall, the
    blocked pool worker inside its client's); waits for a result before idle workers waiting
    for jobs on a queue; longest first; then by id, so the order never depends on hashing."""
    res = facts.resources.get(t.wait.resource) if t.wait is not None else None
    if unheard_work({t.id}, facts):
        return (-1, 0, -(waited(t, now) or 0.0), t.id)  # it waits for work nobody takes
    idle_worker = res is not None and res.kind == "queue" and t.wait is not None \
        and t.wait.op == "get"
    waker_of_another = any(
        other.wait is not None and oid != t.id and can_signal(t.id, other.wait.resource, facts)
        for oid, other in facts.threads.items() if oid in stuck)
    return (1 if waker_of_another else 0, 1 if idle_worker else 0,
            -(waited(t, now) or 0.0), t.id)


def can_signal(tid: str, rid: str, facts: Facts) -> bool:
    res = facts.resources.get(rid)
    if res is None:
        return False
    if tid in (res.wakers or ()) or tid in res.owners:
        return True
    ex = facts.executors.get(res.executor) if res.executor else None
    return ex is not None and tid in ex.workers


def _takers_line(takers: list[str], facts: Facts, stuck: set[str]) -> str:
    """Who ever took from a queue (the threads a full put or a join waits for), and how each is."""
    if not takers:
        return "No thread has ever taken from it, and none able to run can reach it."
    return "The threads that ever took from it: " + ", ".join(
        f"{name_of(facts, g)} ({state_of(facts, g, stuck)})" for g in takers) + "."


def stall_finding(t: ThreadFacts, res: ResourceFacts, facts: Facts, stuck: set[str],
                   now: float, unreachable: set[str]) -> Finding | None:
    assert t.wait is not None
    what = kind_and_label(res.kind, res.label)
    lines: list[str] = []
    missing: list[str] = []
    involved = [t.id]
    resources = [res.id]
    details: dict[str, object] = {}
    confidence: Literal["certain", "probable", "possible"] = "probable"
    op = t.wait.op
    # Nothing able to run can use the primitive (none is left able to run, or none can reach
    # it): whoever signalled it before, only the stuck threads could end the wait.
    proven = out_of_reach(res.id, facts, stuck, unreachable)

    if res.kind == "future":
        ex = facts.executors.get(res.executor) if res.executor else None
        task = res.task or "the task"
        if ex is not None:
            resources.append(ex.id)
            if ex.shutdown and not ex.workers:
                why = f"executor {ex.label} has been shut down and has no worker left"
            elif not ex.workers:
                why = f"executor {ex.label} has no live worker"
                if ex.max_workers == 0:
                    why += " (it was made with zero workers)"
            else:
                why = (f"every worker of executor {ex.label} is itself blocked for good: "
                       + ", ".join(f"{name_of(facts, w)} ({state_of(facts, w, stuck)})"
                                   for w in ex.workers))
                involved += [w for w in ex.workers if w in stuck]
            summary = (f"{t.name} waits on the future of {task}, which executor {ex.label} "
                       "can never run")
            blocked = [w for w in ex.workers if w in stuck]
            if blocked:  # name the root: what the worker itself waits on
                summary += (f": its worker {name_of(facts, blocked[0])} is "
                            f"{state_of(facts, blocked[0], stuck)}"
                            + (f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""))
            lines.append(f"{t.name} waits{for_how_long(t, now)} for the result of {task}, "
                         f"submitted to executor {ex.label}; {why}.")
            details.update(rule="future-executor", executor=ex.label, task=task,
                           workers=[name_of(facts, w) for w in ex.workers])
            # Every worker blocked for good, and no thread at all left able to run: nothing
            # can ever free a worker, so the future never completes.
            confidence = "certain" if not ex.workers or not any(
                can_run(x, facts, stuck) for x in facts.threads) else "probable"
        else:
            summary = f"{t.name} waits on the future of {task}; nothing able to run completes it"
            lines.append(f"No thread able to run can complete the future of {task}.")
            details["rule"] = "future"
    elif res.kind == "queue" and op == "put":
        summary = (f"{t.name} waits to put on full queue {res.label}; no thread able to run "
                   "will ever take from it")
        getters = sorted(res.getters or ())
        lines.append(_takers_line(getters, facts, stuck))
        details["rule"] = "queue-put-no-getter"
        involved += [g for g in getters if g in stuck]
        confidence = "certain" if proven else "probable"
    elif res.kind == "queue" and op == "queue-join":
        takers = sorted(res.getters or ())
        summary = (f"{t.name} waits for the items of queue {res.label} to be done (join); no "
                   "thread able to run takes from it")
        ended = [g for g in takers if g in facts.threads and not facts.threads[g].alive]
        if takers and len(ended) == len(takers):
            summary += (f": {name_of(facts, ended[0])} "
                        f"{state_of(facts, ended[0], stuck)}" if len(ended) == 1 else
                        ": every thread that took from it has ended")
        lines.append(f"{t.name} waits in join(){for_how_long(t, now)} until every item put "
                     "on the queue is marked done (task_done()) by the thread that took it.")
        lines.append(_takers_line(takers, facts, stuck))
        details["rule"] = "queue-join-no-taker"
        involved += [g for g in takers if g in stuck]
        confidence = "certain" if proven else "probable"
    elif res.kind == "barrier":
        need = (res.parties or 0) - (res.n_waiting or 0)
        summary = (f"{t.name} waits at {what}, which can never collect its "
                   f"{res.parties} parties")
        lines.append(f"{res.n_waiting} of {res.parties} parties wait at the barrier; it needs "
                     f"{need} more, and not enough threads able to run could arrive.")
        users = sorted(res.wakers or ())
        if users:
            lines.append("Threads that used it before: " + ", ".join(
                f"{name_of(facts, u)} ({state_of(facts, u, stuck)})" for u in users) + ".")
        details["rule"] = "barrier"
        confidence = "certain" if proven else "probable"
        involved += sorted(x for x, o in facts.threads.items()
                           if x != t.id and x in stuck and waits_on(o, res.id))
    elif res.kind in ("mutex", "rlock") and res.owners and all(
            o in facts.threads and not facts.threads[o].alive for o in res.owners):
        # A lock whose holder ended without releasing it: an RLock only its owner may release,
        # so nothing ever will; a plain Lock any thread may release, so that is certain only
        # when no thread able to run could reach it.
        holders = ", ".join(name_of(facts, o) for o in res.owners)
        how = "; ".join(f"{name_of(facts, o)} {state_of(facts, o, stuck)}" for o in res.owners)
        summary = f"{t.name} waits for {what}, held by {holders}, which ended without releasing it"
        lines.append(f"{t.name} tries to acquire {res.label}{for_how_long(t, now)}, without a "
                     f"timeout; its holder ended while holding it ({how}).")
        details["rule"] = "lock-owner-ended"
        if res.kind == "rlock":
            lines.append("Only the thread that holds an RLock may release it.")
            confidence = "certain"
        elif proven:
            lines.append("Any thread may release a plain Lock, but none able to run can reach it.")
            confidence = "certain"
        else:
            lines.append("Any thread may release a plain Lock, and some threads are still able "
                         "to run.")
    elif res.kind == "semaphore" and res.owners and all(
            o in facts.threads and not facts.threads[o].alive for o in res.owners):
        # Permits taken by threads that ended without giving them back. A semaphore has no
        # owner (any thread may release it), so this is certain only when no thread able to
        # run could reach it.
        named = [name_of(facts, o) for o in res.owners]
        holders = named[0] if len(named) == 1 else ", ".join(named[:-1]) + f" and {named[-1]}"
        how = "; ".join(f"{name_of(facts, o)} {state_of(facts, o, stuck)}" for o in res.owners)
        summary = (f"{t.name} waits for {what}, acquired by {holders}, which ended without "
                   f"releasing {'it' if len(named) == 1 else 'their permits'}")
        lines.append(f"{t.name} tries to acquire {res.label}{for_how_long(t, now)}, without a "
                     f"timeout; every permit it waits for was taken by a thread that ended "
                     f"without releasing it ({how}).")
        details["rule"] = "semaphore-holder-ended"
        if proven:
            lines.append("Any thread may release a semaphore, but none able to run can "
                         "reach it.")
            confidence = "certain"
        else:
            lines.append("Any thread may release a semaphore, and some threads are still able "
                         "to run.")
    else:
        verb = {"queue": "get from queue", "event": "wait for event",
                "condition": "wait on condition", "semaphore": "acquire semaphore"}.get(
            res.kind, f"wait on {res.kind}")
        wakers = sorted(res.wakers or ())
        lost = lost_wakeup(t, res)
        if res.kind == "queue":
            summary = (f"{t.name} waits to get from queue {res.label}; no thread able to run "
                       "has ever put to it")
            details["rule"] = "queue-get-no-producer"
        elif lost is not None and all(not facts.threads[w].alive for w in wakers
                                      if w in facts.threads):
            summary = (f"{t.name} waits on {what}, notified before the wait began "
                       "(lost wake-up); nothing able to run will notify it again")
            details["rule"] = "lost-wakeup"
        else:
            summary = f"{t.name} waits on {what}; {NO_WAKER_RUNS}"
            details["rule"] = "no-live-waker"
        lines.append(f"{t.name} tries to {verb} {res.label}{for_how_long(t, now)}, without a "
                     "timeout.")
        if wakers:
            who = "put to it" if res.kind == "queue" else (
                "set it" if res.kind == "event" else (
                    "released it" if res.kind == "semaphore" else "notified it"))
            lines.append(f"The only thread(s) that ever {who}: " + ", ".join(
                f"{name_of(facts, w)} ({state_of(facts, w, stuck)})" for w in wakers) + ".")
            for w in wakers:
                if w in stuck:
                    involved.append(w)
                    wt = facts.threads[w]
                    if wt.wait is not None:
                        resources.append(wt.wait.resource)
                        lines.append(chain_line(wt, facts, stuck))
            # Certain only when no thread able to run can even reach the primitive (none is
            # left able to run at all, or the reachability pass found none that can).
            confidence = "certain" if proven else "probable"
        else:
            if any(can_run(x, facts, stuck) for x in facts.threads):
                lines.append("No thread has ever signalled it, and no thread able to run can "
                             "reach it (stacks and module globals searched).")
            elif any(x != t.id and tf.alive for x, tf in facts.threads.items()):
                lines.append("No thread has ever signalled it, and no thread is left able to "
                             "run: every other one is blocked for good itself.")
            else:
                lines.append(f"No thread has ever signalled it, and {t.name} is the program's "
                             "only thread left: no other one exists to signal it.")
            ended = facts.ended()
            if ended:
                lines.append("Threads that have ended (one of them may have been meant to "
                             "signal it): " + ", ".join(ended) + ".")
            confidence = "certain"
            details["rule"] = "unreachable" if res.kind != "queue" else details["rule"]
        if lost is not None:
            lines.append(f"History: {name_of(facts, lost.thread)} did {lost.op} "
                         f"{now - lost.at:.1f} s ago while {lost.waiters} thread(s) waited; "
                         f"{t.name} began to wait after that, and nothing has signalled since.")
            details["lost_wakeup"] = {"by": name_of(facts, lost.thread), "op": lost.op,
                                      "seconds_ago": round(now - lost.at, 3)}
    # Work handed off by the threads of this stall that no live thread can take: the job
    # that would have woken them (a compaction queued on a pool with no worker).
    stranded = [(rid, line) for rid, line in stranded_work(set(involved), facts, stuck)
                if rid != res.id]  # the queue waited on is the finding itself
    for rid, line in stranded:
        if rid not in resources:
            resources.append(rid)
        lines.append(line)
    if stranded:
        details["stranded"] = [line for _, line in stranded]
        first = facts.resources.get(stranded[0][0])
        ex = facts.executors.get(stranded[0][0])
        where = first.label if first is not None else (ex.label if ex is not None else "")
        if first is not None and first.kind == "condition":
            handed = [g for g in first.history if g.waiters == 0]
            at = f" at {handed[-1].where}" if handed and handed[-1].where else ""
            summary += f"; the work handed to condition {where}{at} is never taken"
            missing.append("that nobody takes the work handed to a condition rests on who was "
                           "seen waiting on it so far; a thread that never did could still")
        else:
            summary += f"; the job queued on {where} can never run"
    if confidence != "certain":
        missing.append("a thread that never signalled this resource could still do so; the "
                       "claim rests on who signalled it so far")
    if details.get("rule") != "lock-owner-ended":  # there, the holder is known
        missing.append("which code would signal it is not recorded")
    details.setdefault("waiting_seconds", round(waited(t, now) or 0.0, 3))
    return Finding(kind="stall", confidence=confidence, summary=summary,
                   explanation="\n".join(lines), threads=unique(involved),
                   resources=unique(resources), missing_evidence=missing, details=details)


def chain_line(wt: ThreadFacts, facts: Facts, stuck: set[str]) -> str:
    assert wt.wait is not None
    res = facts.resources.get(wt.wait.resource)
    if res is None:
        return f"{wt.name} waits on {wt.wait.resource}."
    if res.kind == "queue" and wt.wait.op != "put":
        putters = sorted(res.wakers or ())
        idle = "idle on empty" if not res.size else "waiting on"
        who = ", ".join(f"{name_of(facts, p)} ({state_of(facts, p, stuck)})" for p in putters) \
            or "nobody"
        return (f"{wt.name} is {idle} queue {res.label}; the thread(s) that ever put work "
                f"there: {who}.")
    owners = ", ".join(name_of(facts, o) for o in res.owners)
    return (f"{wt.name} waits on {res.kind} {res.label}"
            + (f" held by {owners}" if owners else "") + ".")


def unheard_work(involved: set[str], facts: Facts) -> list[tuple[str, str]]:
    """Work one of ``involved`` handed over by notifying a condition nobody waited on, when no
    thread was ever seen waiting on that condition (``ResourceFacts.served`` False): nothing
    will ever take it (a job queued on a pool that has no worker)."""
    out: list[tuple[str, str]] = []
    for res in facts.resources.values():
        if res.kind != "condition" or res.served is not False:
            continue
        if any(t.wait is not None and t.wait.resource == res.id for t in facts.threads.values()):
            continue
        handed = [g for g in res.history if g.waiters == 0 and g.thread in involved
                  and g.op in ("notify", "notify_all")]
        if not handed:
            continue
        g = handed[-1]
        at = f" at {g.where}" if g.where else ""
        out.append((res.id, f"The work {name_of(facts, g.thread)} handed to condition "
                            f"{res.label}{at} is never taken: no thread was ever seen waiting "
                            "on it."))
    return out


def handed_away(ids: set[str], facts: Facts, stuck: set[str]) -> bool:
    """Work that threads of ``ids`` handed where no thread able to run takes it, outside the
    waits of the program (a queue or condition no thread waits on)."""
    waited_on = {t.wait.resource for t in facts.threads.values() if t.wait is not None}
    return any(rid not in waited_on for rid, _ in stranded_work(ids, facts, stuck))


def stranded_work(involved: set[str], facts: Facts, stuck: set[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = unheard_work(involved, facts)
    for res in facts.resources.values():
        if res.kind != "queue" or not res.size:
            continue
        if not (res.wakers or set()) & involved:
            continue
        takers = [g for g in (res.getters or ()) if can_run(g, facts, stuck)]
        if takers:
            continue
        putters = ", ".join(name_of(facts, p) for p in sorted((res.wakers or set()) & involved))
        workers = sorted(res.getters or ())
        if workers:
            why = "every thread that ever took from it is dead or blocked for good (" + \
                ", ".join(f"{name_of(facts, w)}: {state_of(facts, w, stuck)}"
                          for w in workers) + ")"
        else:
            why = "no thread has ever taken from it: the pool it feeds has no worker"
        what = f" ({', '.join(res.jobs)})" if res.jobs else ""
        out.append((res.id, f"{res.size} job(s){what} that {putters} queued on {res.label} will "
                            f"never run: {why}."))
    for ex in facts.executors.values():
        if not ex.pending or any(can_run(w, facts, stuck) for w in ex.workers):
            continue
        why = ("it has been shut down" if ex.shutdown else
               "it has no live worker" if not ex.workers else "all its workers are blocked")
        out.append((ex.id, f"{len(ex.pending)} task(s) queued on executor {ex.label} "
                           f"({', '.join(ex.pending[:3])}) will never run: {why}."))
    return out


def lost_wakeup(t: ThreadFacts, res: ResourceFacts) -> Signal | None:
    """The last notify that found nobody waiting, when it came before ``t`` began to wait and
    nothing signalled since."""
    if res.kind != "condition" or not res.history or t.wait is None or t.wait.since is None:
        return None
    since = t.wait.since
    after = [s for s in res.history if s.at >= since]
    if after:
        return None
    before = [s for s in res.history if s.at < since and s.waiters == 0]
    return before[-1] if before else None


def same_cause_waiters(finding: Finding, t: ThreadFacts, res: ResourceFacts, facts: Facts,
                       stuck: set[str], now: float, unreachable: set[str],
                       candidates: list[str]) -> list[str]:
    """The other threads of ``candidates`` that wait on ``res`` as ``t`` does (the same
    operation) and whose own stall would be ``finding`` with their name for ``t``'s: one
    cause (two permits leaked by ended threads, a queue nobody can put to), one finding. They
    are added to ``finding`` (its threads, a summary naming them all, a line saying they wait
    alike); the ids added are returned."""
    assert t.wait is not None
    same: list[str] = []
    for other in candidates:
        o = facts.threads.get(other)
        if other == t.id or other in finding.threads or o is None or o.wait is None \
                or o.wait.resource != res.id or o.wait.op != t.wait.op:
            continue
        theirs = stall_finding(o, res, facts, stuck, now, unreachable)
        if theirs is None or (theirs.kind, theirs.confidence, theirs.details.get("rule")) != (
                finding.kind, finding.confidence, finding.details.get("rule")):
            continue
        if theirs.summary.replace(o.name, t.name, 1) != finding.summary:
            continue
        same.append(other)
        finding.threads = unique([*finding.threads, *theirs.threads])
        finding.resources = unique([*finding.resources, *theirs.resources])
    if same and finding.summary.startswith(f"{t.name} waits"):
        names = [t.name, *(name_of(facts, s) for s in same)]
        who = (", ".join(names[:-1]) + f" and {names[-1]}" if len(names) <= 4
               else ", ".join(names[:3]) + f" and {len(names) - 3} more")
        finding.summary = f"{who} wait" + finding.summary[len(f"{t.name} waits"):]
        finding.explanation += (f"\n{', '.join(names[1:])} "
                                f"{'waits' if len(same) == 1 else 'wait'} on {res.label} "
                                f"the same way, for the same reason.")
        finding.details["waiters"] = names
    return same
