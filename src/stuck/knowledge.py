"""Wait knowledge: what well-known libraries' waits wait for, and which threads could end them.

A dump shows that a thread waits on a condition variable, never who would signal it, so on its
own it cannot tell a stall from a pause, or see a cycle through two condition variables. For a
library whose code is public that is no mystery: RocksDB's ``DBImpl::DelayWrite`` waits on
``bg_cv_`` until a background flush or compaction lifts the write stop, and only the threads of
its background pool run those. This module keeps such knowledge as data, in three tables:

- ``ROLES``: who is who, told by a thread's frames, its name, or (when its frames are cut off)
  the label an issue paste puts before it ("BackgroundCompaction stack");
- ``RULES``: one entry per known wait: where it happens, what it waits for, which roles could
  end it, and a one-line reason citing the library's behaviour;
- ``EVIDENCE``: what the library says about its state outside the stacks (its LOG lines, fields
  of a printed struct), read from the text into ``Fact`` values the rules can use;
- ``HINTS``: what several facts suggest together, said in the finding;
- ``JOB_FRAMES``: frames that mean a pool worker is inside a job that waits, not idle.

The rules (``stuck.rules.known``) turn a matching rule into possible wakers: when none of them
can run, the wait is a stall; when they wait back on the waiter, a cycle. Knowledge describes
a library's code, and the version in a dump may differ, so a verdict that rests on it is never
``certain``, and the finding names the rule it used.

Teaching a new library is adding entries here: no rule is written in code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from stuck.model import Fact, Frame, Thread

ROLE_FRAMES = 48  # innermost frames searched for a thread's role


@dataclass(frozen=True, slots=True)
class Role:
    """A kind of thread of a library, recognised by its frames, its name or a paste's label."""

    name: str
    what: str  # for people: "a RocksDB background flush or compaction thread"
    frames: re.Pattern[str] | None = None  # searched in each frame's function (signature dropped)
    names: re.Pattern[str] | None = None  # matched at the start of the thread's name
    label: re.Pattern[str] | None = None  # searched in a paste's label for the thread


@dataclass(frozen=True, slots=True)
class WaitRule:
    """One known wait: a thread waiting at ``site`` waits for ``until``; ``ended_by`` could end it.

    ``wait`` says what the dump shows of it: ``condition``, a thread blocked on a condition
    variable with ``site`` as the frame where it waits; ``call``, a thread whose dump shows only
    a long call into the library (a goroutine in a cgo call), with ``site`` as the called
    function; such a rule applies only while the fact ``needs`` says the library is in the state
    that makes the call wait.
    """

    name: str
    library: str
    wait: Literal["condition", "call"]
    site: re.Pattern[str]  # searched in the wait's own frame (Wait.at), signature dropped
    label: re.Pattern[str] | None  # searched in a paste's label when the frames are cut off
    on: str  # what it waits on, as the library names it
    until: str  # what has to happen for the wait to end
    ended_by: tuple[str, ...]  # Role names of the threads that could make it happen
    reason: str  # one line: the library behaviour the rule rests on, with a reference
    proof: str  # what would confirm the rule's reading of this wait, for missing_evidence
    needs: str | None = None  # a Fact name that must be > 0 for the rule to apply
    busy: tuple[str, ...] = ()  # Fact names that, when > 0, say the awaited work is under way


@dataclass(frozen=True, slots=True)
class Hint:
    """A conclusion some Facts support together: each (fact, test) must hold, test being
    ``"> 0"`` or ``"= 0"``; a fact the text does not state fails the test."""

    when: tuple[tuple[str, Literal["> 0", "= 0"]], ...]
    say: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """Words a library prints about its state, and the Facts they state.

    ``needle`` is searched in the whole text (only after ``gate``, a shorter string every needle
    of its kind contains, is found at all: one cheap search keeps a large dump of another kind
    fast). ``read``: ``number``, the integer right after the needle is the value of ``fact``;
    ``line``, the line states ``fact`` = 1 (and each ``also`` pair), quoted up to its end.
    """

    needle: str
    gate: str
    fact: str
    read: Literal["number", "line"]
    source: str  # how the report names where it came from
    also: tuple[tuple[str, int], ...] = ()


