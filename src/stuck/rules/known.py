"""Waits a library's known behaviour explains (``stuck.knowledge``), for facts read from stacks.

A dump shows that a thread waits on a condition variable, never who would signal it.
``stuck.knowledge`` says, for well-known library waits (RocksDB's ``DelayWrite`` on
``bg_cv_``), which threads could end them by role. ``Knowledge`` matches its rules against a
snapshot once: the threads whose wait a rule explains (``Known``), with the threads of their
process that have a role able to end it (``Wakers``), the edges to those wakers that are
blocked themselves (so a cycle through condition variables shows in the wait-for graph), and
the words every finding that rests on knowledge uses. Such a finding is never ``certain``: the
library's version in a dump may differ from the one the rule describes.
"""

from __future__ import annotations

from dataclasses import dataclass

from stuck.knowledge import Matcher, RoleSource, WaitRule, hints
from stuck.model import Edge, Fact, Resource, Snapshot, Thread
from stuck.rules.knot import can_progress
from stuck.stacks.native import base_name

KNOWLEDGE_EDGES_PER_WAITER = 8  # edges to blocked wakers: enough to close any real cycle
KNOWLEDGE_EDGES = 50_000  # in all: a hostile dump cannot make the graph quadratic


@dataclass(slots=True)
class Wakers:
    """The threads of one process with a role that could end one rule's waits (shared by
    every waiter of that rule in the process, so many waiters cost no more than one)."""

    members: dict[str, tuple[Thread, RoleSource]]  # thread id -> (thread, how its role was read)
    progressing: int  # members that can go on to run
    blocked: list[Thread]  # members blocked themselves


@dataclass(slots=True)
class Known:
    """A thread whose wait a knowledge rule explains, and who could end it."""

    thread: Thread
    rule: WaitRule
    site_from: RoleSource  # where the wait's site was read: its frames, or the paste's label
    group: Wakers
    busy: list[Fact]  # facts that say the awaited work is under way

    def _is_member(self) -> bool:
        return self.thread.id in self.group.members

    def has_wakers(self) -> bool:
        return len(self.group.members) - self._is_member() > 0

    def can_be_woken(self) -> bool:
        """Could some waker (not the waiter itself) still run and end the wait?"""
        own = self._is_member() and can_progress(self.thread)
        return self.group.progressing - own > 0

    def wakers(self, limit: int) -> list[tuple[Thread, RoleSource]]:
        out = []
        for tid, member in self.group.members.items():
            if tid != self.thread.id:
                out.append(member)
                if len(out) >= limit:
                    break
        return out

    def count(self) -> int:
        return len(self.group.members) - self._is_member()


