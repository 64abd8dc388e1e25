"""Lock order without noise, with the real tracked primitives: a lock's class is refined by the
name it is bound to and the concrete class of its owner, and two locks of one class nested in
one consistent order are not a finding. Each program here has the shape of real code that used
to give a false same-class finding (CPython's test_logging, APScheduler's lock factory,
fasteners' locks made in a loop), and each test also checks that the order *is* checked: the
opposite order is still found."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import logging.handlers
import threading
from collections.abc import Callable
from typing import Any

from stuck.report.lockorder import render
from stuck.runtime.lockorder import LockOrderChecker

from .lo_fakes import in_thread


def labels(c: LockOrderChecker) -> set[tuple[str, str]]:
    return {(c._nodes[e.src].cls.label(), c._nodes[e.dst].cls.label())
            for out in c._out.values() for e in out.values()}


# -- CPython's test_logging: a MemoryHandler flushes into its target under its own lock ---------


def test_memory_handler_nesting_its_targets_lock_is_not_a_finding(
        checker: LockOrderChecker) -> None:
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    inner = logging.handlers.MemoryHandler(2, logging.WARNING, target)
    outer = logging.handlers.MemoryHandler(2, logging.WARNING, inner)  # a chain of buffers
    logger = logging.getLogger("stuck.tests.memory_handler")
    logger.propagate = False
    logger.addHandler(outer)
    try:
        def log_some() -> None:
            for i in range(6):
                logger.warning("record %d", i)
            outer.flush()

        log_some()
        in_thread(log_some, "logger-2")
    finally:
        logger.removeHandler(outer)
        outer.close()
        inner.close()
    assert "record 5" in stream.getvalue()
    assert checker.findings() == []
    # checked, not ignored: the buffer's lock is ordered before its target's
    assert ("MemoryHandler.lock", "StreamHandler.lock") in labels(checker)
    assert checker._instances  # the two MemoryHandler locks were ordered as instances


def test_memory_handler_locks_taken_both_ways_are_still_found(
        checker: LockOrderChecker) -> None:
    first = logging.handlers.MemoryHandler(10)
    second = logging.handlers.MemoryHandler(10)
    with first.lock, second.lock:
        pass
    assert checker.findings() == []
    in_thread(lambda: [None for _ in [second.lock.acquire(), first.lock.acquire(),
                                      first.lock.release(), second.lock.release()]], "other")
    [f] = checker.findings()
    assert f.details["variant"] == "same-class"
    assert f.resources == ["MemoryHandler.lock"]
    assert f.confidence == "probable"


# -- locks made on one line ----------------------------------------------------------------


def test_locks_made_on_one_line_are_two_classes_named_by_their_names(
        checker: LockOrderChecker) -> None:
    a = threading.Lock(); b = threading.Lock()  # noqa: E702 (the shape under test)

    def a_then_b() -> None:
        with a, b:
            pass

    a_then_b()
    in_thread(a_then_b, "again")
    assert checker.findings() == []
    assert labels(checker) == {("a", "b")}

    def b_then_a() -> None:
        with b, a:
            pass

    in_thread(b_then_a, "reverse")
    [f] = checker.findings()
    assert f.details["variant"] == "deadlock"
    assert set(f.resources) == {"a", "b"}  # not "a" twice
    text = render([f])
    assert "`a` -> `b`" in text or "`b` -> `a`" in text


# -- APScheduler 3.x: one factory makes every lock of the scheduler -------------------------


class Scheduler:
    """APScheduler's BaseScheduler shape: three unrelated locks, all made by ``_create_lock``."""

    def __init__(self) -> None:
        self._executors_lock = self._create_lock()
        self._jobstores_lock = self._create_lock()
        self._listeners_lock = self._create_lock()

    def _create_lock(self) -> Any:
        return threading.RLock()

    def add_job(self) -> None:
        with self._jobstores_lock, self._executors_lock:
            pass

    def dispatch(self) -> None:
        with self._listeners_lock:
            pass


class BlockingScheduler(Scheduler):
    pass