# --- RocksDB -----------------------------------------------------------------------------

_RDB_BACKGROUND_FRAMES = re.compile(
    r"^rocksdb::(?:[\w:]{0,200}::)?(?:BGThread|BGThreadWrapper)$"
    r"|(?:^|::)DBImpl::(?:BGWork(?:Bottom)?Compaction|BGWorkFlush|BackgroundCall(?:Compaction|Flush)"
    r"|Background(?:Compaction|Flush))$"
    r"|^rocksdb::(?:CompactionJob|FlushJob)::\w+$")
_RDB_BACKGROUND_LABEL = re.compile(
    r"\b(?:Background(?:Call)?(?:Compaction|Flush)|BGWork\w{0,40}|BGThread|CompactionJob|FlushJob)\b")

ROLES: tuple[Role, ...] = (
    Role(name="rocksdb-background",
         what="a RocksDB background flush or compaction thread",
         frames=_RDB_BACKGROUND_FRAMES,
         names=re.compile(r"rocksdb:(?:bg|low|high|bottom)"),
         label=_RDB_BACKGROUND_LABEL),
    Role(name="rocksdb-ingest",
         what="a thread inside RocksDB's IngestExternalFile",
         frames=re.compile(r"(?:^|::)DBImpl::IngestExternalFiles?$"),
         label=re.compile(r"\bIngestExternalFiles?\b")),
)

_RDB_BUSY = ("rocksdb.compactions_scheduled", "rocksdb.compactions_running",
             "rocksdb.flushes_scheduled", "rocksdb.flushes_running")

RULES: tuple[WaitRule, ...] = (
    WaitRule(
        name="rocksdb-delay-write", library="RocksDB", wait="condition",
        site=re.compile(r"(?:^|::)DBImpl::DelayWrite$"),
        label=re.compile(r"\bDelayWrite\b"),
        on="bg_cv_", until="a background flush or compaction to lift the write stall",
        ended_by=("rocksdb-background",), busy=_RDB_BUSY,
        reason="while the write controller stops writes, DBImpl::DelayWrite waits on bg_cv_, "
               "which is signalled when a background flush or compaction finishes "
               "(db/db_impl_write.cc)",
        proof="a print of the DBImpl (write_controller_, bg_compaction_scheduled_, "
              "unscheduled_compactions_) and the options' max_background_compactions would "
              "show whether any background work can still run"),
    WaitRule(
        name="rocksdb-flush-waits-for-stall", library="RocksDB", wait="condition",
        site=re.compile(r"(?:^|::)DBImpl::WaitUntilFlushWouldNotStallWrites$"),
        label=re.compile(r"\bWaitUntilFlushWouldNotStallWrites\b"),
        on="bg_cv_",
        until="a background compaction to bring the write stall down so that a flush would "
              "not stall writes",
        ended_by=("rocksdb-background",), busy=_RDB_BUSY,
        reason="FlushMemTable with allow_write_stall = false waits on bg_cv_ in "
               "WaitUntilFlushWouldNotStallWrites until compaction clears the write stall "
               "(RocksDB PR #4751)",
        proof="a print of the DBImpl's write_controller_ and bg_compaction_scheduled_ would "
              "show that writes are stopped and whether a compaction can run"),
    WaitRule(
        name="rocksdb-compaction-waits-for-ingest", library="RocksDB", wait="condition",
        site=re.compile(r"(?:^|::)DBImpl::(?:WaitForIngestFile|BackgroundCompaction"
                        r"|BackgroundCallCompaction|RunManualCompaction)$"),
        label=re.compile(r"\b(?:Background(?:Call)?Compaction|BGWork(?:Bottom)?Compaction"
                         r"|WaitForIngestFile|RunManualCompaction)\b"),
        on="bg_cv_",
        until="every running IngestExternalFile call to finish (num_running_ingest_file_ "
              "to drop to 0)",
        ended_by=("rocksdb-ingest",),
        reason="a compaction does not run while num_running_ingest_file_ > 0: it waits on "
               "bg_cv_ for the file ingestions to finish (DBImpl::WaitForIngestFile, "
               "ShouldntRunManualCompaction; RocksDB PR #4751)",
        proof="the compaction thread's whole backtrace and a print of the DBImpl's "
              "num_running_ingest_file_ would show that it waits for the ingestion"),
    WaitRule(
        name="rocksdb-write-stopped", library="RocksDB", wait="call",
        site=re.compile(r"\._Cfunc_(?:DBApplyBatchRepr|rocksdb_(?:write|put|merge|delete)"
                        r"\w{0,40})$"),
        label=None,
        on="the write stop",
        until="a background compaction or flush to lift the write stop",
        ended_by=("rocksdb-background",), needs="rocksdb.writes_stopped", busy=_RDB_BUSY,
        reason="while RocksDB stops writes (write_controller_.total_stopped_ > 0, LOG "
               "\"Stopping writes because ...\") every write waits in DBImpl::DelayWrite until "
               "background flushes or compactions lift the stop (db/db_impl_write.cc, "
               "db/write_controller.h)",
        proof="native backtraces of the process (gdb -p PID -batch -ex 'thread apply all bt') "
              "would show the writer in DBImpl::DelayWrite and what RocksDB's background pool "
              "is doing; the options' max_background_compactions says whether it may run a "
              "compaction at all"),
)

