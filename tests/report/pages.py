"""Inputs for the HTML report tests: real dumps made by gdb, and a stuck JSON report whose
every name is hostile (markup, DOT syntax, terminal escapes), which is read through the same
untrusted-input path as any dump."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from stuck.model import Frame, Process, Report, Resource, Snapshot, Source, Thread, Wait
from stuck.report import json as json_report

ROOT = Path(__file__).resolve().parent.parent.parent
DEADLOCK_DUMP = ROOT / "tests" / "fixtures" / "dumps" / "generated" / "gdb-c-cycle3-victim.txt"
STALL_DUMP = ROOT / "examples" / "dumps" / "c-write-stall-gdb.txt"
GO_DUMP = ROOT / "examples" / "dumps" / "go-all-goroutines-asleep.txt"

EVIL_THREAD = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
EVIL_LOCK = 'lock" -> n0 [label="\\N</svg><iframe src=http://127.0.0.1:9/>'
EVIL_FILE = "/tmp/<img src=http://127.0.0.1:9/f.png>.py"


def hostile_report_json() -> str:
    """A two-thread deadlock whose names, labels and files are all attacks on the page."""
    a = Thread(id="0x1", name=EVIL_THREAD, state="blocked", holds=["r1"],
               waits=Wait("r2", at=Frame("f", EVIL_FILE, 3)),
               frames=[Frame("acquire\x1b[31m<b>", EVIL_FILE, 3)])
    b = Thread(id="0x2", name="other & <u>", state="blocked", holds=["r2"],
               waits=Wait("r1"), frames=[Frame("acquire", "x.py", 4)])
    snap = Snapshot(source=Source(kind="live", format="python"),
                    processes=[Process(pid=1, name="app", threads=[a, b], complete=True)],
                    resources=[Resource("r1", "mutex", EVIL_LOCK, owners=["0x1"]),
                               Resource("r2", "mutex", "b</text><script>x()</script>",
                                        owners=["0x2"])])
    return json_report.dumps(Report(snapshot=snap))


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]

    def with_class(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [a for a in self.named(tag) if cls in (a.get("class") or "").split()]
