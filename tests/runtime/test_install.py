"""install()/uninstall() swap the originals and back; stuck survives fork."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures._base as futures_base
import concurrent.futures.thread as futures_thread
import io
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import stuck
import stuck.runtime
from stuck.runtime import patch

PATCHED = [
    (threading, "Lock"), (threading, "RLock"), (threading, "Condition"),
    (threading, "Semaphore"), (threading, "BoundedSemaphore"), (threading, "Event"),
    (threading, "Barrier"), (threading.Thread, "join"), (queue, "Queue"),
    (queue, "LifoQueue"), (queue, "PriorityQueue"), (queue, "SimpleQueue"),
    (futures_base.Future, "result"), (futures_base.Future, "exception"),
    (concurrent.futures, "wait"), (futures_thread.ThreadPoolExecutor, "submit"),
    (sys, "settrace"), (sys, "setprofile"), (threading, "settrace"), (threading, "setprofile"),
]


def test_uninstall_restores_every_original() -> None:
    assert patch.active() is None
    before = [getattr(owner, name) for owner, name in PATCHED]
    stuck.install(policy="raise", report_stream=io.StringIO(), signal=None)
    try:
        during = [getattr(owner, name) for owner, name in PATCHED]
        assert all(a is not b for a, b in zip(before, during, strict=False))
        tracked = threading.Lock()
    finally:
        stuck.uninstall()
    assert [getattr(owner, name) for owner, name in PATCHED] == before
    assert threading.Lock is not type(tracked)
    with tracked:  # an object made while installed keeps working after uninstall
        assert tracked.locked()


def test_install_twice_is_refused_and_unknown_policy_explained() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        stuck.install(policy="explode", signal=None)  # type: ignore[arg-type]
    assert patch.active() is None
    stuck.install(signal=None)
    try:
        with pytest.raises(patch.PatchError, match="already installed"):
            stuck.install(signal=None)
    finally:
        stuck.uninstall()


def test_snapshot_shows_holders_and_waiters(live: io.StringIO) -> None:
    cache_mu = threading.Lock()
    started = threading.Event()
    with cache_mu:
        t = threading.Thread(target=lambda: (started.set(), cache_mu.acquire(),
                                             cache_mu.release()), name="cache-filler",
                             daemon=True)
        t.start()
        started.wait(5)
        deadline = time.monotonic() + 5
        while stuck.runtime.registry.waits.get(t.ident or 0) is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        report = stuck.snapshot()
    t.join(5)
    snap = report.snapshot
    me = snap.thread(f"0x{threading.get_ident():x}")
    filler = next(th for th in snap.threads() if th.name == "cache-filler")
    assert me is not None and filler.waits is not None
    res = snap.resource(filler.waits.resource)
    assert res is not None and res.label == "cache_mu" and res.kind == "mutex"
    assert res.id in me.holds and res.owners == [me.id]
    assert filler.waits.at is not None and filler.waits.at.file == __file__
    assert report.findings == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_can_use_tracked_primitives(live: io.StringIO) -> None:
    lock = threading.Lock()
    q: queue.Queue[int] = queue.Queue(maxsize=1)
    with lock:
        pid = os.fork()
        if pid == 0:  # the child: the fork happened while this thread held ``lock``
            code = 1
            try:
                lock.release()
                with lock:
                    q.put(1)
                    ok = q.get() == 1 and stuck.snapshot().snapshot.processes[0].pid == \
                        os.getpid()
                code = 0 if ok else 1
            finally:
                sys.stdout.flush()
                os._exit(code)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0


def test_snapshot_leaves_out_stucks_own_threads(live: io.StringIO) -> None:
    # install() started the watchdog: it runs, but it is not the program's thread.
    deadline = time.monotonic() + 5
    while not stuck.runtime.registry.own_idents & set(sys._current_frames()):
        assert time.monotonic() < deadline, "the watchdog thread did not start"
        time.sleep(0.01)
    own = stuck.runtime.registry.own_idents & set(sys._current_frames())
    snap = stuck.runtime.snapshot().snapshot
    ids = {t.id for p in snap.processes for t in p.threads}
    assert f"0x{threading.get_ident():x}" in ids
    assert not {f"0x{ident:x}" for ident in own} & ids
    assert not own & {t.ident for t in threading.enumerate()}


def test_names_bound_before_install_are_tracked_and_restored(tmp_path: Any) -> None:
    import types

    from stuck.runtime import prebound, primitives, tracked

    early = types.ModuleType("early_app")
    exec("from threading import Lock, RLock, Condition, Event\n"
         "from queue import Queue\n"
         "made_before = Event()\n"
         "class Gate(Condition):  # derived before install: keeps the original base\n"
         "    pass\n", early.__dict__)
    sys.modules["early_app"] = early
    originals = dict(vars(early))
    try:
        stuck.install(policy="raise", report_stream=io.StringIO(), signal=None)
        try:
            assert type(early.RLock()) is primitives.RLock
            assert type(early.Lock()) is primitives.Lock
            assert sorted(prebound.rebound) == ["early_app.Condition", "early_app.Event",
                                                "early_app.Lock", "early_app.Queue",
                                                "early_app.RLock"]
            # What the module makes from now on is tracked ...
            for made in (early.Condition(), early.Event(), early.Queue()):
                assert tracked.as_tracked(made) is not None, made
            assert isinstance(early.Event(), primitives.Event)
            # ... and what it made before is still what its names say
            assert isinstance(early.made_before, early.Event)
            assert issubclass(early.Gate, early.Condition)
            assert isinstance(early.Gate(), early.Condition)
            # A class derived before install keeps the original base: untracked, and said
            assert tracked.as_tracked(early.Gate()) is None
            assert [e.split(" ")[0] for e in prebound.escaped] == ["early_app.Gate"]
        finally:
            stuck.uninstall()
        assert all(vars(early)[k] is v for k, v in originals.items())
        assert prebound.rebound == [] and prebound.escaped == []
    finally:
        del sys.modules["early_app"]


def test_a_stall_on_an_event_class_bound_before_install_is_found(tmp_path: Path) -> None:
    # A scheduler module imported before install (a project's conftest does it under
    # pytest --stuck) bound Event from threading; a thread waits on an Event it makes later
    # that nobody sets. The wait is tracked, so the stall is found.
    (tmp_path / "early_sched.py").write_text(textwrap.dedent("""
        from threading import Event, Thread

        def start_waiter():
            ready = Event()
            t = Thread(target=ready.wait, name="waiter", daemon=True)
            t.start()
            return t
    """))
    program = tmp_path / "prog.py"
    program.write_text(textwrap.dedent("""
        import early_sched  # imported before install
        import stuck
        stuck.install(policy="abort", signal=None)
        waiter = early_sched.start_waiter()
        waiter.join()  # nobody sets the event
    """))
    try:
        proc = subprocess.run([sys.executable, str(program)], capture_output=True, text=True,
                              timeout=30, cwd=str(tmp_path),
                              env={**os.environ, "PYTHONPATH": str(tmp_path)})
    except subprocess.TimeoutExpired:
        pytest.fail("the stall was not found: the program waited on")
    assert proc.returncode == 86, proc.stderr[-2000:]
    assert "STALL" in proc.stderr and "waiter" in proc.stderr, proc.stderr[-2000:]
