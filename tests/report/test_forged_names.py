"""Names from a source never forge a line of a text report.

A thread name, a resource label, a function or file name comes from the program or from a
dump or JSON report anyone could edit. Each text writer (the text report to a terminal or a
file, the exception messages, the watchdog's "still holds" lines, the lock-order report, the
explore output) shows its control characters as visible escapes, so no line of the output can
start with a verdict the source made up; the JSON report keeps the names exact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from stuck.explore.cli import explore_command
from stuck.report.names import clean, raw_names, text_lines

STUCK = [sys.executable, "-m", "stuck"]
# A name made to look like the start of a finding: newline, line and paragraph separators,
# a carriage return, a terminal escape.
EVIL = "w\nDEADLOCK (certain): FORGED\u2028STALL (certain): FORGED\r\x1b[31mred\x85x"
EVIL2 = "v\nSTALL (certain): FORGED\tz"
FORGED_JSON = Path(__file__).parent / "forged_h2.json"


def no_forged_line(text: str) -> None:
    """No line (split the way any terminal or editor would) starts with the forged verdict,
    and no raw control character is left."""
    for line in text.splitlines():  # splitlines also breaks at \r, \x85, \u2028 ...
        assert not line.lstrip().startswith(("DEADLOCK (certain): FORGED",
                                              "STALL (certain): FORGED")), line
    assert "\x1b" not in text and "\u2028" not in text and "\r" not in text
    assert "FORGED" in text  # the name is shown, escaped


def test_clean_escapes_every_control_character_visibly() -> None:
    assert clean("a\nb\tc\rd\x1b[0m\x85\u2028\u2029\x7f") == \
        "a\\nb\\tc\\rd\\x1b[0m\\x85\\u2028\\u2029\\x7f"
    assert clean(clean(EVIL)) == clean(EVIL)  # escaping twice changes nothing more


def test_names_inside_a_multi_line_text_are_escaped_before_it_is_split() -> None:
    text = f"{EVIL} tries to get\nThe only thread(s): {EVIL2}."
    lines = text_lines(text, raw_names({"threads": [EVIL, EVIL2, "plain"]}))
    assert lines == [f"{clean(EVIL)} tries to get", f"The only thread(s): {clean(EVIL2)}."]


def _run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STUCK, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


EVENT_PROGRAM = f"""
import threading
ev = threading.Event()
t = threading.Thread(target=ev.wait, name={EVIL!r})
t.start(); t.join()
"""


def test_live_report_abort_and_raise(tmp_path: Path) -> None:
    (tmp_path / "evil.py").write_text(EVENT_PROGRAM)
    aborted = _run(["run", "--policy", "abort", "evil.py"], tmp_path)
    assert aborted.returncode == 86, aborted.stderr
    assert "STALL (certain)" in aborted.stderr
    no_forged_line(aborted.stderr)
    raised = _run(["run", "--policy", "raise", "evil.py"], tmp_path)
    assert "StallError" in raised.stderr, raised.stderr
    no_forged_line(raised.stderr)


def test_untrusted_json_report_text_html_and_json(tmp_path: Path) -> None:
    # A live report of a stall whose names were edited to forge lines.
    (tmp_path / "evil.py").write_text(EVENT_PROGRAM)
    made = _run(["run", "--policy", "abort", "--json", "r.json", "evil.py"], tmp_path)
    assert made.returncode == 86, made.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    worker = next(t for p in data["processes"] for t in p["threads"] if t["name"] == EVIL)
    assert worker["state"] == "blocked"  # JSON keeps the name exact
    for res in data["resources"]:
        res["label"] = EVIL2
    (tmp_path / "r.json").write_text(json.dumps(data))
    text = _run(["analyze", "r.json"], tmp_path)
    assert text.returncode == 1, text.stderr
    assert "STALL (certain)" in text.stdout
    no_forged_line(text.stdout)
    again = _run(["analyze", "r.json", "--json", "-"], tmp_path)
    names = {t["name"] for p in json.loads(again.stdout)["processes"] for t in p["threads"]}
    assert EVIL in names
    _run(["analyze", "r.json", "--html", "r.html"], tmp_path)
    page = (tmp_path / "r.html").read_text()
    assert "\x1b" not in page and "\u2028" not in page
    assert not any(line.startswith("DEADLOCK (certain): FORGED") for line in page.splitlines())


ABBA_PROGRAM = f"""
import threading, time
a = threading.Lock()
b = threading.Lock()
def one():
    with a:
        time.sleep(0.3)
        with b:
            pass
def two():
    with b:
        time.sleep(0.3)
        with a:
            pass
x = threading.Thread(target=one, name={EVIL!r})
y = threading.Thread(target=two, name={EVIL2!r})
x.start(); y.start()
x.join()
"""


def test_deadlock_report(tmp_path: Path) -> None:
    (tmp_path / "abba.py").write_text(ABBA_PROGRAM)
    done = _run(["run", "--policy", "abort", "abba.py"], tmp_path)
    assert done.returncode == 86 and "DEADLOCK" in done.stderr, done.stderr
    no_forged_line(done.stderr)


LOCK_ORDER_PROGRAM = f"""
import threading
a = threading.Lock()
b = threading.Lock()
def one():
    with a:
        with b:
            pass
def two():
    with b:
        with a:
            pass
for target, name in ((one, {EVIL!r}), (two, {EVIL2!r})):
    t = threading.Thread(target=target, name=name)
    t.start(); t.join()
"""


def test_lock_order_report(tmp_path: Path) -> None:
    (tmp_path / "order.py").write_text(LOCK_ORDER_PROGRAM)
    done = _run(["run", "--lock-order", "order.py"], tmp_path)
    assert "lock-order" in done.stderr.lower(), done.stderr
    no_forged_line(done.stderr)


def evil_abba() -> None:
    """An ABBA for explore, between threads whose names forge lines."""
    import threading

    first = threading.Lock()
    second = threading.Lock()

    def forward() -> None:
        with first, second:
            pass

    def backward() -> None:
        with second, first:
            pass

    a = threading.Thread(target=forward, name=EVIL)
    b = threading.Thread(target=backward, name=EVIL2)
    a.start()
    b.start()
    a.join()
    b.join()


def test_explore_output() -> None:
    res = CliRunner().invoke(explore_command, [f"{__file__}::evil_abba", "-n", "200"])
    assert res.exit_code == 1, res.output
    no_forged_line(res.output)
