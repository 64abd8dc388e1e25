"""A stall only a library's own words reveal, read from the text beside the stacks.

Threads in a long call into a library (a goroutine in a cgo call) while the text says the
library is in a state that makes such calls wait (RocksDB: writes stopped), and nothing shows
the work that would end it under way (``stuck.knowledge``'s evidence and busy facts).
"""

from __future__ import annotations

from stuck.knowledge import evidence_fields
from stuck.model import Confidence, Finding, Resource
from stuck.rules.known import Known
from stuck.rules.reading import Reading
from stuck.rules.wording import waits_text


def evidence_stalls(dump: Reading) -> None:
    """Threads in a long call into a library (a goroutine in a cgo call) while the text
    says the library is in a state that makes such calls wait (RocksDB: writes stopped),
    and nothing shows the work that would end it under way: a stall on that state."""
    for pi, proc in enumerate(dump.snap.processes):
        by_rule: dict[str, list[Known]] = {}
        for t in proc.threads:
            k = dump.known.get(t.id)
            if k is None or k.rule.wait != "call" or t.id in dump.covered or k.busy:
                continue
            if k.can_be_woken():
                continue
            by_rule.setdefault(k.rule.name, []).append(k)
        for group in by_rule.values():
            evidence_finding(dump, pi, group)


def evidence_finding(dump: Reading, pi: int, group: list[Known]) -> None:
    """The stall of the threads of process ``pi`` whose long call one knowledge rule explains,
    on a resource made for the library's state (it has none a dump could show)."""
    rule = group[0].rule
    rid = f"knowledge{pi + 1}:{rule.name}"
    if rid not in dump.resources:
        res = Resource(id=rid, kind="condition",
                       label=f"{rule.library} {rule.on.removeprefix('the ')}")
        dump.snap.resources.append(res)
        dump.resources[rid] = res
    waiters = [k.thread for k in group]
    tids = [t.id for t in waiters]
    idle_pool = group[0].has_wakers()  # wakers seen, and none can run (checked above)
    quiet = bool(rule.busy) and all((f := dump.facts.get(n)) is not None and f.value == 0
                                    for n in rule.busy)
    confidence: Confidence = "probable" if idle_pool or quiet else "possible"
    words = [waits_text(waiters, dump.resources) + "."]
    others = f" (and {len(waiters) - 1} more)" if len(waiters) > 1 else ""
    words_k, missing = dump.knowledge.words(waiters[0], group[0], waiters[0].label() + others)
    words.append(words_k)
    if not quiet:
        fields = evidence_fields(rule.busy)
        missing.append("nothing in the text shows whether the work that would end the wait "
                       "is scheduled or under way"
                       + (f" (printed fields that would: {', '.join(fields)})"
                          if fields else ""))
    summary = (f"{waiters[0].label()}{others} waits in {rule.library} on {rule.on}; "
               f"nothing shows {dump.knowledge.roles_what(rule)} able to lift it")
    behind = [b for b in dump.graph.behind(tids) if b not in set(tids)]
    dump.findings.append(Finding(
        kind="stall", confidence=confidence, summary=summary, explanation=" ".join(words),
        threads=tids, resources=[rid], blocked_behind=behind, missing_evidence=missing,
        details={"knowledge": [rule.name],
                 "facts": [f.text for f in dump.facts.values()
                           if f.name.startswith(rule.library.lower() + ".")]}))
    dump.covered.update(tids)
    dump.covered.update(behind)

