"""How the tracked primitives reach their observers: the dispatch chosen when observers change
(none, one bound directly, several fanned out), the ``took`` shortcut for an acquire that did not
wait, and the checker's cached path giving the same results as its full path."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

import stuck.runtime
from stuck.runtime import hooks, primitives
from stuck.runtime.hooks import AcquireMode, LockClass
from stuck.runtime.lockorder import LockOrderChecker, _entries


@pytest.fixture
def live() -> Iterator[None]:
    if stuck.runtime.installed():
        pytest.skip("stuck is already installed in this process")
    stuck.runtime.install(policy="raise", signal=None, stalls=False,
                          report_stream=io.StringIO())
    try:
        yield
    finally:
        stuck.runtime.uninstall()


class Recorder:
    """Records the calls it gets, as (hook, lock name, mode or by_owner)."""

    def __init__(self, with_took: bool) -> None:
        self.calls: list[tuple[str, str | None, object]] = []
        if with_took:
            self.took = self._took

    def before_acquire(self, lock: object, cls: LockClass, mode: AcquireMode,
                       frame: FrameType | None) -> None:
        self.calls.append(("before", cls.name, mode))

    def acquired(self, lock: object, cls: LockClass, mode: AcquireMode,
                 frame: FrameType | None) -> None:
        self.calls.append(("acquired", cls.name, mode))

    def _took(self, lock: object, cls: LockClass, frame: FrameType | None) -> None:
        # the frame that called the acquire: the program's, not stuck's
        assert frame is not None and frame.f_code.co_filename == __file__
        self.calls.append(("took", cls.name, None))

    def released(self, lock: object, cls: LockClass, by_owner: bool) -> None:
        self.calls.append(("released", cls.name, by_owner))


def test_no_observer_means_no_hook() -> None:
    assert not hooks.observers
    assert (primitives._before, primitives._acquired, primitives._took,
            primitives._released) == (None, None, None, None)


def test_one_observer_is_called_directly(live: None) -> None:
    rec = Recorder(with_took=True)
    hooks.add_observer(rec)
    try:
        assert primitives._took == rec.took and primitives._released == rec.released
        lock = threading.Lock(name="L")
        with lock:
            pass
        assert lock.acquire(timeout=1)
        lock.release()
        assert lock.acquire(blocking=False)
        lock.release()
    finally:
        hooks.remove_observer(rec)
    assert primitives._took is None
    assert rec.calls == [
        ("took", "L", None), ("released", "L", True),
        ("before", "L", "timed"), ("acquired", "L", "timed"), ("released", "L", True),
        ("before", "L", "try"), ("acquired", "L", "try"), ("released", "L", True),
    ]


def test_observer_without_took_gets_the_pair(live: None) -> None:
    first, second = Recorder(with_took=False), Recorder(with_took=True)
    hooks.add_observer(first)
    try:
        lock = threading.RLock(name="R")
        with lock, lock:  # the re-entry is not reported
            pass
        hooks.add_observer(second)
        assert primitives._took is hooks.took  # two observers: fanned out
        with lock:
            pass
    finally:
        hooks.remove_observer(first)
        hooks.remove_observer(second)
    assert first.calls == [("before", "R", "blocking"), ("acquired", "R", "blocking"),
                           ("released", "R", True)] * 2
    assert second.calls == [("took", "R", None), ("released", "R", True)]


class Failing:
    def before_acquire(self, *args: Any) -> None:
        pass

    def acquired(self, *args: Any) -> None:
        pass

    def took(self, *args: Any) -> None:
        raise RuntimeError("observer bug")

    def released(self, *args: Any) -> None:
        pass


def test_failing_observer_is_removed_and_the_lock_still_works(
        live: None, capsys: pytest.CaptureFixture[str]) -> None:
    bad = Failing()
    hooks.add_observer(bad)
    lock = threading.Lock()
    try:
        with lock:
            assert lock.locked()
        assert not lock.locked()
        assert bad not in hooks.observers and primitives._took is None
    finally:
        hooks.remove_observer(bad)
    assert "observer bug" in capsys.readouterr().err


def _pattern(c: LockOrderChecker, a: Any, b: Any, rounds: int) -> None:
    for _ in range(rounds):
        with a, b:
            pass


def test_cached_path_finds_what_the_full_path_finds(live: None) -> None:
    # The same program through took() (cache hits after the first round) and through
    # before_acquire()+acquired() (a checker without the shortcut) gives the same graph.
    results = []
    for use_took in (True, False):
        c = LockOrderChecker()
        if not use_took:
            c.took = None  # type: ignore[method-assign, assignment]
        hooks.add_observer(c)
        try:
            a = threading.Lock(name="A")
            b = threading.Lock(name="B")
            _pattern(c, a, b, 3)
            t = threading.Thread(target=_pattern, args=(c, b, a, 3), daemon=True)
            t.start()
            t.join(10)
        finally:
            hooks.remove_observer(c)
        [f] = c.findings()
        results.append((f.kind, f.confidence, sorted(f.resources), c.edge_count()))
        if use_took:
            assert any(fast for _, fast in c._threads.values()), \
                "repeated patterns should be served from the cache"
    assert results[0] == results[1]
    assert results[0][1] == "probable" and results[0][3] == 2


def test_held_site_of_a_lock_taken_by_a_returned_helper(live: None) -> None:
    c = LockOrderChecker()
    hooks.add_observer(c)
    a = threading.Lock(name="A")
    b = threading.Lock(name="B")

    def take_a() -> None:
        a.acquire()

    def a_then_b() -> None:
        take_a()
        with b:
            pass
        a.release()

    def b_then_a() -> None:
        with b, a:
            pass

    try:
        a_then_b()
        b_then_a()
    finally:
        hooks.remove_observer(c)
    [f] = c.findings()
    witnesses = [e["witness"] for e in f.details["edges"]]  # type: ignore[union-attr, attr-defined]
    [ab] = [w for w in witnesses if w["held_at"][0]["function"].endswith("take_a")]
    # the helper has returned: its callers are those of the acquire being checked
    assert ab["held_at"][1]["function"].endswith("a_then_b")
    [ba] = [w for w in witnesses if w is not ab]
    assert ba["held_at"][0]["function"].endswith("b_then_a")
    assert ba["held_at"][1]["function"] == "test_held_site_of_a_lock_taken_by_a_returned_helper"


def test_condition_wait_reports_release_and_the_real_reacquire(live: None) -> None:
    rec = Recorder(with_took=True)
    hooks.add_observer(rec)
    try:
        cond = threading.Condition(threading.RLock(name="C"))  # (a Lock adds a try-acquire)
        with cond:
            rec.calls.clear()
            assert not cond.wait(0.01)  # nobody notifies: times out, then re-acquires
            assert rec.calls == [("released", "C", True), ("before", "C", "blocking"),
                                 ("acquired", "C", "blocking")]
    finally:
        hooks.remove_observer(rec)
    assert rec.calls[-1] == ("released", "C", True)


def _nest(outer: Any, inner: Any) -> None:
    with outer, inner:
        pass


def test_inline_path_pushes_without_calling_the_checker(live: None) -> None:
    c = LockOrderChecker()
    hooks.add_observer(c)
    calls: list[str] = []
    took, released = c.took, c.released

    def counting_took(lock: object, cls: LockClass, frame: FrameType | None) -> None:
        calls.append("took")
        took(lock, cls, frame)

    def counting_released(lock: object, cls: LockClass, by_owner: bool) -> None:
        calls.append("released")
        released(lock, cls, by_owner)

    try:
        assert primitives._inline is c._threads  # the sole checker offers its state
        a = threading.Lock(name="A")
        b = threading.RLock(name="B")
        _nest(a, b)  # learns the pattern through the hooks
        primitives._took, primitives._released = counting_took, counting_released
        for _ in range(3):
            _nest(a, b)
        assert calls == []  # the repeated pattern never reached the checker's hooks
        assert _entries(c._tls.stack) == []  # ... yet every push was popped
        with a:
            held_inside = [e[0] for e in _entries(c._tls.stack)]
        assert held_inside == [a]  # the checker sees what the inline path pushed
        c2 = LockOrderChecker()
        hooks.add_observer(c2)
        try:
            assert primitives._inline is None  # two observers: hooks for both
        finally:
            hooks.remove_observer(c2)
    finally:
        hooks.remove_observer(c)
    assert c.findings() == []


def test_inline_path_keeps_the_rules(live: None) -> None:
    """An inversion after a cached pattern, an out-of-order release and a release by another
    thread still reach the checker."""
    c = LockOrderChecker()
    hooks.add_observer(c)
    try:
        a = threading.Lock(name="A")
        b = threading.Lock(name="B")
        for _ in range(3):
            _nest(a, b)
        a.acquire()
        b.acquire()
        a.release()  # out of order: the checker removes a from under b
        assert [e[0] for e in _entries(c._tls.stack)] == [b]
        b.release()
        assert _entries(c._tls.stack) == []
        _nest(b, a)  # the inversion is a new pattern: checked
        [f] = c.findings()
        assert sorted(f.resources) == ["A", "B"]
        signal = threading.Lock(name="S")
        for _ in range(2):
            _nest(signal, a)  # cached, pushed inline
        signal.acquire()
        t = threading.Thread(target=signal.release)  # released by another thread
        t.start()
        t.join(10)
        assert not signal.locked()
        assert c.stats()["signal_classes"] == 1  # S is now a signal, not a mutex
    finally:
        hooks.remove_observer(c)


def test_a_thread_entry_goes_when_the_thread_ends(live: None) -> None:
    c = LockOrderChecker()
    hooks.add_observer(c)
    try:
        a = threading.Lock(name="A")
        b = threading.Lock(name="B")
        idents: list[int] = []
        seen_while_running: list[bool] = []

        def work() -> None:
            idents.append(threading.get_ident())
            for _ in range(3):
                _nest(a, b)
            seen_while_running.append(threading.get_ident() in c._threads)

        t = threading.Thread(target=work)
        t.start()
        t.join(10)
        assert seen_while_running == [True]
        assert idents and idents[0] not in c._threads  # a reused ident finds no stack
    finally:
        hooks.remove_observer(c)
