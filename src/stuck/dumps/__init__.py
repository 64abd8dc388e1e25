"""Dump parsers: one module per format, each turning the text of a dump into a Snapshot.

Every format module provides

- ``NAME``: the format name used by ``--format`` and in ``Source.format``;
- ``detect(text: str) -> bool``: cheap, True when the text holds a dump of this format
  anywhere (issue pastes mix formats and prose; a file may hold several dumps);
- optionally ``BLOCK_START: str``: how every blank-line-separated block of a dump of this
  format begins (``"goroutine "``), which lets detection of a large dump read only its ends
  (``detect_formats``);
- ``parse(text: str) -> ParseResult``: reads the lines it understands, skips everything else,
  runs in linear time and never executes anything.

``load`` runs every format that ``detect`` finds (or the one asked for) and merges the results
into one Snapshot. Format modules are imported only when needed, and a module that is not
installed is skipped, so a new format is one new module plus one line in ``FORMATS``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol, cast

from stuck.errors import UnrecognisedInput
from stuck.model import EventLoop, Fact, Finding, Process, Resource, Snapshot, Source


@dataclass(slots=True)
class ParseResult:
    """What one format module read from a text."""

    processes: list[Process] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # gaps, truncation, lines not understood
    # Conclusions the dump states outright (a lockdep report, jstack's deadlock section).
    # Analysis checks them against the graph rather than copying them.
    stated: list[Finding] = field(default_factory=list)
    # Owners the parser inferred rather than read (resource id -> how), so analysis can lower
    # its confidence and say why.
    inferred: dict[str, str] = field(default_factory=dict)
    # What the text states outside stacks (library log lines, printed fields): read once per
    # text by ``parse_text`` (``stuck.knowledge.EVIDENCE``), not by each format.
    facts: list[Fact] = field(default_factory=list)
    # asyncio event loops a live source saw (a saved ``stuck run`` report): ``model.EventLoop``.
    loops: list[EventLoop] = field(default_factory=list)


@dataclass(slots=True)
class Loaded:
    """A merged Snapshot plus what analysis needs besides it."""

    snapshot: Snapshot
    stated: list[Finding] = field(default_factory=list)
    inferred: dict[str, str] = field(default_factory=dict)
    # Resources whose possible wakers the source that saved the report was unsure of (resource
    # id -> why; ``UNSURE_FACT``): a finding through one stays at most probable, as it was.
    unsure: dict[str, str] = field(default_factory=dict)


# The name (then a space and the resource id) of a Fact by which a saved report keeps what its
# source was unsure of about a resource's possible wakers (``stuck.capture``: an accept queue,
# a futex in shared memory), so ``stuck analyze`` of the report keeps the verdict's doubt.
UNSURE_FACT = "stuck.unsure"


def unsure_facts(unsure: dict[str, str]) -> list[Fact]:
    """``unsure`` (resource id -> why) as facts a saved report keeps."""
    return [Fact(name=f"{UNSURE_FACT} {rid}", value=1, text=why) for rid, why in unsure.items()]


class FormatModule(Protocol):
    NAME: str

    def detect(self, text: str) -> bool: ...

    def parse(self, text: str) -> ParseResult: ...


# Module names under stuck.dumps, in the order they are tried. stuck's own JSON goes first:
# a report is recognised by its first characters and excludes every other format.
FORMATS: tuple[str, ...] = (
    "stuckjson", "gdb", "go", "jstack", "jdkdump", "faulthandler", "pyspy", "pystack", "linux",
    "procstat",
)

# --format accepts a module's NAME or one of these aliases.
ALIASES: dict[str, str] = {
    "json": "stuckjson", "stuck": "stuckjson", "pstack": "gdb", "goroutines": "go",
    "java": "jstack", "kernel": "linux", "freebsd": "procstat", "py-spy": "pyspy",
}

# Formats whose threads may have Python frames: their source can say which locks are held.
PYTHON_FRAMES = frozenset({"faulthandler", "pyspy", "pystack", "gdb"})

# --format names that stand for several formats: each one detected in the text is parsed.
GROUPS: dict[str, tuple[str, ...]] = {
    "python": ("faulthandler", "pyspy", "pystack"),
}

_loaded: dict[str, ModuleType | None] = {}


def _module(name: str) -> FormatModule | None:
    """Import ``stuck.dumps.<name>`` once; None when that format is not installed."""
    if name not in _loaded:
        try:
            _loaded[name] = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            _loaded[name] = None
    return cast("FormatModule | None", _loaded[name])


def available_formats() -> list[str]:
    """Names (``NAME``) of the formats whose modules are present."""
    out = []
    for mod_name in FORMATS:
        mod = _module(mod_name)
        if mod is not None:
            out.append(mod.NAME)
    return out


def _resolve(fmt: str) -> str | None:
    """The module name for a format name or alias, or None."""
    key = ALIASES.get(fmt, fmt)
    if key in FORMATS:
        return key
    for mod_name in FORMATS:  # a module whose NAME differs from its file name
        mod = _module(mod_name)
        if mod is not None and fmt == mod.NAME:
            return mod_name
    return None


# A text longer than this many characters at each end plus the middle is detected from its
# two ends when its middle is visibly one format (``detect_formats``).
DETECT_WINDOW = 256 * 1024


def _detect_all(text: str) -> list[str]:
    found = []
    for mod_name in FORMATS:
        mod = _module(mod_name)
        if mod is not None and mod.detect(text):
            found.append(mod_name)
            if mod_name == "stuckjson":
                break
    return found


_OTHER_BLOCK: dict[str, re.Pattern[str]] = {}


def _blocks_all_start(text: str, start: int, end: int, block_start: str) -> bool:
    """True when every blank line in ``text[start:end]`` is followed by ``block_start``: one
    regex search for a blank line that is not (a run of three newlines counts as one that is
    not, which only costs a full scan)."""
    other = _OTHER_BLOCK.get(block_start)
    if other is None:
        other = _OTHER_BLOCK[block_start] = re.compile("\n\n(?!" + re.escape(block_start) + ")")
    return other.search(text, start, end) is None


def detect_formats(text: str) -> list[str]:
    """Module names of every installed format found in ``text``, in ``FORMATS`` order.

    Every format's detector scans the whole text for its distinctive words, a dozen scans in
    all: a fifth of the time ``stuck analyze`` spends on a 20 MB Go dump. A large text is
    therefore first detected from its two ends (``DETECT_WINDOW`` each, cut at blank lines).
    When both ends show the same single format, and that format says how each of its blocks
    begins (``BLOCK_START``) and every block of the middle begins so (one regex search), the
    middle is that dump's body and the answer is that format. In every other case (another format or prose
    at an end, a block of the middle that starts otherwise, a format without ``BLOCK_START``)
    the whole text is scanned as before. What this reads past: another format's lines inside
    a block of the dump with no blank line before them, which its own parser would take as
    part of that block anyway.
    """
    head_end = text.find("\n\n", DETECT_WINDOW)
    tail_start = text.rfind("\n\n", 0, len(text) - DETECT_WINDOW)
    if head_end < 0 or tail_start <= head_end:
        return _detect_all(text)
    head = _detect_all(text[:head_end])
    if len(head) != 1 or _detect_all(text[tail_start:]) != head:
        return _detect_all(text)
    block_start = getattr(_module(head[0]), "BLOCK_START", None)
    if block_start is None or not _blocks_all_start(text, head_end, tail_start, block_start):
        return _detect_all(text)
    return head


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parser builds its objects.

    A large dump becomes hundreds of thousands of small objects and no reference cycles worth
    collecting; left on, the collector re-scans the growing heap over and over (about a fifth of
    the parse time for 100,000 goroutines). It is switched back on afterwards, and left alone if
    someone else had it off.

    Switched back on as it was, the collector would still scan every object the parse made
    once, at the next allocation (the youngest generation's count grew all along): 30 ms for
    100,000 goroutines, with nothing to free. Those objects live as long as the report, so
    they go straight to the oldest generation instead (``gc.freeze`` then ``gc.unfreeze``, two
    list splices), where a full collection looks at them as it looks at every long-lived
    object. Not when someone froze objects of their own: ``unfreeze`` would thaw theirs too.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def parse_text(text: str, format: str = "auto") -> list[tuple[str, ParseResult]]:
    """Run the parsers for ``text``: every detected one, or the one named by ``format``.

    The text is made plain first (``stuck.dumps.paste.clean``: colour, log prefixes, quoting,
    HTML entities, CR line ends), except a stuck JSON report, which is read as written.
    Raises ``UnrecognisedInput`` when no parser recognises the text or none finds a thread.
    """
    json_mod = _module("stuckjson")
    if json_mod is None or not json_mod.detect(text):
        from stuck.dumps.paste import clean
        text = clean(text)
    if format == "auto":
        names = detect_formats(text)
        if not names:
            raise UnrecognisedInput(
                "no known dump format found (expected gdb, Go, jstack, the JDK's thread dump, "
                "Python, Linux kernel, FreeBSD procstat or a stuck JSON report); name one with "
                "--format")
    elif format in GROUPS:
        members = [n for n in GROUPS[format] if _module(n) is not None]
        names = [n for n in members if cast(FormatModule, _module(n)).detect(text)]
        if not names:
            raise UnrecognisedInput(
                f"no {format} dump found in the input (looked for: {', '.join(members)})")
    else:
        mod_name = _resolve(format)
        if mod_name is None or _module(mod_name) is None:
            known = [*available_formats(), *GROUPS]
            raise UnrecognisedInput(f"unknown format {format!r}; known: {', '.join(known)}")
        names = [mod_name]
    results = []
    with _collector_paused():
        for mod_name in names:
            mod = _module(mod_name)
            assert mod is not None
            result = mod.parse(text)
            if result.processes or result.stated:
                results.append((mod.NAME, result))
    if not results:
        asked = "any format" if format == "auto" else f"format {format!r}"
        raise UnrecognisedInput(f"no threads found for {asked} in the input")
    # Log lines and printed fields belong to no format (a paste mixes them with any dump):
    # read them once from the whole text, whatever the format. Not from stuck's own report,
    # whose text quotes such lines in its explanations.
    if results[0][0] != "json":
        from stuck.knowledge import read_facts
        results[0][1].facts.extend(read_facts(text))
    return results


def _rename_threads(result: ParseResult, rename: dict[str, str]) -> None:
    """Apply a thread-id renaming to every reference in one parse result."""
    def r(tid: str) -> str:
        return rename.get(tid, tid)

    for proc in result.processes:
        for t in proc.threads:
            t.id = r(t.id)
    for res in result.resources:
        res.owners = [r(o) for o in res.owners]
        res.acquired_at = {r(k): v for k, v in res.acquired_at.items()}
        if res.wakers is not None:
            res.wakers = [r(w) for w in res.wakers]
        if res.referenced_by:
            res.referenced_by = [r(w) for w in res.referenced_by]
    for lp in result.loops:
        lp.tasks = [r(t) for t in lp.tasks]
        lp.thread = r(lp.thread) if lp.thread is not None else None
    for f in result.stated:
        f.threads = [r(t) for t in f.threads]
        f.blocked_behind = [r(t) for t in f.blocked_behind]
        for e in f.cycle:
            e.thread, e.held_by = r(e.thread), r(e.held_by)


def merge(results: list[tuple[str, ParseResult]], files: list[str],
          sources: Iterable[str] = (), read_sources: bool = True) -> Loaded:
    """One Snapshot from several parse results; thread ids are made unique across results.

    Each parser keeps ids unique within its own result; when two formats in one paste reuse
    an id, the later result's thread gets a ``#N`` suffix (N: its position in the paste), so
    every reference in the report stays unambiguous.
    """
    formats: list[str] = []
    snap = Snapshot(source=Source(kind="dump", format=None, files=list(files)))
    loaded = Loaded(snapshot=snap)
    seen_threads: set[str] = set()
    seen_resources: set[str] = set()
    for n, (fmt, result) in enumerate(results, start=1):
        if fmt not in formats:
            formats.append(fmt)
        rename: dict[str, str] = {}
        if seen_threads:  # the first result keeps its ids: nothing to check them against
            for proc in result.processes:
                for t in proc.threads:
                    if t.id in seen_threads:
                        new = f"{t.id} #{n}"
                        while new in seen_threads:
                            new += "'"
                        rename[t.id] = new
        if rename:
            _rename_threads(result, rename)
        last = n == len(results)
        for proc in result.processes:
            if not last:  # only later results need to know which ids are taken
                seen_threads.update(t.id for t in proc.threads)
            snap.processes.append(proc)
        for res in result.resources:
            if res.id not in seen_resources:
                seen_resources.add(res.id)
                snap.resources.append(res)
        snap.notes.extend(result.notes)
        snap.facts.extend(result.facts)
        loaded.unsure.update((f.name[len(UNSURE_FACT) + 1:], f.text) for f in result.facts
                             if f.name.startswith(f"{UNSURE_FACT} "))
        snap.loops.extend(result.loops)
        loaded.stated.extend(result.stated)
        loaded.inferred.update(result.inferred)
    snap.source.format = "+".join(formats) if formats else None
    if read_sources and any(f in PYTHON_FRAMES for f in formats):
        # Python source beside the dump: the locks each thread holds (stuck.dumps.pysource)
        from stuck.dumps.pysource import read_python_sources
        read_python_sources(snap, loaded.inferred, sources)
    return loaded


def load(text: str, format: str = "auto", name: str = "-") -> Snapshot:
    """Parse ``text`` (auto-detecting its formats unless ``format`` names one) into a Snapshot."""
    return load_dump(text, format, name).snapshot


def load_dump(text: str, format: str = "auto", name: str = "-",
              sources: Iterable[str] = ()) -> Loaded:
    """Like ``load``, keeping what the dump states outright and which owners were inferred:
    ``stuck.analysis.analyze(l.snapshot, l.stated, l.inferred)`` is the full analysis.
    ``sources``: directories where the Python files the dump names may be found."""
    return merge(parse_text(text, format), [name], sources)
