"""The checker fed by the real tracked primitives of ``stuck.install()``: the runtime calls the
hooks as documented, and the rules hold for real threading objects."""

from __future__ import annotations

import threading

import pytest

import stuck.runtime
from stuck.runtime import hooks, lockorder
from stuck.runtime.lockorder import LockOrderChecker, _entries

from .lo_fakes import in_thread


def edges(c: LockOrderChecker) -> set[tuple[str, str]]:
    return {(c._nodes[e.src].cls.name or "?", c._nodes[e.dst].cls.name or "?")
            for out in c._out.values() for e in out.values()}


class Replica:
    def __init__(self) -> None:
        self.raft_mu = threading.Lock()
        self.coalesced_mu = threading.Lock()

    def report_unreachable(self) -> None:
        with self.raft_mu:  # noqa: SIM117 (one line per lock, as in the seed)
            with self.coalesced_mu:
                pass

    def send_heartbeats(self) -> None:
        with self.coalesced_mu:  # noqa: SIM117
            with self.raft_mu:
                pass


@pytest.mark.parametrize("threads", [1, 2])
def test_seed_with_real_locks(checker: LockOrderChecker, threads: int) -> None:
    r = Replica()
    if threads == 1:
        r.report_unreachable()
        r.send_heartbeats()
    else:
        in_thread(r.report_unreachable, "W-1")
        in_thread(r.send_heartbeats, "W-2")
    [f] = checker.findings()
    assert set(f.resources) == {"Replica.raft_mu", "Replica.coalesced_mu"}
    assert f.confidence == ("possible" if threads == 1 else "probable")
    witnesses = [e["witness"] for e in f.details["edges"]]  # type: ignore[union-attr]
    assert {w["taken_at"][0]["function"] for w in witnesses} == {
        "Replica.report_unreachable", "Replica.send_heartbeats"}
    assert all(w["taken_at"][0]["line"] == w["held_at"][0]["line"] + 1 for w in witnesses)


def test_rules_with_real_primitives(checker: LockOrderChecker) -> None:
    a = threading.Lock(name="A")
    b = threading.Lock(name="B")
    r = threading.RLock(name="R")
    cond = threading.Condition(name="cond")
    signal = threading.Lock(name="signal")

    with r, a, r:  # RLock re-entry under A: no edge A -> R
        pass
    with a:  # try-acquire: no edge A -> B
        assert b.acquire(blocking=False)
        b.release()
    with b:  # timed: the edge B -> A is timed
        assert a.acquire(timeout=5)
        a.release()
    signal.acquire()
    in_thread(signal.release, "releaser")  # released by another thread: a signal
    with signal, a:
        pass

    woke = threading.Event()

    def waiter() -> None:
        with cond:
            cond.wait(5)
            woke.set()
        with b:  # cond was released by wait and by the with: no edge cond -> B
            pass

    t = threading.Thread(target=waiter, name="waiter", daemon=True)
    t.start()
    while not woke.is_set():
        with cond:
            cond.notify_all()
        woke.wait(0.01)
    t.join(5)

    assert edges(checker) == {("R", "A"), ("B", "A")}
    [timed] = [e for out in checker._out.values() for e in out.values() if e.timed]
    assert checker._nodes[timed.src].cls.name == "B"
    assert any("signal" in s for s in checker.signal_classes())
    assert checker.findings() == []


def test_enable_disable_and_findings(checker: LockOrderChecker) -> None:
    hooks.remove_observer(checker)
    try:
        c = lockorder.enable()
        assert lockorder.enabled()
        lockorder.reset()
        r = Replica()
        r.report_unreachable()
        r.send_heartbeats()
        assert len(lockorder.findings()) == 1
        lockorder.disable()
        assert not lockorder.enabled()
        Replica().send_heartbeats()
        assert len(lockorder.findings()) == 1  # kept after disable
        assert c is lockorder.checker()
    finally:
        lockorder.disable()
        lockorder.reset()


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
def test_semaphore_used_as_a_mutex_is_in_the_graph(checker: LockOrderChecker,
                                                    kind: str) -> None:
    sem = getattr(threading, kind)(1, name="S")
    lock = threading.Lock(name="L")
    with sem, lock:
        pass
    assert sem.acquire(timeout=5)  # timed: an edge of its own kind, still into the graph
    with lock:
        pass
    sem.release()
    with lock:
        assert sem.acquire(blocking=True)
        sem.release()
    [f] = checker.findings()
    assert set(f.resources) == {"S", "L"}
    assert edges(checker) == {("S", "L"), ("L", "S")}
    assert _entries(checker._tls.stack) == []  # every acquire was matched by its release


def test_semaphore_released_by_another_thread_is_a_signal(checker: LockOrderChecker) -> None:
    ready = threading.Semaphore(0, name="ready")
    lock = threading.Lock(name="L")

    def producer() -> None:
        with lock:
            ready.release()  # a permit it never took: the semaphore signals

    with lock:
        pass
    in_thread(producer, "producer")
    with lock:
        pass
    assert ready.acquire(timeout=5)
    with lock:  # holding `ready`'s permit while taking L: no edge, ready is a signal
        pass
    ready.release()  # now released by the thread that took it
    assert any("ready" in s for s in checker.signal_classes())
    assert ("ready", "L") not in edges(checker)
    assert checker.findings() == []


def test_dropped_semaphore_taken_twice_is_forgotten(checker: LockOrderChecker) -> None:
    def leave_acquired() -> None:
        sem = threading.Semaphore(2, name="S")
        assert sem.acquire() and sem.acquire()  # two permits, then dropped unreleased

    leave_acquired()
    a = threading.Lock(name="A")
    b = threading.Lock(name="B")
    with a, b:
        pass
    assert edges(checker) == {("A", "B")}  # nothing ordered after the dropped semaphore
    assert [e[0] for e in _entries(checker._tls.stack)] == []


def test_dropped_lock_is_not_shown_as_held(checker: LockOrderChecker) -> None:
    # The checker's held stack keeps a lock the program dropped alive; reports count those
    # references out, as the checker does.
    kept = threading.Lock(name="kept")
    kept.acquire()

    def leave_acquired() -> None:
        lost = threading.Lock(name="lost")
        lost.acquire()

    leave_acquired()
    try:
        snap = stuck.runtime.snapshot().snapshot
        labels = {r.label for r in snap.resources}
        [me] = [t for p in snap.processes for t in p.threads
                if t.name == threading.current_thread().name]
        assert any("kept" in (label or "") for label in labels)
        assert not any("lost" in (label or "") for label in labels)
        # only what this test took (a semaphore another test left acquired may still be alive)
        by_id = {r.id: r.label or "" for r in snap.resources}
        mine = [by_id.get(h, "") for h in me.holds if "kept" in by_id.get(h, "")
                or "lost" in by_id.get(h, "")]
        assert len(mine) == 1 and "kept" in mine[0]
        assert checker.references(kept) == 1
    finally:
        kept.release()