HINTS: tuple[Hint, ...] = (
    Hint(when=(("rocksdb.compactions_unscheduled", "> 0"),
               ("rocksdb.compactions_scheduled", "= 0")),
         say="a compaction is queued but none is scheduled to run: RocksDB may have no thread "
             "allowed to compact (max_background_compactions = 0 was the cause in RocksDB "
             "issue #1297)"),
)

EVIDENCE: tuple[Evidence, ...] = (
    Evidence("Stopping writes because ", " writes because ", "rocksdb.writes_stopped", "line",
             "RocksDB LOG"),
    Evidence("Stalling writes because ", " writes because ", "rocksdb.writes_delayed", "line",
             "RocksDB LOG", also=(("rocksdb.writes_stopped", 0),)),
    Evidence("total_stopped_ = ", " = ", "rocksdb.writes_stopped", "number", "printed"),
    Evidence("total_delayed_ = ", " = ", "rocksdb.writes_delayed", "number", "printed"),
    Evidence("bg_compaction_scheduled_ = ", " = ", "rocksdb.compactions_scheduled", "number",
             "printed"),
    Evidence("num_running_compactions_ = ", " = ", "rocksdb.compactions_running", "number",
             "printed"),
    Evidence("unscheduled_compactions_ = ", " = ", "rocksdb.compactions_unscheduled", "number",
             "printed"),
    Evidence("bg_flush_scheduled_ = ", " = ", "rocksdb.flushes_scheduled", "number", "printed"),
    Evidence("num_running_flushes_ = ", " = ", "rocksdb.flushes_running", "number", "printed"),
)

# Frames that mean a pool thread is running a job, not waiting for one: a condition wait
# under one of them is the job's own wait, even with the pool's loop further out.
JOB_FRAMES = re.compile(
    r"(?:^|::)DBImpl::(?:BGWork\w{1,40}|BackgroundCall\w{1,40}|Background(?:Compaction|Flush)"
    r"|WaitForIngestFile|DelayWrite|WaitUntilFlushWouldNotStallWrites)$")


# --- reading evidence ----------------------------------------------------------------------

_QUOTE_MAX = 200  # characters of a log line quoted in a Fact


_KEEP_PER_NEEDLE = 4  # latest statements kept per needle: only the last ones can matter
_TEXTS_PER_FACT = 2  # agreeing statements quoted per fact


