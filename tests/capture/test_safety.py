"""Capture is safe and honest when it cannot read everything: no privileges, a tool missing or
too slow, a process ending mid-capture. It never leaves its target stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.capture.conftest import settle

from stuck.capture import collect, proc, report, tools
from stuck.capture.evidence import ProcessEvidence


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _state_once_run(pid: int, seconds: float = 30.0) -> str:
    """The state of ``pid`` once the scheduler has run it: a process a debugger has just
    detached from is runnable ('R') until it gets a CPU and goes back to its wait, and a loaded
    machine can put that off. A stopped process ('T', 't') is returned at once."""
    deadline = time.monotonic() + seconds
    state = _state(pid)
    while state == "R" and time.monotonic() < deadline:
        time.sleep(0.02)
        state = _state(pid)
    return state


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to start a target another user cannot read (setpriv)")
def test_an_unprivileged_user_who_can_read_nothing_is_told_so_not_nothing_found(c_program, start) -> None:  # type: ignore[no-untyped-def]
    # Another user's process: its threads are listed, but no syscall, kernel stack, open file
    # or user stack can be read. "Nothing found" (exit 0) would read as "not stuck".
    pair = start([str(c_program("pipe_pair"))])
    server, _ = settle(pair, 2)
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-m", "stuck", "capture", str(server)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr + run.stdout and not run.stdout
    [line] = run.stderr.splitlines()
    assert f"could not read what the threads of pid {server} wait on" in line
    assert "permission denied" in line and "root" in line  # why, and what to do
    assert _state(server) == "S"  # left as it was


def test_missing_tools_are_named_and_the_kernel_view_still_decides(c_program, start,  # type: ignore[no-untyped-def]
                                                                    monkeypatch) -> None:
    monkeypatch.setattr(tools, "find", lambda name: None)
    pair = start([str(c_program("pipe_pair"))])
    server, worker = settle(pair, 2)
    rep = report(collect([server]))
    [d] = rep.findings
    assert d.kind == "deadlock"  # pipes need no tool
    assert {p.pid for p in rep.snapshot.processes} == {server, worker}
    # Why the native stacks of each process are missing: gdb is not installed, or (for a
    # process blocked writing to its full pipe) a stop would cut that write short.
    for pid in (server, worker):
        assert any(f"pid {pid}" in m and "native stacks and mutex owners" in m
                   and ("gdb is not installed" in m or "was not stopped" in m)
                   for m in d.missing_evidence), (pid, d.missing_evidence)


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_without_python_tools_a_python_process_gets_gdb_native_frames(start, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = tools.find
    monkeypatch.setattr(tools, "find", lambda name: None if name in ("py-spy", "pystack")
                        else real(name))
    target = start([sys.executable, "-c", "import time; time.sleep(60)"])
    settle(target, 1)
    ev = collect([target.pid])
    [pe] = ev.processes
    assert pe.runtime == "python" and "gdb" in pe.tools
    assert any("py-spy is not installed" in m for m in pe.missing)
    rep = report(ev)
    [main] = rep.snapshot.threads()
    assert main.frames and main.frames[0].module != "[kernel]"  # gdb's frames


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_a_tool_past_its_deadline_is_stopped_and_the_target_keeps_running(c_program, start) -> None:  # type: ignore[no-untyped-def]
    prog = start([str(c_program("mutex_abba"))])
    [pid] = settle(prog, 1)
    ev = collect([pid], timeout=0.05)
    [pe] = ev.processes
    assert any("did not finish" in m or "could not read" in m for m in pe.missing)
    time.sleep(0.2)
    assert all(_state(pid) != "T" for _ in range(3))
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] in ("S", "R", "D")


def test_a_target_the_user_stopped_is_left_stopped(start) -> None:  # type: ignore[no-untyped-def]
    target = start(["sleep", "60"])
    os.kill(target.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while _state(target.pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.02)
    ran = tools.run(["sleep", "5"], 0.05, target=target.pid)
    assert ran.code is None  # killed at its deadline
    assert _state(target.pid) == "T"


def test_a_process_that_exits_during_the_capture(start, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The target ends between the capture's first read and its second, whatever the load: it
    # is ended (and reaped) just before the second read, not left to a timer that a slow
    # machine can run before the first read or after the second.
    short = start(["sleep", "60"])
    resample = proc.resample

    def end_then_resample(pe: ProcessEvidence) -> None:
        short.proc.kill()
        short.proc.wait()  # reaped: no zombie left in /proc
        resample(pe)

    monkeypatch.setattr(proc, "resample", end_then_resample)
    ev = collect([short.pid], interval=0.05, runtime_views=False)
    rep = report(ev)
    assert rep.findings == []
    assert any("exited during the capture" in n for n in rep.snapshot.notes)


def test_zombie_and_missing_pid_messages_say_what_to_do() -> None:
    pe = proc.read_process(999_999_999)
    assert pe.threads == [] and "does not exist" in pe.missing[0]


def test_ptrace_scope_hint_names_the_setting(tmp_path: Path) -> None:
    scope = tmp_path / "ptrace_scope"
    scope.write_text("1\n")
    assert "only a parent process may attach" in proc.ptrace_hint(str(scope), euid=1000)
    scope.write_text("3\n")
    assert "not even root" in proc.ptrace_hint(str(scope))
    assert "run as root" in proc.ptrace_hint(str(tmp_path / "absent"), euid=1000)


def test_root_is_told_what_is_really_missing(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tstuck\nCapEff:\t00000000a80425fb\n")  # docker's default set
    hint = proc.ptrace_hint(str(tmp_path / "absent"), euid=0, status_path=str(status))
    assert "without CAP_SYS_PTRACE" in hint and "run as root" not in hint
    status.write_text("Name:\tstuck\nCapEff:\t000001ffffffffff\n")
    hint = proc.ptrace_hint(str(tmp_path / "absent"), euid=0, status_path=str(status))
    assert "security policy" in hint and "run as root" not in hint


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs root and unshare(1) to make a pid namespace")
def test_a_process_in_another_pid_namespace_is_named_so(start) -> None:  # type: ignore[no-untyped-def]
    outer = start(["unshare", "--pid", "--fork", "sleep", "30"])
    deadline = time.monotonic() + 10
    inner = ""
    while not inner and time.monotonic() < deadline:
        with open(f"/proc/{outer.pid}/task/{outer.pid}/children") as f:
            inner = f.read().strip()
        time.sleep(0.05)
    if not inner:
        pytest.skip("unshare could not make a pid namespace here")
    rep = report(collect([int(inner.split()[0])], runtime_views=False))
    assert any("another pid namespace" in n for n in rep.snapshot.notes)


def test_saved_evidence_is_untrusted_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "evidence.json").write_text('{"format": "something else"}')
    run = subprocess.run([sys.executable, "-m", "stuck", "analyze", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "not stuck.capture/1 evidence" in run.stderr
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    thread = {"tid": 7, "comm": "evil\x1b[31m", "stat": "7 (x) S 1", "syscall": "garbage",
              "stat2": "7 (x) S 1", "syscall2": "garbage", "switches": "many"}
    doc = {"format": "stuck.capture/1", "taken_at": 0, "machine": "x86_64", "interval": 0.25,
           "processes": [{"pid": 7, "comm": "evil\x1b[31m", "threads": [thread, "junk"],
                          "fds": [{"fd": "0"}, {"fd": 1, "target": "pipe:[oops"}],
                          "tools": {"gdb": "STUCK-GDB {not json"}}, 42]}
    import json
    (hostile / "evidence.json").write_text(json.dumps(doc))
    run = subprocess.run([sys.executable, "-m", "stuck", "analyze", str(hostile)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stdout and "evil\\x1b[31m" in run.stdout


@pytest.mark.skipif(shutil.which("gdb") is None or shutil.which("gcc") is None,
                    reason="needs gdb and gcc")
def test_a_targets_own_gdb_script_is_never_run(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """gdb loads ``NAME-gdb.py`` found beside an executable it debugs: a hostile target would
    run its own code in the capture's gdb, as root. It was loaded (safe-path was /)."""
    src = tmp_path / "quiet.c"
    src.write_text("#include <unistd.h>\nint main(void) { for (;;) pause(); }\n")
    exe = tmp_path / "quiet"
    subprocess.run(["gcc", "-g", "-o", str(exe), str(src)], check=True, capture_output=True)
    marker = tmp_path / "ran"
    (tmp_path / "quiet-gdb.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    target = start([str(exe)])
    settle(target, 1)
    ev = collect([target.pid])
    assert "gdb" in ev.processes[0].tools  # gdb did read it
    assert not marker.exists()
    assert _state_once_run(target.pid) == "S"  # resumed, and back in its pause()


def test_gdb_failing_on_a_process_that_exited_asks_for_no_privilege(monkeypatch) -> None:
    """gdb's 'ptrace: No such process.' for a process gone meanwhile was followed by 'run as
    root, or as the process's own user': advice that cannot help."""
    from stuck.capture import gdb
    from stuck.capture.evidence import Evidence, ProcessEvidence

    monkeypatch.setattr(tools, "find", lambda name: "/usr/bin/gdb")
    monkeypatch.setattr(tools, "run", lambda argv, timeout, target=None: tools.Ran(
        out="", err="ptrace: No such process.\n", code=1))
    gone = ProcessEvidence(pid=999_999_999)
    gdb.collect(gone, Evidence(taken_at=0.0, machine="x86_64", interval=0.25), 5.0)
    assert gone.missing == []
    alive = ProcessEvidence(pid=os.getpid())  # the same words for a process still there
    gdb.collect(alive, Evidence(taken_at=0.0, machine="x86_64", interval=0.25), 5.0)
    assert len(alive.missing) == 1 and alive.missing[0].startswith("gdb could not read pid")


def _a_kernel_thread() -> int | None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[6]) & proc.PF_KTHREAD:
                return int(name)
    return None