def test_locks_from_one_factory_are_classes_by_the_name_they_are_bound_to(
        checker: LockOrderChecker) -> None:
    s = BlockingScheduler()
    s.add_job()
    in_thread(s.add_job, "scheduler")
    s.dispatch()
    assert checker.findings() == []
    assert labels(checker) == {("BlockingScheduler._jobstores_lock",
                                "BlockingScheduler._executors_lock")}

    def reverse() -> None:
        with s._executors_lock, s._jobstores_lock:
            pass

    in_thread(reverse, "reverse")
    [f] = checker.findings()
    assert f.details["variant"] == "deadlock"
    assert set(f.resources) == {"BlockingScheduler._jobstores_lock",
                                "BlockingScheduler._executors_lock"}


# -- fasteners: locks made in a loop, taken in list order by one wrapper -------------------


def locked(*, lock: list[Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """fasteners' ``locked`` decorator shape: every lock of the list, in list order."""
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with contextlib.ExitStack() as stack:
                for lk in lock:
                    stack.enter_context(lk)
                return fn(*args, **kwargs)
        return wrapper
    return decorate


def test_locks_made_in_a_loop_taken_in_list_order_are_not_a_finding(
        checker: LockOrderChecker) -> None:
    locks = [threading.Lock() for _ in range(10)]
    calls: list[int] = []

    @locked(lock=locks)
    def work(n: int) -> None:
        assert all(lk.locked() for lk in locks)
        calls.append(n)

    work(1)
    for n in range(2, 5):
        in_thread(functools.partial(work, n), f"worker-{n}")
    assert calls == [1, 2, 3, 4]
    assert checker.findings() == []
    assert len(checker._instances) == 1  # one class, its instances ordered

    @locked(lock=list(reversed(locks[:2])))
    def backwards() -> None:
        pass

    in_thread(backwards, "backwards")
    [f] = checker.findings()
    assert f.details["variant"] == "same-class"
    assert f.details["reason"] == "both-orders"


def test_a_factory_called_for_two_names_makes_two_classes(checker: LockOrderChecker) -> None:
    """The class of a lock a factory returns depends on its caller's binding, so it is not
    remembered by the factory's own line alone."""
    def make() -> Any:
        return threading.Lock()

    first = make()
    second = make()
    again = [make() for _ in range(2)]  # bound to no name: the factory's line is the class
    classes = [lk._stuck_class for lk in (first, second, *again)]
    assert [c.binding for c in classes] == ["first", "second", None, None]
    assert classes[0] != classes[1]
    assert classes[2] == classes[3]


# -- pytest-xdist: a worker's same-class finding reaches the controller whole -------------------


def test_a_same_class_finding_survives_export_and_merge(checker: LockOrderChecker) -> None:
    # The controller of `pytest -n` rebuilds each worker's findings from export_state: the
    # instance numbers, the reason and the reverse order's stack must come through, or the
    # report reads "#0 -> #0" and "the reverse stack was not kept" for a pair of two locks.
    first = logging.handlers.MemoryHandler(10)
    second = logging.handlers.MemoryHandler(10)
    with first.lock, second.lock:
        pass
    in_thread(lambda: [None for _ in [second.lock.acquire(), first.lock.acquire(),
                                      first.lock.release(), second.lock.release()]], "other")
    [local] = checker.findings()
    merged = LockOrderChecker()
    merged.merge_state(checker.export_state(), "gw0")
    [remote] = merged.findings()
    assert remote.details["reason"] == local.details["reason"] == "both-orders"
    pairs = [(e["from"], e["to"]) for e in local.details["edges"]]  # type: ignore[attr-defined]
    assert [(e["from"], e["to"]) for e in remote.details["edges"]] == pairs  # type: ignore[attr-defined]
    (x, y), (back_from, back_to) = pairs
    assert x != y and (back_from, back_to) == (y, x)
    text = render([remote])
    assert f"`{x}` -> `{y}`" in text and f"`{y}` -> `{x}`" in text
    assert "was not kept" not in text and remote.missing_evidence == local.missing_evidence
    assert "thread other (gw0) holds" in text and "thread MainThread (gw0) holds" in text
    assert len(remote.details["edges"]) == len(local.details["edges"]) == 2
