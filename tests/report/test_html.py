"""The HTML report without a browser: the graph it draws, the fallback without Graphviz, what
reaches ``dot``, and the one function every command writes the page with."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.report.pages import EVIL_LOCK, EVIL_THREAD, Elements, hostile_report_json

from stuck.dumps.stuckjson import parse as parse_json_report
from stuck.model import Edge, Finding, Report, Resource, Thread, Wait
from stuck.report import html, svg, waitgraph
from stuck.report.json import loads

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
ROOT = Path(__file__).resolve().parent.parent.parent


def hostile_report() -> Report:
    from stuck.analysis import analyze
    from stuck.dumps import merge

    loaded = merge([("json", parse_json_report(hostile_report_json()))], ["evil.json"])
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


@needs_dot
def test_hostile_names_stay_text_in_the_svg() -> None:
    page = html.render(hostile_report())
    el = Elements(page)
    assert el.named("script") == [] and el.named("img") == [] and el.named("iframe") == []
    svg_nodes = el.with_class("a", "node")
    assert {a.get("data-ref") for a in svg_nodes} >= {"0x1", "0x2", "r1", "r2"}
    text = "".join(el.text)
    assert EVIL_THREAD[:30] in text and EVIL_LOCK[:20] in text


@needs_dot
def test_dot_reads_hostile_labels_literally() -> None:
    """Quotes, backslash escapes and DOT syntax inside a label neither break the graph nor add
    nodes or edges to it."""
    labels = {"a": [EVIL_LOCK, "\\G\\N\\l"], "b": ['x" ]; n9 -> n8; n0 [label="y']}
    ids = {"a": "n0", "b": "n1"}
    laid = svg.layout(ids, labels, [waitgraph.GraphEdge("a", "b", "waits")])
    assert laid is not None
    assert set(laid.nodes) == {"n0", "n1"}
    assert [(t, h) for t, h, _ in laid.edges] == [("n0", "n1")]


def test_without_graphviz_the_page_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svg, "dot_path", lambda: None)
    el = Elements(html.render(hostile_report()))
    assert el.with_class("svg", "waitgraph") == []
    note = "".join(el.text)
    assert "needs Graphviz" in note and "graphviz" in note
    assert len(el.with_class("ul", "waits")) == 1  # the edges, in words


def test_a_dot_that_fails_or_times_out_is_not_called_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(svg, "dot_path", lambda: "/usr/bin/dot")
    monkeypatch.setattr(svg, "_spawn_dot", lambda dot, source: None)  # failed, or too slow
    el = Elements(html.render(hostile_report()))
    assert el.with_class("svg", "waitgraph") == []
    note = "".join(el.text)
    assert "could not be drawn" in note and "did not finish within" in note
    assert "not found on PATH" not in note
    assert len(el.with_class("ul", "waits")) == 1  # the edges, in words


def ring(n: int, victims: int) -> tuple[Finding, dict[str, Thread], dict[str, Resource]]:
    threads = {f"T{i}": Thread(id=f"T{i}", name=f"t{i}", state="blocked", holds=[f"R{i}"],
                               waits=Wait(f"R{(i + 1) % n}")) for i in range(n)}
    resources = {f"R{i}": Resource(f"R{i}", "mutex", f"m{i}", owners=[f"T{i}"])
                 for i in range(n)}
    for v in range(victims):
        threads[f"V{v}"] = Thread(id=f"V{v}", state="blocked", waits=Wait("R0"))
    f = Finding("deadlock", "certain", "ring", threads=[f"T{i}" for i in range(n)],
                cycle=[Edge(f"T{i}", f"R{(i + 1) % n}", f"T{(i + 1) % n}") for i in range(n)],
                blocked_behind=[f"V{v}" for v in range(victims)])
    return f, threads, resources


def test_the_graph_marks_the_cycle_and_sets_victims_apart() -> None:
    f, threads, resources = ring(3, 2)
    g = waitgraph.for_finding(f, threads, resources)
    cycle_nodes = {n.ref for n in g.nodes.values() if n.in_cycle}
    assert cycle_nodes == {"T0", "T1", "T2", "R0", "R1", "R2"}
    assert {n.ref for n in g.nodes.values() if n.role == "victim"} == {"V0", "V1"}
    assert sum(e.in_cycle for e in g.edges) == 6
    victim_edges = [e for e in g.edges if e.tail == "t:V0"]
    assert [(e.head, e.kind, e.in_cycle) for e in victim_edges] == [("r:R0", "waits", False)]


def test_many_victims_are_counted_not_drawn() -> None:
    f, threads, resources = ring(2, 5000)
    g = waitgraph.for_finding(f, threads, resources)
    assert len(g.nodes) <= waitgraph.MAX_NODES
    more = [n for n in g.nodes.values() if n.more]
    assert [n.more for n in more] == [5000 - waitgraph.MAX_VICTIMS]


def test_write_file_is_the_page_render_gives(tmp_path: Path) -> None:
    report = hostile_report()
    out = tmp_path / "r.html"
    html.write_file(report, str(out))
    assert out.read_text(encoding="utf-8") == html.render(report)
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary left behind


def test_write_file_or_say_reports_a_failure_in_one_line(tmp_path: Path) -> None:
    import io
    stream = io.StringIO()
    html.write_file_or_say(hostile_report(), str(tmp_path / "missing" / "r.html"), stream)
    assert stream.getvalue().startswith("stuck: could not write the HTML report to ")
    assert stream.getvalue().count("\n") == 1


@needs_dot
def test_stuck_run_html_writes_the_same_page_as_analyze_of_its_json(tmp_path: Path) -> None:
    page, doc = tmp_path / "run.html", tmp_path / "run.json"
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                           "--html", str(page), "--json", str(doc),
                           str(ROOT / "examples" / "three_lock_cycle.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 86, done.stderr
    el = Elements(page.read_text(encoding="utf-8"))
    assert len(el.with_class("svg", "waitgraph")) == 1
    assert {a.get("data-ref") for a in el.with_class("a", "cycle")} >= set(
        loads(doc.read_text()).findings[0].threads)
    again = html.render(loads(doc.read_text()))
    assert Elements(again).tags == el.tags


def test_a_finding_of_ten_thousand_waiters_draws_a_dozen_and_a_count() -> None:
    threads = {f"G{i}": Thread(id=f"G{i}", state="blocked", waits=Wait("mu"))
               for i in range(10_000)}
    resources = {"mu": Resource("mu", "mutex", "cache.mu")}
    f = Finding("hang", "possible", "waiters", threads=list(threads))
    g = waitgraph.for_finding(f, threads, resources)
    drawn = [n for n in g.nodes.values() if n.is_thread and not n.more]
    assert len(drawn) == waitgraph.MAX_THREADS
    assert [n.more for n in g.nodes.values() if n.more] == [10_000 - waitgraph.MAX_THREADS]
    assert sum(1 for e in g.edges if e.head == "r:mu") == waitgraph.MAX_THREADS


@needs_dot
def test_nodes_show_what_tells_them_apart() -> None:
    """A live thread's ident says nothing: its node shows the name only. Two monitors of one
    class share a label: their nodes show their addresses; a lock with a name of its own
    does not need one."""
    from stuck.model import Process, Snapshot, Source

    a = Thread(id="0x7f01", name="writer", state="blocked", holds=["m1"], waits=Wait("m2"))
    b = Thread(id="LWP 12", name="reader", state="blocked", holds=["m2"], waits=Wait("m1"))
    snap = Snapshot(source=Source(kind="dump"), processes=[Process(threads=[a, b])],
                    resources=[Resource("m1", "monitor", "java.lang.Object", owners=["0x7f01"],
                                        address="0x71a"),
                               Resource("m2", "monitor", "java.lang.Object", owners=["LWP 12"],
                                        address="0x71b")])
    f = Finding("deadlock", "certain", "ring", threads=["0x7f01", "LWP 12"],
                cycle=[Edge("0x7f01", "m2", "LWP 12"), Edge("LWP 12", "m1", "0x7f01")])
    el = Elements(html.render(Report(snapshot=snap, findings=[f])))
    svg_text = " | ".join(t for t in el.text if t.strip())
    assert "writer" in svg_text and "0x7f01" not in svg_text
    assert "LWP 12" in svg_text  # an LWP tells something: kept
    assert "monitor 0x71a" in svg_text and "monitor 0x71b" in svg_text
