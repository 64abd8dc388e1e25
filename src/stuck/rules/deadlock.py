"""Deadlock in stacks read from a dump: a closed cycle of the wait-for graph.

Each thread of the cycle waits for a resource another one holds, as the stacks and the owners
the source printed show it (``graph``), or, through a condition variable, for a thread only a
library's known behaviour says could signal it (``known``). ``cycle`` judges the same idea over
recorded facts. Confidence: ``certain`` when every step was read; ``probable`` when an owner
was inferred; ``possible`` when a step rests on knowledge or a guessed join, or the text is an
excerpt that may lack threads which change it.
"""

from __future__ import annotations

from stuck.model import Confidence, Finding
from stuck.rules.advice import capture_all
from stuck.rules.reading import Reading, res_name, thread_name
from stuck.rules.wording import cycle_step, self_deadlock


def deadlocks(dump: Reading) -> None:
    """One finding per closed cycle of the wait-for graph (the stacks' waits, the printed
    owners, the edges the source stated and those knowledge adds), with its victims."""
    for cycle in dump.graph.cycles():
        tids = [e.thread for e in cycle]
        rids = list(dict.fromkeys(e.waits_for for e in cycle))
        inferred = [rid for rid in rids if rid in dump.inferred]
        missing = [f"owner of {res_name(dump.resources.get(rid), rid)}: "
                   f"{dump.inferred[rid]}" for rid in inferred]
        stated_only = [e for e in cycle if dump.threads[e.thread].waits is None]
        if stated_only:
            missing.append("part of the cycle comes from the dump's own deadlock report, "
                           "not from the thread stacks")
        known_steps = [e for e in cycle if (e.thread, e.held_by) in dump.knowledge_edges]
        behind = dump.graph.behind(tids)
        # A join on a thread the dump does not name, when every thread it could be joining
        # is in the cycle or behind it, waits behind the cycle too (said in the explanation:
        # it is no part of the cycle's proof, so it leaves the confidence alone).
        joiners = dump.joiners_behind({*tids, *behind})
        behind += joiners
        names = [thread_name(dump.threads.get(t), t) for t in tids]
        steps = []
        for e in cycle[:12]:
            res = dump.resources.get(e.waits_for)
            waiter = thread_name(dump.threads.get(e.thread), e.thread)
            other = thread_name(dump.threads.get(e.held_by), e.held_by)
            k = dump.known.get(e.thread) if (e.thread, e.held_by) in dump.knowledge_edges \
                else None
            if k is not None:
                steps.append(f"{waiter} waits on {k.rule.on} for {k.rule.until}, which "
                             f"only {dump.knowledge.roles_what(k.rule)} could bring about, and "
                             f"here that is {other}")
            else:  # in the words of a cycle found live (a join reads "joins worker")
                w = t.waits if (t := dump.threads.get(e.thread)) is not None else None
                steps.append(f"{waiter} " + cycle_step(
                    w.op if w is not None else None, res.kind if res is not None else "unknown",
                    res_name(res, e.waits_for), other, e.thread == e.held_by))
        if len(cycle) > 12:
            steps.append(f"… {len(cycle) - 12} more steps")
        self_wait = len(cycle) == 1 and cycle[0].thread == cycle[0].held_by
        if self_wait:
            res0 = dump.resources.get(cycle[0].waits_for)
            explanation = self_deadlock(names[0], res_name(res0, cycle[0].waits_for))
        else:
            explanation = ("; ".join(steps) + ". None of them can continue until another "
                           "in the cycle does, so none will.")
        if behind:
            explanation += (f" {len(behind)} more thread(s) wait behind the cycle without "
                            "being part of it.")
        if joiners:
            who = ", ".join(thread_name(dump.threads.get(j), j) for j in joiners[:4])
            explanation += (f" {who} join(s) a thread the dump does not name; every thread "
                            "it could be waiting for is in the cycle or behind it, so it "
                            "waits behind the cycle.")
        details: dict[str, object] = {}
        reasons: list[str] = []
        for e in known_steps:
            k = dump.known[e.thread]
            _, more = dump.knowledge.words(k.thread, k)
            missing.extend(m for m in more if m not in missing)
            reason = f"{k.rule.library}: {k.rule.reason}."
            if reason not in reasons:
                reasons.append(reason)
            for fact in dump.knowledge.facts_words(k.rule):
                if fact not in reasons:
                    reasons.append(fact)
        if reasons:
            explanation += " " + " ".join(reasons)
        libraries = ", ".join(dict.fromkeys(dump.known[e.thread].rule.library
                                            for e in known_steps))
        if known_steps:
            rules = list(dict.fromkeys(dump.known[e.thread].rule.name for e in known_steps))
            details["knowledge"] = rules
            missing.append("the cycle runs through condition variables, which have no "
                           "owner a dump can show: who would signal each one is read "
                           "from the library's known behaviour")
        # A join whose target is inferred, not read, is a guess: the edge may not exist.
        guessed = any((r := dump.resources.get(rid)) is not None and r.kind == "thread"
                      for rid in inferred)
        confidence: Confidence = ("possible" if known_steps or guessed
                                  else "probable" if missing else "certain")
        if confidence != "possible" and any(
                dump.snap.processes[dump.process_of[t]].complete is False
                for t in tids if t in dump.process_of) and not stated_only:
            confidence = "possible"  # an excerpt: the threads it left out may change it
            missing.append(capture_all(dump.snap))
        dump.findings.append(Finding(
            kind="deadlock", confidence=confidence,
            summary=(f"{names[0]} waits for "
                     f"{res_name(dump.resources.get(rids[0]), rids[0])}, which it holds "
                     "itself (a self-deadlock)") if self_wait else
                    (" and ".join(names) if len(names) < 3 else ", ".join(names[:5])
                     + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
                    + " wait for each other in a cycle"
                    + (f" (through condition variables, by {libraries}'s known waits)"
                       if known_steps else ""),
            explanation=explanation, threads=tids, resources=rids, cycle=cycle,
            blocked_behind=behind, missing_evidence=missing, details=details))
        dump.covered.update(tids)
        dump.covered.update(behind)

