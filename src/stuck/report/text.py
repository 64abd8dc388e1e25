"""The text report: the verdict first, then the wait-for chain, then stacks grouped.

Standard library only: a live process writes this report from inside the program that is
stuck, where importing a terminal library could itself block. Everything that came from the
source (a dump is untrusted text) goes through ``clean`` so control characters and terminal
escape sequences are shown, never interpreted.
"""

from __future__ import annotations

from stuck.model import Finding, Frame, Group, Report, Resource, Snapshot, Thread
from stuck.report.holding import group_roles
from stuck.report.names import clean, raw_names, resource_name, text_lines, thread_name

MAX_DIAGRAM = 6  # edges: longer cycles are listed, not drawn
MAX_FRAMES = 12  # per group; the innermost frames are the ones that explain a wait
# Resources nobody holds: in a cycle, the next thread is the one that could end the wait.
_UNOWNED = frozenset({"queue", "future", "channel", "thread", "condition", "event", "waitgroup",
                      "barrier", "task"})


def _frame_line(f: Frame) -> str:
    where = f.where()
    if where == "?":
        return clean(f.function)
    return f"{clean(f.function)} ({clean(where)})"


def _holder(snap_threads: dict[str, Thread], tid: str) -> str:
    """An owner as a reader needs it: a holder that has ended says so in a clause of its own
    ("held by grabber, which ended without releasing it"), not glued to its name."""
    t = snap_threads.get(tid)
    if t is None or t.state != "dead":
        return thread_name(snap_threads, tid)
    how = "" if t.ended is None or t.ended == "returned" else \
        f" ({clean(t.ended.removeprefix('died of '))})"
    name = clean(t.name or t.id)
    return f"{name}, which ended{how} without releasing it"


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0.05:  # a wait that has just begun: "for 0.0 s" says nothing
        return ""
    if seconds < 120:
        return f" for {seconds:.1f} s"
    if seconds < 7200:
        return f" for {seconds / 60:.1f} min"
    return f" for {seconds / 3600:.1f} h"


def _finding_lines(f: Finding, snap: Snapshot, threads: dict[str, Thread],
                   resources: dict[str, Resource],
                   file_of: dict[str, str | None] | None = None,
                   names: list[str] | None = None) -> list[str]:
    """``names``: ``raw_names(snap)``, the names escaped inside the explanation (computed
    here when not given)."""
    out = [f"{f.kind.upper()} ({f.confidence}): {clean(f.summary)}"]
    sources = finding_sources(f, file_of) if file_of else []
    if sources:
        out.append("  from " + ", ".join(clean(s) for s in sources))
    out.extend(cycle_diagram(f, threads, resources))
    if f.cycle:
        out.append("  The cycle:")
        for edge in f.cycle:
            res = resources.get(edge.waits_for)
            waiter = threads.get(edge.thread)
            line = (f"    {thread_name(threads, edge.thread)} waits for "
                    f"{resource_name(res, edge.waits_for)}")
            if waiter is not None and waiter.waits is not None:
                if waiter.waits.at is not None and waiter.waits.at.where() != "?":
                    line += f" at {clean(waiter.waits.at.where())}"
                line += _duration(waiter.waits.duration)
            if res is not None and res.kind in _UNOWNED:
                # Not owned: the next thread is the one that could end the wait.
                line += f", which only {thread_name(threads, edge.held_by)} can end"
            else:
                line += f", held by {thread_name(threads, edge.held_by)}"
            if res is not None and edge.held_by in res.acquired_at:
                line += f" (taken at {clean(res.acquired_at[edge.held_by].where())})"
            out.append(line)
    elif f.threads:
        shown = f.threads[:10]
        out.append("  Threads: " + ", ".join(thread_name(threads, t) for t in shown)
                   + (f", … {len(f.threads) - 10} more" if len(f.threads) > 10 else ""))
        for tid in shown:
            t = threads.get(tid)
            if t is None or t.waits is None:
                continue
            res = resources.get(t.waits.resource)
            line = f"    {thread_name(threads, tid)} waits for {resource_name(res, t.waits.resource)}"
            if t.waits.at is not None and t.waits.at.where() != "?":
                line += f" at {clean(t.waits.at.where())}"
            line += _duration(t.waits.duration)
            if res is not None and res.owners:
                line += ", held by " + ", ".join(_holder(threads, o) for o in res.owners)
            out.append(line)
    if f.blocked_behind:
        out.append("  Blocked behind it: "
                   + ", ".join(thread_name(threads, t) for t in f.blocked_behind[:20])
                   + (f", … {len(f.blocked_behind) - 20} more" if len(f.blocked_behind) > 20
                      else ""))
    if f.explanation:
        raw = raw_names(snap) if names is None else names
        out.extend("  " + line for line in text_lines(f.explanation, raw))
    if f.missing_evidence:
        out.append("  Not shown by the source:")
        out.extend(f"    - {clean(m)}" for m in f.missing_evidence)
    return out


