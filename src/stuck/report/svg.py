"""A wait-for graph drawn as inline SVG, laid out by Graphviz's ``dot``.

``dot`` only places things: it is given node ids and labels (for their sizes) and answers in
its ``plain`` format, positions and edge splines. The SVG is then written here, where every
piece of text from the source is escaped by one function, so no name from a dump can become
markup whatever ``dot`` does with it. Nodes link to ``#stack-…`` anchors: clicking one shows
that thread's stack or that resource's details with CSS alone (``:target``), so the page needs
no script and keeps a strict Content-Security-Policy.

``dot`` runs as a child process started with ``posix_spawn`` and a file in and a file out, with
no thread and no lock of the calling program involved: a live process writes this report from
the thread that is about to deadlock. When ``dot`` is missing, fails, or does not answer within
``DOT_TIMEOUT`` (a machine under heavy load), ``layout`` returns None and the report says
which, and gives the edges in words.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from stuck.report.waitgraph import GraphEdge, WaitGraph

DOT_TIMEOUT = 10.0  # seconds; a graph of at most 60 nodes takes milliseconds
POINTS_PER_INCH = 72.0


@dataclass(slots=True)
class Placed:
    x: float  # centre, in points, y growing downwards
    y: float
    width: float
    height: float


@dataclass(slots=True)
class Layout:
    width: float
    height: float
    nodes: dict[str, Placed]  # dot id -> box
    edges: list[tuple[str, str, list[tuple[float, float]]]]  # tail id, head id, spline points


def dot_path() -> str | None:
    return shutil.which("dot")


def _dot_string(text: str) -> str:
    """A DOT quoted string that ``dot`` reads as the literal text (no ``\\N``-style escapes)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(ids: dict[str, str], labels: dict[str, list[str]], edges: list[GraphEdge]) -> str:
    """DOT text for ``dot``: node ids are ours (``n0``, ``n1``…), labels only size the boxes."""
    lines = ["digraph waits {", "  rankdir=TB; nodesep=0.3; ranksep=0.35;",
             '  node [shape=box, fontname="Helvetica", fontsize=12, margin="0.15,0.08"];']
    for key, node_id in ids.items():
        lines.append(f"  {node_id} [label={_dot_string(chr(10).join(labels[key]))}];")
    for e in edges:
        style = " [weight=3]" if e.in_cycle else ""
        lines.append(f"  {ids[e.tail]} -> {ids[e.head]}{style};")
    lines.append("}")
    # DOT reads "\n" inside a quoted string as an escape only when written as backslash-n;
    # a real newline is also a line break in a label, which is what the sizes need.
    return "\n".join(lines) + "\n"


