"""What processes share besides pipes and sockets: file locks (flock, OFD locks; /proc/locks)
and futexes in shared memory (every multiprocessing lock)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.capture.conftest import PROGRAMS, settle

from stuck.capture import collect, report, shared, syscalls
from stuck.model import Report


def _pids_in(rep: Report, threads: list[str]) -> set[int | None]:
    owner = {t.id: p.pid for p in rep.snapshot.processes for t in p.threads}
    return {owner[t] for t in threads}


def _in_lock_call(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            call = syscalls.parse(f.read(), os.uname().machine)
    except OSError:
        return False
    return call is not None and call.meaning == "file-lock"


def _file_lock_pair(c_program, start, mode: str, tmp_path: Path) -> Report:  # type: ignore[no-untyped-def]
    prog = start([str(c_program("file_lock_pair")), mode, str(tmp_path)])
    pids = settle(prog, 2)
    waiting = 1 if mode == "sleeper" else 2
    deadline = time.monotonic() + 20
    while sum(map(_in_lock_call, pids)) < waiting:  # settle() also accepts the short sleeps
        assert time.monotonic() < deadline, "the processes did not reach their lock calls"
        time.sleep(0.05)
    # The other process is found through the lock: the parent's holder is its child; the
    # sleeping parent waits for nothing, so there the child is captured and the parent found.
    [child] = [p for p in pids if p != prog.pid]
    rep = report(collect([child if mode == "sleeper" else prog.pid]))
    assert {p.pid for p in rep.snapshot.processes} == set(pids)
    return rep


def test_two_processes_each_waiting_for_the_others_flock_deadlock(c_program, start,  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path) -> None:
    rep = _file_lock_pair(c_program, start, "flock", tmp_path)
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert len(_pids_in(rep, d.threads)) == 2
    resources = rep.snapshot.resource_map()
    labels = sorted(resources[e.waits_for].label for e in d.cycle)
    assert labels[0].startswith(f"the flock on {tmp_path}/a.lock (held by pid ")
    assert labels[1].startswith(f"the flock on {tmp_path}/b.lock (held by pid ")


def test_open_file_description_locks_show_no_pid_and_are_found_through_fdinfo(  # type: ignore[no-untyped-def]
        c_program, start, tmp_path: Path) -> None:
    rep = _file_lock_pair(c_program, start, "ofd", tmp_path)
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert all("OFD (fcntl) lock" in rep.snapshot.resource_map()[e.waits_for].label
               for e in d.cycle)


def test_a_lock_held_by_a_process_that_sleeps_is_no_finding(c_program, start,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    rep = _file_lock_pair(c_program, start, "sleeper", tmp_path)
    assert rep.findings == []
    [waiter] = [t for p in rep.snapshot.processes for t in p.threads
                if "waits for the flock" in t.detail]
    assert waiter.state == "io"  # its holder can still run and unlock


def test_lock_table_lines_are_read_without_trusting_them() -> None:
    table = ("1: FLOCK  ADVISORY  WRITE 26875 fe:00:2475219 0 EOF\n"
             "1: -> FLOCK  ADVISORY  WRITE 26831 fe:00:2475219 0 EOF\n"
             "2: OFDLCK ADVISORY  WRITE -1 fe:00:2475336 0 EOF\n"
             "2: -> OFDLCK ADVISORY  WRITE -1 fe:00:2475336 0 EOF\n"
             "x: -> junk\n3: POSIX\n")
    [b] = shared.blockers(table, "fe:00:2475219", 26831)
    assert (b.kind, b.pid, b.blocked) == ("FLOCK", 26875, False)
    assert shared.blockers(table, "fe:00:2475219", 26875) == []  # the holder waits for nothing
    [o] = shared.blockers(table, "fe:00:2475336", 4242)  # OFD requests name no pid
    assert o.kind == "OFDLCK"
    assert shared.holds(["1: OFDLCK ADVISORY  WRITE -1 fe:00:2475336 0 EOF"], [o])
    assert not shared.holds(["1: FLOCK  ADVISORY  WRITE 26831 fe:00:2475219 0 EOF"], [o])


def test_lock_calls_that_wait_are_told_from_those_that_do_not() -> None:
    def meaning(text: str) -> str:
        call = syscalls.parse(text, "x86_64")
        assert call is not None
        return call.meaning

    assert meaning("73 0x4 0x2 0x0 0x0 0x0 0x0 0x0 0x0") == "file-lock"  # flock LOCK_EX
    assert meaning("73 0x4 0x6 0x0 0x0 0x0 0x0 0x0 0x0") == "other"  # LOCK_EX|LOCK_NB
    assert meaning("72 0x3 0x26 0x0 0x0 0x0 0x0 0x0 0x0") == "file-lock"  # F_OFD_SETLKW
    assert meaning("72 0x3 0x7 0x0 0x0 0x0 0x0 0x0 0x0") == "file-lock"  # F_SETLKW
    assert meaning("72 0x3 0x1 0x0 0x0 0x0 0x0 0x0 0x0") == "other"  # F_GETFD
    private = syscalls.parse("202 0x55d0 0x189 0x0 0x0 0x0 0xffffffff 0x0 0x0", "x86_64")
    shared_wait = syscalls.parse("202 0x7f00 0x109 0x0 0x0 0x0 0xffffffff 0x0 0x0", "x86_64")
    assert private is not None and not private.futex_shared()
    assert shared_wait is not None and shared_wait.futex_shared()


def test_a_worker_waiting_for_a_multiprocessing_lock_its_sleeping_parent_holds(start) -> None:  # type: ignore[no-untyped-def]
    """The worker's only thread waits on a futex in shared memory: the parent, which maps it,
    can still release it. Before, 'no thread that could wake it is able to run' (a stall)."""
    prog = start([sys.executable, str(PROGRAMS / "py_mp_shared_lock.py"), "sleep"])
    parent, worker = settle(prog, 2)
    rep = report(collect([worker]))  # the parent is found through the shared memory
    assert {p.pid for p in rep.snapshot.processes} == {parent, worker}
    assert rep.findings == []


def test_a_multiprocessing_lock_nobody_left_able_to_run_maps_is_a_certain_stall(start) -> None:  # type: ignore[no-untyped-def]
    prog = start([sys.executable, str(PROGRAMS / "py_mp_shared_lock.py"), "join"])
    parent, worker = settle(prog, 2)
    rep = report(collect([worker]))
    [f] = rep.findings
    assert f.kind == "stall"
    unread = [m for m in f.missing_evidence if "memory maps of pid" in m]
    # Certain when every process's maps could be read (root); a sandbox may hide some (pid 1):
    # any of them could map the semaphore, so then it is probable and says which.
    assert f.confidence == ("probable" if unread else "certain")
    assert _pids_in(rep, f.threads) == {worker}
    assert _pids_in(rep, f.blocked_behind) == {parent}
    [rid] = f.resources
    assert "of shared /dev/shm/" in rep.snapshot.resource_map()[rid].label