class Knowledge:
    """The knowledge rules that apply to one snapshot, matched once."""

    def __init__(self, snapshot: Snapshot, resources: dict[str, Resource],
                 facts: dict[str, Fact], hang_after: float) -> None:
        self.snap = snapshot
        self.resources = resources
        self.facts = facts
        self.hang_after = hang_after
        self.matcher = Matcher()
        self.known = self._match()
        self.edges = self._edges()

    def _match(self) -> dict[str, Known]:
        """Threads whose wait a ``stuck.knowledge`` rule explains, with their possible wakers.

        A condition rule needs a durable wait on a condition at the rule's site; a call rule a
        long call into the library (at least ``hang_after``) while the fact it needs holds.
        Roles are read only in processes where some rule applies.
        """
        matcher = self.matcher
        known: dict[str, Known] = {}
        for proc in self.snap.processes:
            matches: list[tuple[Thread, WaitRule, RoleSource]] = []
            for t in proc.threads:
                w = t.waits
                if w is None:
                    continue
                found = None
                if t.state == "blocked" and w.durable:
                    res = self.resources.get(w.resource)
                    if res is not None and res.kind == "condition":
                        found = matcher.rule_for(t, "condition")
                elif not w.durable and w.duration is not None and w.duration >= self.hang_after:
                    found = matcher.rule_for(t, "call")
                    if found is not None and found[0].needs is not None:
                        need = self.facts.get(found[0].needs)
                        if need is None or need.value <= 0:
                            found = None
                if found is not None:
                    matches.append((t, *found))
            if not matches:
                continue
            roles = [(o, matcher.roles_of(o)) for o in proc.threads]
            groups: dict[str, Wakers] = {}
            for t, rule, site_from in matches:
                group = groups.get(rule.name)
                if group is None:
                    members: dict[str, tuple[Thread, RoleSource]] = {}
                    for o, has in roles:
                        how = next((has[r] for r in rule.ended_by if r in has), None)
                        if how is not None:
                            members[o.id] = (o, how)
                    group = groups[rule.name] = Wakers(
                        members=members,
                        progressing=sum(1 for o, _ in members.values() if can_progress(o)),
                        blocked=[o for o, _ in members.values()
                                 if o.state == "blocked" and o.waits is not None])
                busy = [f for n in rule.busy if (f := self.facts.get(n)) is not None
                        and f.value > 0]
                known[t.id] = Known(t, rule, site_from, group, busy)
        return known

    def _edges(self) -> list[Edge]:
        """Waits only the waiter's possible wakers could end, when none of them can run:
        an edge to each waker that is itself blocked, so a cycle through conditions shows."""
        edges: list[Edge] = []
        for tid, k in self.known.items():
            if k.rule.wait != "condition" or k.busy or not k.has_wakers() \
                    or k.can_be_woken() or k.thread.waits is None:
                continue
            n = 0
            for w in k.group.blocked:
                if w.id == tid:
                    continue
                edges.append(Edge(thread=tid, waits_for=k.thread.waits.resource, held_by=w.id))
                n += 1
                if n >= KNOWLEDGE_EDGES_PER_WAITER or len(edges) >= KNOWLEDGE_EDGES:
                    break
            if len(edges) >= KNOWLEDGE_EDGES:
                break
        return edges

    def facts_words(self, rule: WaitRule) -> list[str]:
        """What the text states about the rule's library, and what that suggests."""
        prefix = rule.library.lower() + "."
        stated = [f.text for f in self.facts.values() if f.name.startswith(prefix)]
        return stated + hints(self.facts, prefix) if stated else []

    def roles_what(self, rule: WaitRule) -> str:
        return " or ".join(dict.fromkeys(self.matcher.role_what(r) for r in rule.ended_by))

    def words(self, t: Thread, k: Known, who: str | None = None
                     ) -> tuple[str, list[str]]:
        """(explanation, missing evidence) for a wait a knowledge rule explains; ``who`` names
        the waiters when several share the rule (default: the thread)."""
        rule = k.rule
        roles = self.roles_what(rule)
        who = who or t.label()
        words = (f"By {rule.library}'s code, {who} waits on {rule.on} for {rule.until} "
                 f"({rule.reason}).")
        if k.has_wakers():
            states = ", ".join(f"{w.label()} ({w.state})" for w, _ in k.wakers(6))
            more = f" and {k.count() - 6} more" if k.count() > 6 else ""
            words += f" Only {roles} can do that; here: {states}{more}."
        else:
            words += f" Only {roles} can do that, and the dump shows none."
        facts = self.facts_words(rule)
        if facts:
            words += " The text says: " + "; ".join(facts) + "."
        if rule.wait == "condition":
            first = (f"the dump does not show which thread would signal {rule.on} for "
                     f"{who}; that only {roles} can is {rule.library}'s known behaviour "
                     f"(rule {rule.name}): {rule.proof}")
        else:
            at = base_name(t.waits.at.function) if t.waits and t.waits.at else rule.library
            first = (f"the dump does not show what {who} waits for inside {at}; that it "
                     f"is {rule.on} is read from {rule.library}'s known behaviour (rule "
                     f"{rule.name}): {rule.proof}")
        missing = [first]
        if k.site_from == "label":
            missing.append(f"{t.label()}'s frames are cut off: where it waits is read from the "
                           f"paste's label \"{t.paste_label}\"")
        for w, how in k.wakers(6):
            if how == "label":
                missing.append(f"{w.label()}'s role ({roles}) comes from the paste's label "
                               f"\"{w.paste_label}\": its own frames are cut off")
        if facts:
            missing.append("the log lines and printed fields are read from the whole text; "
                           "that they describe this same process is assumed")
        return words, missing