def _group_lines(g: Group, threads: dict[str, Thread], resources: dict[str, Resource]) -> list[str]:
    names = [thread_name(threads, t) for t in g.threads]
    shown = ", ".join(names[:8]) + (f", … {len(names) - 8} more" if len(names) > 8 else "")
    count = f"{len(names)} thread{'s' if len(names) != 1 else ''}"
    out = [f"  {count} · {g.state}: {shown}"]
    for role in group_roles(g, threads):
        out.append(f"    {role.words(threads, resources)}")
    for frame in g.frames[:MAX_FRAMES]:
        out.append(f"      {_frame_line(frame)}")
    if len(g.frames) > MAX_FRAMES:
        out.append(f"      … {len(g.frames) - MAX_FRAMES} outer frames")
    return out


KIND_NOUNS = {"deadlock": ("deadlock", "deadlocks"), "stall": ("stall", "stalls"),
              "lock-order": ("lock-order problem", "lock-order problems"),
              "hang": ("hang", "hangs")}


def origin_text(snap: Snapshot) -> str:
    """Where the snapshot came from: ``dump (gdb+go): a.txt, b.txt``."""
    origin = snap.source.kind + (f" ({snap.source.format})" if snap.source.format else "")
    if snap.source.files:
        origin += ": " + ", ".join(clean(f) for f in snap.source.files)
    return origin


def counted(findings: list[Finding]) -> str:
    """What was found, counted in words: ``1 deadlock, 2 hangs found`` or ``nothing found``."""
    counts = []
    for kind, (one, many) in KIND_NOUNS.items():
        n = sum(1 for f in findings if f.kind == kind)
        if n:
            counts.append(f"{n} {one if n == 1 else many}")
    return f"{', '.join(counts)} found" if counts else "nothing found"


def headline(report: Report) -> str:
    """The first line of every report: what was found, and where."""
    return f"stuck: {counted(report.findings)} in {origin_text(report.snapshot)}"


def finding_sources(f: Finding, file_of: dict[str, str | None]) -> list[str]:
    """The source files the threads of ``f`` were read from, in first-seen order."""
    seen: dict[str, None] = {}
    for tid in (*(e.thread for e in f.cycle), *f.threads, *f.blocked_behind[:50]):
        name = file_of.get(tid)
        if name:
            seen.setdefault(name, None)
    return list(seen)


def cycle_diagram(f: Finding, threads: dict[str, Thread],
                  resources: dict[str, Resource]) -> list[str]:
    """A small cycle drawn in text, one thread per line and the way back drawn on the left:

    ┌─▶ ring-1
    │     waits for mutex mutex_2 ▼ held by
    │   ring-3
    └──── waits for mutex mutex_1, held by ring-1

    Empty for cycles longer than MAX_DIAGRAM edges (the list below says it all there).
    """
    if not f.cycle or len(f.cycle) > MAX_DIAGRAM:
        return []
    out = []
    for i, edge in enumerate(f.cycle):
        res = resources.get(edge.waits_for)
        verb = ("only ended by" if res is not None and res.kind in _UNOWNED else "held by")
        wait = f"waits for {_short_resource(res, edge.waits_for)}"
        out.append(("  ┌─▶ " if i == 0 else "  │   ") + thread_name(threads, edge.thread))
        if i < len(f.cycle) - 1:
            out.append(f"  │     {wait} ▼ {verb}")
        else:
            out.append(f"  └──── {wait}, {verb} {thread_name(threads, edge.held_by)}")
    return out


def _short_resource(res: Resource | None, rid: str) -> str:
    return clean(rid) if res is None else clean(res.named())


def render(report: Report) -> str:
    snap = report.snapshot
    threads = snap.thread_map()
    resources = snap.resource_map()
    lines: list[str] = [headline(report)]
    # Which file a finding comes from matters once there are several.
    file_of = ({t.id: p.file for p in snap.processes for t in p.threads}
               if len(snap.source.files) > 1 else None)
    names = raw_names(snap) if report.findings else []
    for f in report.findings:
        lines.append("")
        lines.extend(_finding_lines(f, snap, threads, resources, file_of, names))
    for note in snap.notes:
        lines.append(f"note: {clean(note)}")
    all_threads = snap.threads()
    if report.groups:
        lines.append("")
        lines.append(f"Threads ({len(all_threads)}) in {len(report.groups)} "
                     f"group{'s' if len(report.groups) != 1 else ''} by stack:")
        for g in report.groups:
            lines.extend(_group_lines(g, threads, resources))
    return "\n".join(lines) + "\n"
