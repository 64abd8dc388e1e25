"""stuck capture on Python and JVM processes: pipes, multiprocessing, sockets, monitors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.capture.conftest import PROGRAMS, settle

from stuck.capture import collect, report
from stuck.model import Report


def _capture(*pids: int) -> Report:
    return report(collect(list(pids)))


def _pids_in(rep: Report, threads: list[str]) -> set[int | None]:
    owner = {t.id: p.pid for p in rep.snapshot.processes for t in p.threads}
    return {owner[t] for t in threads}


def test_python_parent_and_child_through_two_pipes(start) -> None:  # type: ignore[no-untyped-def]
    pair = start([sys.executable, str(PROGRAMS / "py_pipe_pair.py")])
    pids = settle(pair, 2)
    rep = _capture(pair.pid)
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert _pids_in(rep, d.threads) == set(pids)
    resources = rep.snapshot.resource_map()
    assert [resources[e.waits_for].kind for e in d.cycle] == ["pipe", "pipe"]
    parent = rep.snapshot.thread(f"LWP {pair.pid}")
    assert parent is not None and parent.waits is not None
    assert parent.waits.at is not None and parent.waits.at.file is not None
    assert parent.waits.at.file.endswith("py_pipe_pair.py")  # the Python line, by py-spy


def test_worker_joined_before_its_full_queue_is_read(start) -> None:  # type: ignore[no-untyped-def]
    prog = start([sys.executable, str(PROGRAMS / "py_mp_queue.py")])
    parent, worker = settle(prog, 2)
    rep = _capture(parent)  # the worker is followed: the parent waits for it to exit
    deadlocks = [f for f in rep.findings if f.kind == "deadlock"]
    assert len(deadlocks) == 1
    [d] = deadlocks
    assert _pids_in(rep, d.threads) == {parent, worker}
    resources = rep.snapshot.resource_map()
    kinds = {resources[e.waits_for].kind for e in d.cycle}
    assert kinds == {"process", "pipe"}  # the parent's join, the feeder's write
    directions = set()
    for e in d.cycle:
        t = rep.snapshot.thread(e.thread)
        assert t is not None and t.waits is not None
        directions.add(t.waits.direction)
    assert directions == {"wait-child", "write"}


def test_multiprocessing_pipe_pair_through_unix_sockets(start) -> None:  # type: ignore[no-untyped-def]
    prog = start([sys.executable, str(PROGRAMS / "py_socket_pair.py")])
    parent, child = settle(prog, 2)
    rep = _capture(parent)
    [d] = rep.findings
    assert d.kind == "deadlock"
    assert _pids_in(rep, d.threads) == {parent, child}
    resources = rep.snapshot.resource_map()
    socks = [resources[e.waits_for] for e in d.cycle]
    assert {s.kind for s in socks} == {"socket"}
    assert len({s.inode for s in socks}) == 2


@pytest.fixture(scope="session")
def java_class(build_dir: Path) -> Path:
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("a JDK is not installed (CI: openjdk-17-jdk-headless in .ci/packages)")
    if shutil.which("jcmd") is None and shutil.which("jstack") is None:
        pytest.skip("neither jcmd nor jstack is installed")
    out = build_dir / "java"
    sources = sorted(PROGRAMS.glob("*.java"))
    if not all((out / f"{src.stem}.class").exists() for src in sources):
        subprocess.run(["javac", "-d", str(out), *map(str, sources)], check=True,
                       capture_output=True)
    return out


def test_jvm_monitor_deadlock(java_class: Path, start) -> None:  # type: ignore[no-untyped-def]
    jvm = start(["java", "-Xmx64m", "-XX:+UseSerialGC", "-cp", str(java_class), "Deadlock"])
    assert jvm.proc.stdout is not None
    pid = int(jvm.proc.stdout.readline())
    rep = None
    for _ in range(20):  # the two threads may not have blocked yet
        rep = _capture(pid)
        if any(f.kind == "deadlock" for f in rep.findings):
            break
    assert rep is not None
    [d] = [f for f in rep.findings if f.kind == "deadlock"]
    names = {t.name.split(" [")[0] for t in rep.snapshot.threads() if t.id in d.threads
             and t.name}
    assert names == {"posting", "auditing"}
    resources = rep.snapshot.resource_map()
    assert {resources[e.waits_for].kind for e in d.cycle} == {"monitor"}
    assert all(t.startswith("LWP ") for t in d.threads)  # joined to the kernel's threads
    # The launcher's first thread runs no Java code: it waits in pthread_join for the Java
    # main thread. It was reported as a stall of its own (a futex nobody could wake).
    launcher = next(t for t in rep.snapshot.threads() if t.tid == pid)
    assert launcher.waits is not None and launcher.waits.op == "join"
    assert resources[launcher.waits.resource].owners == [
        next(t.id for t in rep.snapshot.threads() if t.name and t.name.startswith("main ["))]
    assert not any(launcher.id in f.threads for f in rep.findings), rep.findings
    # main joins a thread of the cycle (a join names no thread in a JVM dump), and the launcher
    # joins main: no hang of their own beside the deadlock (it was 'HANG (possible): main').
    assert [f.kind for f in rep.findings] == ["deadlock"], rep.findings


def test_jvm_waiting_for_a_child_that_waits_for_the_jvm_to_read_its_output(  # type: ignore[no-untyped-def]
        java_class: Path, start) -> None:
    """Process.waitFor names a Process object, not a pid: the JVM's only child is the one it
    waits for. Before, the wait was one that 'ends from outside' and nothing was found."""
    jvm = start(["java", "-Xmx64m", "-XX:+UseSerialGC", "-cp", str(java_class), "WaitForChild"])
    assert jvm.proc.stdout is not None
    pid = int(jvm.proc.stdout.readline())
    pids = settle(jvm, 3)
    rep = _capture(pid)
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert _pids_in(rep, d.threads) == set(pids)  # the JVM, sh, and head writing the pipe
    names = {t.name.split(" [")[0] for t in rep.snapshot.threads() if t.id in d.threads}
    assert "main" in names
    resources = rep.snapshot.resource_map()
    assert {resources[e.waits_for].kind for e in d.cycle} >= {"process", "pipe"}


def test_jvm_main_waiting_on_a_monitor_a_sleeper_will_notify_gets_its_thread_dump_s_verdict(  # type: ignore[no-untyped-def]
        java_class: Path, start) -> None:
    """main in Object.wait, the thread that will notify it in Thread.sleep: capture (every
    thread of the JVM read, so the process is whole, as jstack's dump is) and `stuck analyze`
    of a thread dump of the same moment say the same: a possible stall naming the sleeper.
    Capture said nothing before (it handed the rules no whole process)."""
    from stuck.analysis import analyze
    from stuck.dumps import load_dump

    jvm = start(["java", "-Xmx64m", "-XX:+UseSerialGC", "-cp", str(java_class),
                 "WaitForSleeper"])
    assert jvm.proc.stdout is not None
    pid = int(jvm.proc.stdout.readline())

    def verdicts(r: Report) -> list[tuple[str, str, list[str]]]:
        names = {t.id: (t.name or t.id).split(" [")[0] for t in r.snapshot.threads()}
        return [(f.kind, f.confidence, sorted(names[t] for t in f.threads)) for f in r.findings]

    expected = [("stall", "possible", ["main"])]
    rep = None
    for _ in range(20):  # the JVM's own threads (compilers, GC) may still be starting
        rep = _capture(pid)
        if verdicts(rep) == expected:
            break
    assert rep is not None and verdicts(rep) == expected, [f.summary for f in rep.findings]
    [stall] = rep.findings
    assert any("slow-loader" in m and "time to pass" in m for m in stall.missing_evidence)
    tool = (["jstack", "-l", str(pid)] if shutil.which("jstack")
            else ["jcmd", str(pid), "Thread.print", "-l"])
    dump = subprocess.run(tool, capture_output=True, text=True, timeout=120).stdout
    loaded = load_dump(dump, name="threads.txt")
    assert verdicts(analyze(loaded.snapshot, loaded.stated, loaded.inferred)) == expected


def test_shipped_example_reproduces_the_seed_002_diagnosis() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "gateway_engine_processes.py"
    run = subprocess.run([sys.executable, str(example), "--capture"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    first = next(line for line in run.stdout.splitlines() if line.startswith("DEADLOCK"))
    assert first.startswith("DEADLOCK (certain)")
    assert "gateway" in first and "engine" in first
    assert run.stdout.count("to be read (full: ") >= 2  # both pipes, both full


def test_a_program_under_stuck_hands_over_its_live_report(start) -> None:  # type: ignore[no-untyped-def]
    plain = start([sys.executable, str(PROGRAMS / "py_lock_abba.py")])
    assert plain.proc.stdout is not None
    plain_pid = int(plain.proc.stdout.readline())
    settle(plain, 1)
    outside = _capture(plain_pid)
    # From outside alone a Python lock is a futex without an owner: never a certain deadlock.
    assert not any(f.kind == "deadlock" and f.confidence == "certain" for f in outside.findings)

    live = start([sys.executable, "-m", "stuck", "run", str(PROGRAMS / "py_lock_abba.py")])
    assert live.proc.stdout is not None
    pid = int(live.proc.stdout.readline())
    rep = None
    for _ in range(20):  # the runtime reports the cycle as the second thread blocks
        rep = _capture(pid)
        if rep.findings:
            break
    assert rep is not None
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    threads = {t.id: t for t in rep.snapshot.threads()}
    assert {threads[t].name.split(" [")[0] for t in d.threads} == {"posting", "auditing"}
    assert all(t.startswith("LWP ") for t in d.threads)  # joined to the kernel's threads
    labels = {rep.snapshot.resource_map()[e.waits_for].label for e in d.cycle}
    assert labels == {"ledger", "audit"}
    assert not Path(f"/tmp/stuck-report-{pid}.json").exists()  # taken, not left behind


def test_loopback_tcp_pair_is_linked_through_proc_net_tcp(start) -> None:  # type: ignore[no-untyped-def]
    prog = start([sys.executable, str(PROGRAMS / "py_tcp_pair.py")])
    server, client = settle(prog, 2)
    rep = _capture(server)
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert _pids_in(rep, d.threads) == {server, client}
    resources = rep.snapshot.resource_map()
    labels = [resources[e.waits_for].label for e in d.cycle]
    assert all("tcp 127.0.0.1:" in label and "to be read at its peer" in label
               for label in labels)


def test_python_lock_inversion_read_from_the_source_in_the_programs_own_directory(  # type: ignore[no-untyped-def]
        start, tmp_path: Path) -> None:
    from stuck.capture import tools

    if tools.find("py-spy") is None and tools.find("pystack") is None:
        pytest.skip("neither py-spy nor pystack is installed (CI: the [test] extras)")
    # Started by a relative file name from its own directory, not stuck's; two copies of one
    # module, whose module-level locks are two objects each.
    (tmp_path / "ledger_abba.py").write_text((PROGRAMS / "py_lock_abba.py").read_text())
    copies = [start([sys.executable, "ledger_abba.py"], cwd=tmp_path) for _ in range(2)]
    pids = []
    for c in copies:
        assert c.proc.stdout is not None
        pids.append(int(c.proc.stdout.readline()))
        settle(c, 1)
    rep = _capture(*pids)
    deadlocks = [f for f in rep.findings if f.kind == "deadlock"]
    assert len(deadlocks) == 2, [f.summary for f in rep.findings]
    threads = rep.snapshot.thread_map()
    resources = rep.snapshot.resource_map()
    for d in deadlocks:
        # Read from the source, not proven: the owners are inferred.
        assert d.confidence in ("possible", "probable")
        assert {threads[t].name.split(" [")[0] for t in d.threads} == {"posting", "auditing"}
        assert len(_pids_in(rep, d.threads)) == 1  # each process's cycle is its own
        assert {resources[e.waits_for].label.split()[0] for e in d.cycle} == {"ledger", "audit"}
    assert _pids_in(rep, deadlocks[0].threads) != _pids_in(rep, deadlocks[1].threads)
    # The main thread's futex wait is a join, as its frames say (what `stuck analyze` reads
    # from the same stacks): behind the cycle, not a stall of its own.
    for main in (t for t in rep.snapshot.threads() if t.name.startswith("MainThread")):
        assert main.waits is not None and resources[main.waits.resource].kind == "thread"
    assert [f.kind for f in rep.findings] == ["deadlock", "deadlock"], \
        [f.summary for f in rep.findings]
    for f in rep.findings:
        assert "are none" not in f.explanation and "alone" not in f.explanation, f.explanation
