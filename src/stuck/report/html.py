"""The HTML report: one self-contained page, the causes first, each with its wait-for graph.

Why it looks the way it does:

- The page loads nothing: styles are inline, the graph is inline SVG, and the
  Content-Security-Policy (``default-src 'none'``) forbids every request and every script. A
  report may be opened by someone else, from a dump someone else made.
- Clicking a node of a graph shows that thread's stack (or that resource's details) through a
  ``#stack-…`` link and the CSS ``:target`` rule, so this works without any script.
- Everything from the source goes through ``_t`` (control characters shown as ``\\xNN``, then
  HTML-escaped): no name from a dump can become markup.
- The page is written to a stream as it goes, in one pass over the report: at 100,000 threads
  it is as long as the number of *groups* of identical stacks (collapsed), and graphs are drawn
  for the findings only.
- Standard library only: a live process (``stuck run --html``) writes this page from inside the
  program that is stuck. ``write_file`` is the one entry point for every command that writes a
  file (``analyze``, ``run``, ``capture``), so the same report gives the same page.
"""

from __future__ import annotations

import contextlib
import io
import os
from html import escape
from importlib import resources as _resources
from typing import IO, TextIO

from stuck.__about__ import __version__
from stuck.model import Finding, Frame, Group, Report, Resource, Snapshot, Thread
from stuck.report import svg, waitgraph
from stuck.report.holding import group_roles
from stuck.report.names import clean, raw_names, text_lines
from stuck.report.text import counted, finding_sources, headline, origin_text

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"
MAX_NAMES = 8  # thread names listed per group before "… N more"
MAX_FRAMES = 40  # frames shown per group (a Java stack can run to hundreds)
MAX_GRAPHS = 20  # findings that get a picture; the others keep their text
LABEL_CHARS = 44  # per line of a graph node


def _t(text: object) -> str:
    """Text from the source, safe in HTML content and attribute values."""
    return escape(clean(text), quote=True)


def _css() -> str:
    return _resources.files("stuck").joinpath("report/templates/report.css").read_text("utf-8")


def _short(text: str) -> str:
    text = clean(text)
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _frame_html(f: Frame) -> str:
    where = f.where()
    return _t(f.function) + ("" if where == "?" else f'  <span class="muted">{_t(where)}</span>')


def _resource_text(res: Resource | None, rid: str) -> str:
    return clean(rid) if res is None else clean(res.named())


def _thread_text(threads: dict[str, Thread], tid: str) -> str:
    t = threads.get(tid)
    return clean(t.label()) if t is not None else clean(tid)


