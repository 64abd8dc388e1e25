"""The HTML report as a browser renders it: headless Chromium loads each page, its DOM is read
back, and Chromium's own network log says which requests the page made.

Three reports: a deadlock and a stall from real gdb dumps, and several files at once (one of
them a stuck report whose every name is hostile). Each must show a wait-for graph with a node
per thread of each finding, keep hostile names as text, and make no request at all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.report.pages import (
    DEADLOCK_DUMP,
    EVIL_LOCK,
    EVIL_THREAD,
    GO_DUMP,
    STALL_DUMP,
    Elements,
    hostile_report_json,
)

from stuck.analyze import analyze_command
from stuck.report.html import CSP

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             "/usr/bin/chromium") if p and Path(p).exists()), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package chromium)"),
    pytest.mark.skipif(shutil.which("dot") is None,
                       reason="needs Graphviz's dot (Debian package graphviz)"),
]
# Chromium's own background traffic (updates, sign-in) is switched off; what remains in the
# network log is the page's.
QUIET = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--disable-extensions",
         "--disable-features=OptimizationHints,Translate,MediaRouter,AutofillServerCommunication"]


def browse(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium: its DOM after loading, and the URLs of the requests
    the page made (network-log requests whose isolation key is the page's file:// origin)."""
    netlog = tmp / f"{page.stem}.netlog.json"
    assert CHROMIUM is not None
    done = subprocess.run([CHROMIUM, *QUIET, f"--user-data-dir={tmp / 'profile'}",
                           f"--log-net-log={netlog}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=True)
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = [e["params"]["url"] for e in log["events"]
            if e["type"] == start_job and "url" in e.get("params", {})
            and "file://" in str(e["params"].get("network_isolation_key", ""))]
    return done.stdout, urls


def analyse(tmp: Path, name: str, files: list[str]) -> tuple[Path, dict[str, object]]:
    page, doc = tmp / f"{name}.html", tmp / f"{name}.json"
    res = CliRunner().invoke(analyze_command, ["--html", str(page), f"--json={doc}", *files])
    assert res.exit_code == 1, res.output
    return page, json.loads(doc.read_text())


def check_page(page: Path, report: dict[str, object], tmp: Path) -> Elements:
    dom, urls = browse(page, tmp)
    assert urls == [page.as_uri()] or urls == [], urls  # the page itself, nothing else
    el = Elements(dom)
    assert [m.get("content") for m in el.named("meta") if m.get("http-equiv")] == [CSP]
    for tag in ("script", "img", "iframe", "object", "embed", "link", "form"):
        assert el.named(tag) == [], tag
    for _, attrs in el.tags:
        assert not [a for a in attrs if a.startswith("on")], attrs
        href = attrs.get("href")
        assert href is None or href.startswith("#"), href
    graphs = el.with_class("svg", "waitgraph")
    findings = report["findings"]
    assert isinstance(findings, list) and findings
    assert len(graphs) == len(findings)
    drawn = {a.get("data-ref") for a in el.with_class("a", "thread")}
    for f in findings:
        wanted = set(f["threads"]) | {e["thread"] for e in f["cycle"]}
        assert wanted and wanted <= drawn, (wanted - drawn)
    panels = {a.get("id") for a in el.with_class("div", "panel")}
    assert {a.get("href", "")[1:] for a in el.with_class("a", "node")} <= panels
    return el


def test_deadlock_page_draws_the_cycle(tmp_path: Path) -> None:
    page, report = analyse(tmp_path, "deadlock", [str(DEADLOCK_DUMP)])
    el = check_page(page, report, tmp_path)
    assert len(el.with_class("a", "cycle")) == 6  # three threads, three mutexes
    assert len(el.with_class("path", "cycle")) == 6
    assert {a.get("data-ref") for a in el.with_class("a", "victim")} == {"LWP 7369", "LWP 7365"}


def test_stall_page_draws_the_waiter(tmp_path: Path) -> None:
    page, report = analyse(tmp_path, "stall", [str(STALL_DUMP)])
    el = check_page(page, report, tmp_path)
    assert el.with_class("a", "resource")  # the condition variable bg_cv
    assert any("bg_cv" in t for t in el.text)


def test_several_files_with_hostile_names(tmp_path: Path) -> None:
    evil = tmp_path / "evil.json"
    evil.write_text(hostile_report_json(), encoding="utf-8")
    files = [str(DEADLOCK_DUMP), str(evil), str(STALL_DUMP), str(GO_DUMP)]
    page, report = analyse(tmp_path, "multi", files)
    el = check_page(page, report, tmp_path)
    text = "".join(el.text)
    assert EVIL_THREAD in text and EVIL_LOCK[:20] in text  # shown as text, not dropped
    origins = [t for t in el.text if t.startswith("from ")]
    assert len(origins) == len(report["findings"])  # type: ignore[arg-type]
    named = {o[len("from "):] for o in origins}
    assert named == {str(DEADLOCK_DUMP), str(evil), str(STALL_DUMP), str(GO_DUMP)}, named


def test_the_request_check_sees_a_request_when_there_is_one(tmp_path: Path) -> None:
    """The check above would fail for a page that loads something: the same page, its
    Content-Security-Policy taken out and an image put in, is seen fetching it."""
    page, _ = analyse(tmp_path, "deadlock", [str(DEADLOCK_DUMP)])
    html = page.read_text()
    head, rest = html.split('<meta http-equiv="Content-Security-Policy"', 1)
    leaky = tmp_path / "leaky.html"
    leaky.write_text(head + rest.split(">", 1)[1].replace(
        "<body>", '<body><img src="http://127.0.0.1:9/probe.png">', 1))
    _, urls = browse(leaky, tmp_path)
    assert "http://127.0.0.1:9/probe.png" in urls