def read_facts(text: str) -> list[Fact]:
    """The Facts the text states (``EVIDENCE``), the last statement of each name winning.

    A library's state changes over time and a paste shows its log in order, so a later line
    overrides an earlier one ("Stalling writes" after "Stopping writes": no longer stopped);
    earlier statements that agree with the last one are quoted beside it. Linear: each needle
    is searched once through the text at C speed, behind its gate, and only the last few
    statements of each are kept.
    """
    gates: dict[str, bool] = {}
    statements: list[tuple[int, str, int, str]] = []  # (position, fact, value, words)
    n = len(text)
    for ev in EVIDENCE:
        open_gate = gates.get(ev.gate)
        if open_gate is None:
            open_gate = gates[ev.gate] = _gate_open(text, ev.gate)
        if not open_gate:
            continue
        found: list[int] = []
        pos = text.find(ev.needle)
        while pos >= 0:
            if ev.read == "line" or _starts_word(text, pos):
                found.append(pos)
                if len(found) > 2 * _KEEP_PER_NEEDLE:
                    del found[:-_KEEP_PER_NEEDLE]
            pos = text.find(ev.needle, pos + len(ev.needle))
        for pos in found[-_KEEP_PER_NEEDLE:]:
            if ev.read == "number":
                value = _number_at(text, pos + len(ev.needle))
                if value is not None:
                    statements.append((pos, ev.fact, value, f"{ev.source} {ev.needle}{value}"))
                continue
            end = text.find("\n", pos, min(n, pos + _QUOTE_MAX))
            words = text[pos:end if end >= 0 else min(n, pos + _QUOTE_MAX)].rstrip()
            quoted = f"{ev.source}: \"{words}\""
            statements.append((pos, ev.fact, 1, quoted))
            for name, value in ev.also:
                statements.append((pos, name, value, quoted))
    statements.sort(key=lambda s: s[0])
    latest: dict[str, tuple[int, list[str]]] = {}  # fact -> (value, agreeing words)
    order: dict[str, int] = {}  # fact -> position of its last statement
    for pos, name, value, words in statements:
        old = latest.get(name)
        if old is not None and old[0] == value:
            if words not in old[1]:
                old[1].append(words)
                del old[1][:-_TEXTS_PER_FACT]
        else:
            latest[name] = (value, [words])
        order[name] = pos
    return [Fact(name=name, value=latest[name][0], text="; ".join(latest[name][1]))
            for name in sorted(latest, key=order.__getitem__)]


def _gate_open(text: str, gate: str) -> bool:
    """``gate in text``, found faster when the gate is one character between spaces (" = "):
    that character is looked for alone (memchr speed), and a dump of another kind (a
    goroutine dump) holds it a few times at most."""
    key = gate.strip()
    if len(key) != 1 or key == gate:
        return gate in text
    offset = gate.index(key)
    pos = text.find(key)
    for _ in range(64):  # a text full of the character: the plain search is quicker
        if pos < 0:
            return False
        if text.startswith(gate, pos - offset):
            return True
        pos = text.find(key, pos + 1)
    return pos >= 0 and text.find(gate, max(0, pos - offset)) >= 0


def _starts_word(text: str, pos: int) -> bool:
    return pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] == "_")


def _number_at(text: str, pos: int) -> int | None:
    end = pos
    limit = min(len(text), pos + 20)
    if end < limit and text[end] == "-":
        end += 1
    while end < limit and text[end].isascii() and text[end].isdigit():
        end += 1
    digits = text[pos:end]
    if not digits or digits == "-":
        return None
    return int(digits)


# --- matching threads ------------------------------------------------------------------------

RoleSource = Literal["frames", "name", "label"]


def function_name(frame: Frame) -> str:
    """A frame's function without its signature, as the patterns above expect."""
    name = frame.function
    paren = name.find("(")
    while paren > 0 and name[paren - 1] == ".":  # Go: pkg.(*T).Method
        paren = name.find("(", paren + 1)
    if paren > 0:
        name = name[:paren]
    at = name.find("@@")
    return (name[:at] if at > 0 else name).strip()