def test_a_kernel_thread_is_a_usage_error_saying_so() -> None:
    """A kernel thread has no executable: it was 'pid 2 exited while its executable was read'
    and 'nothing found', exit 0."""
    pid = _a_kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread is visible in this pid namespace")
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(pid)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "is a kernel thread" in run.stderr and "Traceback" not in run.stderr


# A writer stuck on a full pipe: it writes 200,000 bytes in one call and records what the call
# returned. A ptrace stop (gdb, pystack, py-spy attaching) would end that write short, at the
# 65,536 bytes the pipe took, and the program would go on with the rest unwritten.
_ONE_BIG_WRITE = """
import os, sys
r, w = os.pipe()
if os.fork() == 0:  # the reader: reads nothing until the parent's writer is done or told
    os.close(w)
    sys.stdin.read(1)  # the test says when
    total = 0
    while chunk := os.read(r, 1 << 16):
        total += len(chunk)
    print("read", total, flush=True)
    os._exit(0)
os.close(r)
wrote = os.write(w, b"x" * 200000)
print("wrote", wrote, flush=True)
os.close(w)
os.wait()
"""


@pytest.mark.skipif(shutil.which("py-spy") is None and shutil.which("gdb") is None,
                    reason="neither py-spy nor gdb is installed (CI: the [test] extras, "
                           ".ci/packages)")
def test_a_thread_writing_to_a_full_pipe_is_not_stopped_so_its_write_is_not_cut(start) -> None:  # type: ignore[no-untyped-def]
    prog = start([sys.executable, "-c", _ONE_BIG_WRITE], stdin=subprocess.PIPE)
    writer, _ = settle(prog, 2)
    ev = collect([writer], timeout=30)
    text = "\n".join(pe_missing for pe in ev.processes for pe_missing in pe.missing)
    assert f"pid {writer} was not stopped to read it" in text
    assert "--attach-anyway" in text
    prog.proc.stdin.write(b"go")
    prog.proc.stdin.flush()
    out, _ = prog.proc.communicate(timeout=30)
    assert b"wrote 200000" in out and b"read 200000" in out, out  # the write was not cut