class _Page:
    def __init__(self, report: Report, out: TextIO) -> None:
        self.report = report
        self.snap: Snapshot = report.snapshot
        self.out = out
        self.threads = self.snap.thread_map()
        self.resources = self.snap.resource_map()
        self.file_of = {t.id: p.file for p in self.snap.processes for t in p.threads}
        self._raw_names: list[str] | None = None

    def w(self, *parts: str) -> None:
        for p in parts:
            self.out.write(p)

    # --- page ---------------------------------------------------------------------------

    def write(self) -> None:
        snap, report = self.snap, self.report
        self.w("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
               f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
               '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
               f"<title>{_t(headline(report))}</title>\n<style>\n{_css()}</style>\n</head>\n",
               "<body>\n", svg.MARKERS, "\n")
        self.w(f"<h1>stuck: {_t(counted(report.findings))}</h1>\n",
               f'<p class="muted">{_t(origin_text(snap))} · stuck {escape(__version__)}</p>\n')
        for n, f in enumerate(report.findings):
            self.finding(n, f)
        for note in snap.notes:
            self.w(f'<p class="muted">note: {_t(note)}</p>\n')
        self.groups()
        self.w("</body>\n</html>\n")

    def raw_names(self) -> list[str]:
        """The snapshot's names that hold control characters (``names.raw_names``), once."""
        if self._raw_names is None:
            self._raw_names = raw_names(self.snap)
        return self._raw_names

    # --- findings -----------------------------------------------------------------------

    def finding(self, n: int, f: Finding) -> None:
        self.w(f'<section class="finding {escape(f.kind)}" id="finding-{n + 1}">\n',
               f'<h2><span class="kind">{escape(f.kind.upper())}</span> '
               f'<span class="muted">({escape(f.confidence)})</span></h2>\n',
               f'<p class="summary">{_t(f.summary)}</p>\n')
        sources = finding_sources(f, self.file_of)
        if sources:
            self.w(f'<p class="origin muted">from {_t(", ".join(sources))}</p>\n')
        graph = waitgraph.for_finding(f, self.threads, self.resources)
        anchors = {key: f"stack-{n + 1}-{i}" for i, key in enumerate(graph.nodes)}
        if n < MAX_GRAPHS and len(graph.nodes) > 1:
            self.picture(f, n, graph, anchors)
        self.chain(f)
        if f.explanation:
            self.w("".join(f"<p>{escape(line, quote=True)}</p>\n"
                           for line in text_lines(f.explanation, self.raw_names())
                           if line.strip()))
        if f.missing_evidence:
            self.w('<p>Not shown by the source:</p>\n<ul class="missing">\n',
                   "".join(f"<li>{_t(m)}</li>\n" for m in f.missing_evidence), "</ul>\n")
        self.panels(graph, anchors)
        self.w("</section>\n")

    def _node_lines(self, node: waitgraph.Node, same_label: set[str]) -> list[str]:
        """The lines of a node: a thread's name (with its id when the id says something, and
        how it ended when it has); a resource's name and kind (with its address when another
        resource in the picture has the same name)."""
        if node.more:
            return [f"… {node.more} more",
                    "blocked behind it" if node.role == "victim" else "in this finding"]
        if node.is_thread:
            t = self.threads.get(node.ref)
            if t is None:
                return [_short(node.ref)]
            lines = [_short(t.name or t.id)]
            label = t.label()
            if t.name and label.startswith(f"{t.name} ({t.id})"):
                lines.append(_short(t.id))
            if t.state == "dead" and t.ended:
                lines.append(_short(t.label()[len(t.name or t.id):].strip()))
            return lines
        res = self.resources.get(node.ref)
        if res is None:
            return [_short(node.ref)]
        label = res.label or res.id
        if res.address and label in same_label and res.address not in label:
            return [_short(label), f"{res.kind} {_short(res.address)}"]
        return [_short(label), res.kind]

    def picture(self, f: Finding, n: int, graph: waitgraph.WaitGraph,
                anchors: dict[str, str]) -> None:
        seen: set[str] = set()
        same_label: set[str] = set()
        for node in graph.nodes.values():
            res = None if node.is_thread else self.resources.get(node.ref)
            if res is not None:
                name = res.label or res.id
                (same_label if name in seen else seen).add(name)
        labels = {key: self._node_lines(node, same_label) for key, node in graph.nodes.items()}
        drawn = svg.draw(graph, labels, lambda key: anchors[key],
                         f"wait-for graph of finding {n + 1}: {clean(f.summary)}")
        if drawn is None:
            if svg.dot_path() is None:
                self.w('<p class="graph-note">The wait-for graph needs Graphviz: its '
                       "<code>dot</code> program was not found on PATH (install the "
                       "<code>graphviz</code> package). ")
            else:  # found, but it failed or did not answer within svg.DOT_TIMEOUT
                self.w('<p class="graph-note">The wait-for graph could not be drawn: '
                       f"Graphviz's <code>dot</code> failed or did not finish within "
                       f"{svg.DOT_TIMEOUT:g} s. ")
            self.w('The edges, in words:</p>\n<ul class="waits">\n')
            for e in graph.edges:
                verb = {"waits": "waits for", "holds": "is held by",
                        "wakes": "can only be ended by"}[e.kind]
                a, b = graph.nodes[e.tail], graph.nodes[e.head]
                self.w(f"<li>{_t(' / '.join(labels[a.key]))} {verb} "
                       f"{_t(' / '.join(labels[b.key]))}</li>\n")
            self.w("</ul>\n")
            return
        self.w('<div class="graph">', drawn, "</div>\n",
               '<p class="legend"><span class="waits">→ waits for</span>'
               '<span class="holds">→ held by</span>'
               '<span class="wakes">⇢ only this thread can end the wait</span>'
               '<span class="victim">▭ dashed: blocked behind it</span>'
               "<span>thick: the cycle · click a node for its stack</span></p>\n")

    def _wait_words(self, t: Thread | None) -> str:
        if t is None or t.waits is None:
            return ""
        words = ""
        if t.waits.at is not None and t.waits.at.where() != "?":
            words += f" at {clean(t.waits.at.where())}"
        if t.waits.duration is not None:
            d = t.waits.duration
            words += (f" for {d:.1f} s" if d < 120 else f" for {d / 60:.1f} min" if d < 7200
                      else f" for {d / 3600:.1f} h")
        return words

    def chain(self, f: Finding) -> None:
        if f.cycle:
            self.w('<ol class="cycle">\n')
            for e in f.cycle:
                res = self.resources.get(e.waits_for)
                waiter = self.threads.get(e.thread)
                line = (f"<strong>{_t(_thread_text(self.threads, e.thread))}</strong> waits for "
                        f"<strong>{_t(_resource_text(res, e.waits_for))}</strong>"
                        f"{_t(self._wait_words(waiter))}")
                if res is not None and res.kind in waitgraph.UNOWNED_KINDS:
                    line += f", which only {_t(_thread_text(self.threads, e.held_by))} can end"
                else:
                    line += f", held by {_t(_thread_text(self.threads, e.held_by))}"
                if res is not None and e.held_by in res.acquired_at:
                    line += f" (taken at {_t(res.acquired_at[e.held_by].where())})"
                self.w(f"<li>{line}</li>\n")
            self.w("</ol>\n")
        elif f.threads:
            self.w('<ul class="waits">\n')
            for tid in f.threads[:20]:
                t = self.threads.get(tid)
                line = f"<strong>{_t(_thread_text(self.threads, tid))}</strong>"
                if t is not None and t.waits is not None:
                    res = self.resources.get(t.waits.resource)
                    line += (f" waits for <strong>{_t(_resource_text(res, t.waits.resource))}"
                             f"</strong>{_t(self._wait_words(t))}")
                    if res is not None and res.owners:
                        line += ", held by " + _t(", ".join(
                            _thread_text(self.threads, o) for o in res.owners))
                self.w(f"<li>{line}</li>\n")
            if len(f.threads) > 20:
                self.w(f"<li>… {len(f.threads) - 20} more</li>\n")
            self.w("</ul>\n")
        if f.blocked_behind:
            shown = ", ".join(_thread_text(self.threads, t) for t in f.blocked_behind[:20])
            more = len(f.blocked_behind) - 20
            self.w(f"<p>Blocked behind it: {_t(shown)}"
                   f"{f', … {more} more' if more > 0 else ''}</p>\n")

    def panels(self, graph: waitgraph.WaitGraph, anchors: dict[str, str]) -> None:
        """One hidden panel per node, shown when its node (or its name here) is clicked."""
        links = []
        for key, node in graph.nodes.items():
            if node.more:
                continue
            name = (_thread_text(self.threads, node.ref) if node.is_thread
                    else _resource_text(self.resources.get(node.ref), node.ref))
            links.append(f'<a href="#{anchors[key]}">{_t(name)}</a>')
        if links:
            self.w('<p class="who muted">Stacks and details: ', "".join(links), "</p>\n")
        for key, node in graph.nodes.items():
            if node.more:
                continue
            self.w(f'<div class="panel" id="{anchors[key]}">')
            if node.is_thread:
                self.thread_panel(node.ref)
            else:
                self.resource_panel(node.ref)
            self.w("</div>\n")

    def thread_panel(self, tid: str) -> None:
        t = self.threads.get(tid)
        if t is None:
            self.w(f"<strong>{_t(tid)}</strong>: not in the snapshot")
            return
        self.w(f"<strong>{_t(t.label())}</strong> <span class=\"muted\">{escape(t.state)}"
               f"{' · ' + _t(t.detail) if t.detail else ''}</span>")
        if t.waits is not None:
            self.w(f"<br>waiting for {_t(_resource_text(self.resources.get(t.waits.resource), t.waits.resource))}"
                   f"{_t(self._wait_words(t))}")
        if t.holds:
            self.w("<br>holding " + _t(", ".join(
                _resource_text(self.resources.get(r), r) for r in t.holds)))
        frames = t.frames[:MAX_FRAMES]
        self.w("<pre>", "\n".join(_frame_html(fr) for fr in frames))
        if len(t.frames) > MAX_FRAMES:
            self.w(f"\n… {len(t.frames) - MAX_FRAMES} outer frames")
        self.w("</pre>")

    def resource_panel(self, rid: str) -> None:
        res = self.resources.get(rid)
        if res is None:
            self.w(f"<strong>{_t(rid)}</strong>: not in the snapshot")
            return
        self.w(f"<strong>{_t(_resource_text(res, rid))}</strong>")
        if res.address:
            self.w(f' <span class="muted">at {_t(res.address)}</span>')
        if res.created_at is not None:
            self.w(f"<br>made at {_t(res.created_at.where())}")
        for owner in res.owners:
            taken = res.acquired_at.get(owner)
            self.w(f"<br>held by {_t(_thread_text(self.threads, owner))}"
                   + (f", taken at {_t(taken.where())}" if taken is not None else ""))
        if res.wakers is not None:
            self.w("<br>could be ended by: " + (_t(", ".join(
                _thread_text(self.threads, w) for w in res.wakers)) or "nobody seen so far"))

    # --- threads ------------------------------------------------------------------------

    def groups(self) -> None:
        groups = self.report.groups
        total = sum(len(p.threads) for p in self.snap.processes)
        if not groups:
            return
        self.w(f"<h2>Threads ({total}) in {len(groups)} group{'s' if len(groups) != 1 else ''}"
               " by stack</h2>\n")
        for g in groups:
            self.group(g)

    def group(self, g: Group) -> None:
        names = [_thread_text(self.threads, t) for t in g.threads[:MAX_NAMES]]
        more = len(g.threads) - MAX_NAMES
        count = f"{len(g.threads)} thread{'s' if len(g.threads) != 1 else ''}"
        self.w(f'<details class="group"><summary><span class="state">{escape(g.state)}</span> '
               f"<strong>{count}</strong>: {_t(', '.join(names))}"
               f"{f', … {more} more' if more > 0 else ''}</summary>\n")
        roles = group_roles(g, self.threads)
        if roles:
            self.w('<div class="hold-lines">')
            for role in roles:
                self.w(_t(role.words(self.threads, self.resources)), "<br>")
            self.w("</div>\n")
        self.w("<pre>", "\n".join(_frame_html(fr) for fr in g.frames[:MAX_FRAMES]))
        if len(g.frames) > MAX_FRAMES:
            self.w(f"\n… {len(g.frames) - MAX_FRAMES} outer frames")
        self.w("</pre></details>\n")


def write(report: Report, out: TextIO) -> None:
    """Write the page for ``report`` to ``out``, in one pass."""
    _Page(report, out).write()


def render(report: Report) -> str:
    buf = io.StringIO()
    write(report, buf)
    return buf.getvalue()


def write_file(report: Report, path: str) -> None:
    """Write the page to ``path`` atomically (a reader never sees half a page). Raises
    ``OSError`` when the file cannot be written; the caller says so in its own words."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            write(report, f)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)



def write_file_or_say(report: Report, path: str, stream: IO[str]) -> None:
    """``write_file`` for a live process: never raises; a failure is one line on ``stream``."""
    try:
        write_file(report, path)
    except Exception as exc:
        with contextlib.suppress(Exception):
            stream.write(f"stuck: could not write the HTML report to {path}: {exc}\n")