class Matcher:
    """Roles and wait rules of threads, with per-function caches: dumps repeat frames a lot."""

    def __init__(self, roles: tuple[Role, ...] = ROLES, rules: tuple[WaitRule, ...] = RULES
                 ) -> None:
        self.roles = roles
        self.rules = rules
        self._frame_roles: dict[str, tuple[str, ...]] = {}
        self._stack_roles: dict[int, tuple[str, ...]] = {}
        self._site_rules: dict[str, tuple[WaitRule, ...]] = {}

    def roles_of(self, thread: Thread) -> dict[str, RoleSource]:
        """The roles a thread has, each with where it was read (frames, name or label).

        The paste's label counts only when frames and name give no role: a thread's own
        frames say more than a caption someone wrote above them.
        """
        found: dict[str, RoleSource] = {}
        for role_name in self._roles_in_frames(thread.frames):
            found[role_name] = "frames"
        if thread.name:
            for role in self.roles:
                if role.names is not None and role.name not in found \
                        and role.names.match(thread.name):
                    found[role.name] = "name"
        if not found and thread.paste_label:
            for role in self.roles:
                if role.label is not None and role.label.search(thread.paste_label):
                    found[role.name] = "label"
        return found

    def _roles_in_frames(self, frames: list[Frame]) -> tuple[str, ...]:
        key = id(frames)
        known = self._stack_roles.get(key)
        if known is not None:
            return known
        names: dict[str, None] = {}
        for f in frames[:ROLE_FRAMES]:
            per_frame = self._frame_roles.get(f.function)
            if per_frame is None:
                fn = function_name(f)
                per_frame = tuple(r.name for r in self.roles
                                  if r.frames is not None and r.frames.search(fn))
                if len(self._frame_roles) < 100_000:
                    self._frame_roles[f.function] = per_frame
            names.update(dict.fromkeys(per_frame))
        result = tuple(names)
        if len(self._stack_roles) < 100_000:
            self._stack_roles[key] = result
        return result

    def rule_for(self, thread: Thread, wait: str) -> tuple[WaitRule, RoleSource] | None:
        """The rule of kind ``wait`` whose site is the frame where ``thread`` waits (or, with
        the frames cut off before any such frame, whose label pattern its paste label meets)."""
        w = thread.waits
        if w is None:
            return None
        if w.at is not None:
            for rule in self._rules_at(w.at.function):
                if rule.wait == wait:
                    return rule, "frames"
            return None
        if thread.paste_label:
            for rule in self.rules:
                if rule.wait == wait and rule.label is not None \
                        and rule.label.search(thread.paste_label):
                    return rule, "label"
        return None

    def _rules_at(self, function: str) -> tuple[WaitRule, ...]:
        known = self._site_rules.get(function)
        if known is None:
            fn = function_name(Frame(function))
            known = tuple(r for r in self.rules if r.site.search(fn))
            if len(self._site_rules) < 100_000:
                self._site_rules[function] = known
        return known

    def role_what(self, name: str) -> str:
        return next((r.what for r in self.roles if r.name == name), name)


def in_job(frames: list[Frame]) -> bool:
    """True when one of ``frames`` runs a known job inside a worker pool (see JOB_FRAMES)."""
    return any(JOB_FRAMES.search(function_name(f)) for f in frames)


def evidence_fields(facts: tuple[str, ...]) -> list[str]:
    """The printed fields (``EVIDENCE`` needles read as numbers) that state ``facts``."""
    return [ev.needle.split(" ", 1)[0] for name in facts for ev in EVIDENCE
            if ev.fact == name and ev.read == "number"]


def hints(facts: dict[str, Fact], prefix: str = "") -> list[str]:
    """What ``HINTS`` conclude from the latest facts (name -> Fact), for facts whose names
    start with ``prefix`` (one library's)."""
    out = []
    for hint in HINTS:
        if not all(name.startswith(prefix) for name, _ in hint.when):
            continue
        ok = True
        for name, test in hint.when:
            fact = facts.get(name)
            if fact is None or (fact.value > 0) != (test == "> 0"):
                ok = False
                break
        if ok:
            out.append(hint.say)
    return out


__all__ = ["EVIDENCE", "HINTS", "JOB_FRAMES", "ROLES", "RULES", "Evidence", "Hint", "Matcher",
           "Role", "WaitRule", "evidence_fields", "hints", "in_job", "read_facts"]