def parse_plain(text: str) -> Layout:
    """Read ``dot -Tplain``: ``graph``, ``node`` and ``edge`` lines. Ids are ours (no spaces),
    so the first fields of each line are read by position and labels are never parsed."""
    width = height = 0.0
    nodes: dict[str, Placed] = {}
    raw_edges: list[tuple[str, str, list[tuple[float, float]]]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "graph" and len(parts) >= 4:
            width, height = float(parts[2]), float(parts[3])
        elif parts[0] == "node" and len(parts) >= 6:
            x, y, w, h = (float(v) for v in parts[2:6])
            nodes[parts[1]] = Placed(x, y, w, h)
        elif parts[0] == "edge" and len(parts) >= 4:
            n = int(parts[3])
            coords = [float(v) for v in parts[4:4 + 2 * n]]
            raw_edges.append((parts[1], parts[2], list(zip(coords[::2], coords[1::2], strict=False))))
    s = POINTS_PER_INCH

    def flip(x: float, y: float) -> tuple[float, float]:
        return x * s, (height - y) * s

    placed = {}
    for k, p in nodes.items():
        x, y = flip(p.x, p.y)
        placed[k] = Placed(x, y, p.width * s, p.height * s)
    edges = [(a, b, [flip(x, y) for x, y in pts]) for a, b, pts in raw_edges]
    return Layout(width * s, height * s, placed, edges)


def _spawn_dot(dot: str, source: str) -> str | None:
    """Run ``dot -Tplain`` on ``source``; None if it fails or takes longer than DOT_TIMEOUT."""
    with tempfile.TemporaryDirectory(prefix="stuck-dot-") as tmp:
        src, out = os.path.join(tmp, "g.dot"), os.path.join(tmp, "g.plain")
        with open(src, "w", encoding="utf-8") as f:
            f.write(source)
        argv = [dot, "-Tplain", "-o", out, src]
        if not hasattr(os, "posix_spawn"):
            try:
                subprocess.run(argv, timeout=DOT_TIMEOUT, check=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError):
                return None
        else:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                pid = os.posix_spawn(dot, argv, dict(os.environ), file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2)])
            except OSError:
                return None
            finally:
                os.close(devnull)
            if not _reaped_in_time(pid):
                return None
        try:
            with open(out, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None


def _reaped_in_time(pid: int) -> bool:
    """Wait for ``pid`` up to DOT_TIMEOUT (killing it after); True if it exited with 0."""
    deadline = time.monotonic() + DOT_TIMEOUT
    delay = 0.001
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def layout(ids: dict[str, str], labels: dict[str, list[str]],
           edges: list[GraphEdge]) -> Layout | None:
    """Positions from ``dot``, or None when Graphviz is not installed or fails."""
    dot = dot_path()
    if dot is None:
        return None
    plain = _spawn_dot(dot, to_dot(ids, labels, edges))
    if plain is None:
        return None
    try:
        return parse_plain(plain)
    except ValueError:
        return None


def _path(points: list[tuple[float, float]]) -> str:
    """An SVG path through dot's B-spline control points (one start, then triples)."""
    if not points:
        return ""
    out = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    rest = points[1:]
    for i in range(0, len(rest) - len(rest) % 3, 3):
        (x1, y1), (x2, y2), (x3, y3) = rest[i:i + 3]
        out.append(f"C{x1:.1f},{y1:.1f} {x2:.1f},{y2:.1f} {x3:.1f},{y3:.1f}")
    return " ".join(out)


def draw(graph: WaitGraph, labels: dict[str, list[str]], link: Callable[[str], str],
         caption: str) -> str | None:
    """The SVG for ``graph``, or None when ``dot`` is not available.

    ``labels`` are the lines shown in each node (raw text: escaped here), ``link(key)`` the
    anchor a node points to.
    """
    ids = {key: f"n{i}" for i, key in enumerate(graph.nodes)}
    placed = layout(ids, labels, graph.edges)
    if placed is None:
        return None
    keys = {v: k for k, v in ids.items()}
    pad = 4.0
    w, h = placed.width + 2 * pad, placed.height + 2 * pad
    out = [f'<svg class="waitgraph" xmlns="http://www.w3.org/2000/svg" role="img" '
           f'viewBox="{-pad:.0f} {-pad:.0f} {w:.0f} {h:.0f}" width="{w:.0f}" height="{h:.0f}">',
           f"<title>{escape(caption)}</title>"]
    by_pair = {(ids[e.tail], ids[e.head]): e for e in graph.edges}
    for tail, head, points in placed.edges:
        e = by_pair.get((tail, head))
        if e is None:
            continue
        cls = f"edge {e.kind}" + (" cycle" if e.in_cycle else "")
        out.append(f'<path class="{cls}" d="{_path(points)}" marker-end="url(#arrow-{e.kind})">'
                   f"<title>{e.kind}</title></path>")
    for node_id, box in placed.nodes.items():
        key = keys.get(node_id)
        if key is None:
            continue
        node = graph.nodes[key]
        cls = "node " + ("thread" if node.is_thread else "resource") + f" {node.role}"
        if node.in_cycle:
            cls += " cycle"
        x, y = box.x - box.width / 2, box.y - box.height / 2
        lines = labels[key]
        out.append(f'<a href="#{escape(link(key))}" class="{cls}" data-ref="{escape(node.ref)}">'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.width:.1f}" '
                   f'height="{box.height:.1f}" rx="{6 if node.is_thread else 0}"/>')
        line_h = 14.0
        top = box.y - line_h * (len(lines) - 1) / 2
        for i, text in enumerate(lines):
            weight = ' class="name"' if i == 0 else ""
            out.append(f'<text x="{box.x:.1f}" y="{top + i * line_h + 4:.1f}"{weight}>'
                       f"{escape(text)}</text>")
        out.append("</a>")
    out.append("</svg>")
    return "".join(out)


MARKERS = (
    '<svg class="defs" width="0" height="0" aria-hidden="true"><defs>'
    + "".join(f'<marker id="arrow-{k}" viewBox="0 0 10 10" refX="1" refY="5" markerWidth="10" '
              f'markerHeight="8" markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
              f'class="arrowhead {k}"/></marker>' for k in ("waits", "holds", "wakes"))
    + "</defs></svg>"
)
