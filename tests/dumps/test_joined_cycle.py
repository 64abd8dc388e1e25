"""A thread that only joins a stuck thread waits behind it, and two monitors of one class are
told apart (tests/fixtures/dumps/joined_cycle/, captured by its build.py with jstack, py-spy and
pystack from programs made for it).

- A join waits for a thread that is alive and not the joiner. Java's Thread.join prints only
  the Thread object's address, and a Python dump without --locals no target at all; when every
  thread the join could be waiting for is in a deadlock or a stall (or behind it), the joiner
  is blocked behind that finding, not one of its root waiters.
- jstack names a monitor by its class, so two `java.lang.Object` locks read the same: each is
  named as the dump prints it, `<0x...> (a java.lang.Object)`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stuck.analyze import analyze_command

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "dumps" / "joined_cycle"
SOURCE = HERE / "programs"


def _report(name: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    path = str(HERE / name)
    runner = CliRunner()
    as_json = runner.invoke(analyze_command, ["--json", "-", *extra, path])
    text = runner.invoke(analyze_command, [*extra, path])
    return text.exit_code, json.loads(as_json.stdout), text.output


def _joiner(report: dict[str, Any]) -> str:
    """The thread waiting in a join (the program's main thread)."""
    kinds = {r["id"]: r["kind"] for r in report["resources"]}
    [tid] = [t["id"] for p in report["processes"] for t in p["threads"]
             if t.get("waits") and kinds.get(t["waits"]["resource"]) == "thread"]
    return str(tid)


@pytest.mark.parametrize("name", ["jstack-l-MonitorsJoin.txt", "jstack-MonitorsJoin.txt"])
def test_java_main_joining_a_deadlocked_thread_waits_behind_the_cycle(name: str) -> None:
    code, report, text = _report(name)
    assert code == 1
    [f] = report["findings"]
    names = {t["id"]: t["name"] for p in report["processes"] for t in p["threads"]}
    assert (f["kind"], f["confidence"]) == ("deadlock", "certain")
    assert sorted(names[t] for t in f["threads"]) == ["auditor", "teller"]
    assert [names[t] for t in f["blocked_behind"]] == ["main"]
    assert "Blocked behind it: main" in text


@pytest.mark.parametrize("name", ["jstack-l-MonitorsJoin.txt", "jstack-MonitorsJoin.txt"])
def test_two_monitors_of_one_class_are_named_by_their_addresses(name: str) -> None:
    dump = (HERE / name).read_text()
    _, report, text = _report(name)
    [f] = report["findings"]
    labels = {r["id"]: r["label"] for r in report["resources"]}
    cycle_labels = [labels[e["waits_for"]] for e in f["cycle"]]
    assert len(set(cycle_labels)) == 2
    for label in cycle_labels:
        m = re.fullmatch(r"<(0x[0-9a-f]+)> \(a java\.lang\.Object\)", label)
        assert m is not None, label
        assert f"- waiting to lock <{m.group(1)}> (a java.lang.Object)" in dump
        assert f"waits for monitor {label}" in text


@pytest.mark.parametrize("tool", ["pyspy", "pystack"])
def test_python_main_joining_a_deadlocked_thread_waits_behind_the_cycle(tool: str) -> None:
    code, report, _ = _report(f"{tool}-locks_join.txt", "--source", str(SOURCE))
    assert code == 1
    main = _joiner(report)
    deadlocks = [f for f in report["findings"] if f["kind"] == "deadlock"]
    assert deadlocks and all(main not in f["threads"] for f in report["findings"])
    assert any(len(f["threads"]) == 2 and f["blocked_behind"] == [main] for f in deadlocks)


@pytest.mark.parametrize("tool", ["pyspy", "pystack"])
@pytest.mark.parametrize("source", [False, True], ids=["dump", "dump+source"])
def test_python_main_joining_a_stalled_waiter_is_not_a_root_of_the_stall(
        tool: str, source: bool) -> None:
    # The waiter missed the notify and waits on its condition for good; main joins it (the
    # loader has ended). main is behind the waiter, and the headline names the waiter alone.
    code, report, _ = _report(f"{tool}-cond_join.txt",
                                 *(["--source", str(SOURCE)] if source else []))
    assert code == 1
    main = _joiner(report)
    [f] = report["findings"]
    assert f["kind"] == "stall" and len(f["threads"]) == 1 and main not in f["threads"]
    assert f["blocked_behind"] == [main]
    assert "and 1 more" not in f["summary"]
