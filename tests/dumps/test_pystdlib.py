"""Timed and untimed standard-library waits told apart by the line the dump prints
(``stuck.dumps.pystdlib``), on programs captured here by py-spy and faulthandler with the
interpreter running the tests, so the standard library they name is this machine's."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.dumps.helpers import FIXTURES

from stuck.analysis import analyze
from stuck.dumps import load_dump
from stuck.dumps.pystdlib import blocking_call, timed_line
from stuck.model import Report

PROGRAM = FIXTURES.parent / "programs" / "python" / "timed_waits.py"


def _line_of(func: object, code: str) -> int:
    lines, start = inspect.getsourcelines(func)  # type: ignore[arg-type]
    return start + next(i for i, line in enumerate(lines) if line.strip().endswith(code))


def test_condition_wait_has_its_timed_and_untimed_forms_on_different_lines() -> None:
    path = inspect.getsourcefile(threading)
    assert path is not None
    lines = Path(path).read_text().splitlines()
    untimed = _line_of(threading.Condition.wait, "waiter.acquire()")
    timed = _line_of(threading.Condition.wait, "waiter.acquire(True, timeout)")
    assert timed_line(lines, timed, "wait") is True
    assert timed_line(lines, untimed, "wait") is False
    # the same line read as another function's: another version of the file, nothing said
    assert timed_line(lines, timed, "join") is None


def test_a_function_with_one_form_only_says_nothing() -> None:
    lines = ["def join(lock, timeout):", "    if lock.acquire(True, timeout):", "        pass"]
    assert timed_line(lines, 2, "join") is None  # the variable may hold -1: forever
    lines = ["def wait(w, timeout):", "    if timeout is None:", "        w.acquire()",
             "    else:", "        w.acquire(True, timeout)"]
    assert timed_line(lines, 5, "wait") is True
    assert timed_line(lines, 3, "wait") is False


@pytest.mark.parametrize(("line", "method", "timed"), [
    ("waiter.acquire()", "acquire", False),
    ("gotit = waiter.acquire(True, timeout)", "acquire", True),
    ("gotit = waiter.acquire(False)", "acquire", True),  # does not block
    ("self.not_empty.wait()", "wait", False),
    ("self.not_empty.wait(remaining)", "wait", True),
    ("q.get(timeout=None)", "get", False),
    ("q.get(block=False)", "get", True),
    ("self._cond.wait_for(lambda: self._state != 0, timeout)", "wait_for", True),
    ("t.join(-1)", "join", False),
])
def test_blocking_call_reads_the_timeout_from_the_arguments(line: str, method: str,
                                                            timed: bool) -> None:
    call = blocking_call(line)
    assert call is not None and (call.method, call.timed) == (method, timed)


def test_a_line_without_or_with_two_blocking_calls_is_no_call() -> None:
    assert blocking_call("x = compute(y)") is None
    assert blocking_call("a.acquire(); b.acquire()") is None


# --- programs captured here ------------------------------------------------------------------

def _capture(mode: str, tmp_path: Path) -> dict[str, str]:
    """Run the program to its waits; its py-spy dump (when py-spy can attach) and its
    faulthandler dump."""
    fh = tmp_path / f"{mode}.faulthandler.txt"
    proc = subprocess.Popen([sys.executable, str(PROGRAM), mode, str(fh)],
                            stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    out: dict[str, str] = {}
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        try:
            spy = subprocess.run(["py-spy", "dump", "--pid", str(proc.pid)],
                                 capture_output=True, text=True, timeout=60)
            if spy.returncode == 0 and "Thread " in spy.stdout:
                out["pyspy"] = spy.stdout
        except (OSError, subprocess.TimeoutExpired):
            pass
        os.kill(proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "in main" not in fh.read_text():
            time.sleep(0.05)  # the main thread's stack is the last one faulthandler writes
        out["faulthandler"] = fh.read_text()
    finally:
        proc.kill()
        proc.wait()
    return out


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("timed_waits")
    return {mode: _capture(mode, tmp) for mode in ("busy", "stuck")}


def _report(text: str) -> Report:
    loaded = load_dump(text)
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


def _in(r: Report, tid: str, function: str) -> bool:
    t = r.snapshot.thread(tid)
    return t is not None and any(f.function.rsplit(".", 1)[-1] == function for f in t.frames)


def _named(r: Report, function: str) -> bool:
    return any(_in(r, tid, function) for f in r.findings
               for tid in [*f.threads, *f.blocked_behind])


def _tools(captures: dict[str, dict[str, str]]) -> list[str]:
    return sorted(set(captures["busy"]) & set(captures["stuck"]))


def test_timed_waits_of_a_busy_program_are_no_finding(
        captures: dict[str, dict[str, str]]) -> None:
    for tool in _tools(captures):
        r = _report(captures["busy"][tool])
        assert r.findings == [], tool


def test_timed_waiters_are_never_named_beside_a_stuck_one(
        captures: dict[str, dict[str, str]]) -> None:
    for tool in _tools(captures):
        r = _report(captures["stuck"][tool])
        assert r.findings, tool
        assert all(_named(r, "waiter") for _ in r.findings), tool
        assert not _named(r, "ticker") and not _named(r, "poller"), (tool, r.findings)


def test_py_spy_is_among_the_tools_when_installed(captures: dict[str, dict[str, str]]) -> None:
    from stuck.capture import tools
    if tools.find("py-spy") is None:
        pytest.skip("py-spy is not installed (CI: the [test] extras)")
    if "pyspy" not in captures["busy"]:
        pytest.skip("py-spy could not attach here (ptrace not permitted)")
    assert "Python v" in captures["busy"]["pyspy"]


def _other_version(text: str) -> str:
    """The py-spy dump as if from a Python whose library is not on this machine."""
    major, minor = sys.version_info[:2]
    return text.replace(f"Python v{major}.{minor}.", f"Python v{major}.{minor}.9")


def _other_place(text: str) -> str:
    lib = os.path.dirname(inspect.getsourcefile(threading) or "")
    return text.replace(lib + "/", "/nonexistent/lib/python/")


def test_another_version_or_place_falls_back_to_the_dump_alone(
        captures: dict[str, dict[str, str]]) -> None:
    """A library this machine does not have (or has in another version) is never read: the
    waits stay as the dump alone shows them, which cannot tell the ticker is timed."""
    altered = {"faulthandler": _other_place}
    if "pyspy" in captures["busy"]:
        altered["pyspy"] = _other_version
    for tool, alter in altered.items():
        text = alter(captures["busy"][tool])
        assert text != captures["busy"][tool]
        r = _report(text)
        assert r.findings and _named(r, "ticker"), tool
        note = next(n for n in r.snapshot.notes if "standard library" in n)
        # the ticker and the poller (Condition.wait's timed line), not main's join (one line
        # for both forms: the library could not have told)
        assert note.startswith("2 thread(s)") and note.count("threading.py:331") == 2, tool
        assert "--source DIR" in note, tool


def test_no_note_where_the_library_was_read(captures: dict[str, dict[str, str]]) -> None:
    for tool in _tools(captures):
        r = _report(captures["busy"][tool])
        assert not any("standard library" in n for n in r.snapshot.notes), tool


def test_source_dir_gives_the_library_the_dump_names(
        captures: dict[str, dict[str, str]], tmp_path: Path) -> None:
    """``--source DIR`` holding the library's files (the user's word that they ran) is read
    even where the named library is not on this machine."""
    for module in ("threading", "queue"):
        src = inspect.getsourcefile(__import__(module))
        assert src is not None
        (tmp_path / f"{module}.py").write_text(Path(src).read_text())
    text = _other_place(captures["busy"]["faulthandler"])
    loaded = load_dump(text, sources=[str(tmp_path)])
    assert analyze(loaded.snapshot, loaded.stated, loaded.inferred).findings == []
