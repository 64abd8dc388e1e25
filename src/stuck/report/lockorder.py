"""Plain-text report of lock-order findings, in the manner of Linux lockdep and PostgreSQL.

One line per edge of the cycle ("thread W-2 holds `Cache._lock` (cache.py:40) and takes
`DB.lock` (db.py:88)"), then the interleaving that would deadlock, then both witness stacks of
every edge. Standard library only, like ``stuck.report.text``: it is written from inside the
program under test. Everything shown goes through ``clean``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from stuck.model import Finding
from stuck.report.names import clean, raw_names, text_lines

MAX_STACK_LINES = 12

# The verdict is README's and every report's ``lock-order`` (``LOCK-ORDER (probable): ...``, as
# ``DEADLOCK (certain): ...``); what kind of lock-order problem follows it.
_TITLES = {
    "deadlock": "circular lock order, a deadlock waiting to happen",
    "timed": "circular lock order through a timed acquire, a latency or livelock risk",
    "same-class": "same-class nesting, locks of one class nested in no order that holds",
}


def _frames(raw: object) -> list[dict[str, object]]:
    if not isinstance(raw, list):
        return []
    return [f for f in raw if isinstance(f, dict)]


_RUNNER_DIRS = (f"{os.sep}_pytest{os.sep}", f"{os.sep}pluggy{os.sep}", f"{os.sep}unittest{os.sep}")


def _stack_lines(frames: Sequence[dict[str, object]], indent: str) -> list[str]:
    out = []
    for i, f in enumerate(frames[:MAX_STACK_LINES]):
        file = str(f.get("file") or "?")
        if i > 0 and any(d in file for d in _RUNNER_DIRS):
            out.append(f"{indent}… called by the test runner ({len(frames) - i} frames)")
            return out
        out.append(f"{indent}{clean(f.get('function'))} ({clean(file)}:{clean(f.get('line'))})")
    if len(frames) > MAX_STACK_LINES:
        out.append(f"{indent}… {len(frames) - MAX_STACK_LINES} outer frames")
    if not frames:
        out.append(f"{indent}(no stack recorded)")
    return out


def _columns(interleaving: list[str], k: int) -> list[str]:
    """For a two-class cycle, the lockdep table: one column per thread."""
    width = 34
    rows = [f"{'T1':<{width}}T2", f"{'----':<{width}}----"]
    for step in interleaving:
        text = clean(step)
        if step.startswith("T2"):
            rows.append(" " * width + text[3:])
        else:
            rows.append(text[3:])
    return rows


def render_finding(f: Finding) -> str:
    """The report of one lock-order finding."""
    d = f.details
    variant = str(d.get("variant", "deadlock"))
    title = _TITLES.get(variant, "lock-order problem")
    lines = [f"LOCK-ORDER ({f.confidence}): {title}", f"  {clean(f.summary)}"]
    raw_edges = d.get("edges")
    edges = [e for e in raw_edges if isinstance(e, dict)] if isinstance(raw_edges, list) else []
    if edges:
        lines.append("")
        for e in edges:
            lines.append(f"  {clean(e.get('line'))}")
    raw_steps = d.get("interleaving")
    steps = [str(s) for s in raw_steps] if isinstance(raw_steps, list) else []
    if steps:
        lines.append("")
        lines.append("  The interleaving that would "
                     + ("deadlock:" if variant != "timed" else "stall until a timeout:"))
        if len(edges) == 2 or variant == "same-class":
            lines.extend("    " + r for r in _columns(steps, 2))
        else:
            lines.extend(f"    {clean(s)}" for s in steps)
        lines.append("    *** DEADLOCK ***" if variant != "timed" else "    *** TIMEOUT ***")
    for i, e in enumerate(edges, 1):
        w = e.get("witness")
        if not isinstance(w, dict):
            continue
        lines.append("")
        lines.append(f"  Edge {i}: `{clean(e.get('from'))}` -> `{clean(e.get('to'))}`, "
                     f"first seen in thread {clean(w.get('thread'))}"
                     + (" (timed acquire)" if e.get("timed") else ""))
        lines.append(f"    `{clean(e.get('from'))}` was taken at:")
        lines.extend(_stack_lines(_frames(w.get("held_at")), "      "))
        lines.append(f"    `{clean(e.get('to'))}` was taken at:")
        lines.extend(_stack_lines(_frames(w.get("taken_at")), "      "))
        others = e.get("other_witnesses")
        if isinstance(others, list) and others:
            threads = sorted({str(o.get("thread")) for o in others if isinstance(o, dict)})
            lines.append(f"    also seen in thread(s): {clean(', '.join(threads))}")
    classes = d.get("classes")
    if isinstance(classes, list) and classes:
        lines.append("")
        lines.append("  Lock classes (where the locks were made):")
        for c in classes:
            if isinstance(c, dict):
                lines.append(f"    `{clean(c.get('label'))}`: {clean(c.get('kind'))} made in "
                             f"{clean(c.get('function'))} "
                             f"({clean(os.path.basename(str(c.get('file'))))}:"
                             f"{clean(c.get('line'))})")
    if f.explanation:
        lines.append("")
        lines.extend(f"  {x}" for x in text_lines(f.explanation, raw_names(d)))
    if f.missing_evidence:
        lines.append("")
        lines.append("  Not known:")
        lines.extend(f"    {clean(x)}" for x in f.missing_evidence)
    return "\n".join(lines) + "\n"


def render(findings: Iterable[Finding], notes: Iterable[str] = ()) -> str:
    """All lock-order findings, deadlock risks first, then timed cycles, then same-class."""
    order = {"deadlock": 0, "same-class": 1, "timed": 2}
    items = sorted((f for f in findings if f.kind == "lock-order"),
                   key=lambda f: (order.get(str(f.details.get("variant")), 3),
                                  f.confidence != "probable", f.summary))
    if not items:
        text = "stuck: no lock-order problem found\n"
    else:
        text = (f"stuck: {len(items)} lock-order finding{'s' if len(items) != 1 else ''}\n"
                + "".join("\n" + render_finding(f) for f in items))
    for n in notes:
        text += f"note: {clean(n)}\n"
    return text
