"""The checker at scale: declaring an order costs O(1) however much was cached, and past the
class bound locks given a key are still checked (as instances of their class), loudly."""

from __future__ import annotations

import itertools

import pytest

from stuck.runtime import lockorder
from stuck.runtime.lockorder import LockOrderChecker, order_by

from .lo_fakes import FakeLock, make_lock


@pytest.fixture
def module_checker(monkeypatch: pytest.MonkeyPatch) -> LockOrderChecker:
    """A checker installed as the process's one (``order_by`` talks to it)."""
    c = LockOrderChecker()
    monkeypatch.setattr(lockorder, "_checker", c)
    return c


def test_declaring_orders_empties_the_caches_once_not_per_lock(
        module_checker: LockOrderChecker, monkeypatch: pytest.MonkeyPatch) -> None:
    c = module_checker
    plain = [make_lock(c) for _ in range(2)]
    outer = make_lock(c)
    for lk in plain:  # fill the thread's caches
        with outer, lk:
            pass
    emptied: list[int] = []
    real = c._clear_fast
    monkeypatch.setattr(c, "_clear_fast", lambda: (emptied.append(1), real())[1])
    keyed: list[FakeLock] = []
    for i in range(500):
        lk = make_lock(c)
        keyed.append(lk)
        order_by(lk, i)
        if keyed[:-1]:
            with keyed[-2], lk:  # nested in key order, between declarations
                pass
    assert len(emptied) == 1  # was once per order_by: O(n) each, O(n^2) in all
    assert c.findings() == []
    with keyed[3], keyed[1]:  # the declared order is still checked
        pass
    [f] = c.findings()
    assert f.details["variant"] == "deadlock"


def test_past_the_class_bound_keyed_locks_are_still_checked(capfd: pytest.CaptureFixture[str]
                                                            ) -> None:
    c = LockOrderChecker(max_classes=4)
    locks = [order_by(make_lock(c), i) for i in range(10)]  # one class, ten keys
    for a, b in itertools.pairwise(locks):
        with a, b:
            pass
    assert c.findings() == []
    assert "locks given an order_by key since are checked" in capfd.readouterr().err
    assert any("order_by key" in n for n in c.notes())  # said in the report too
    with locks[9], locks[6]:  # both past the bound: the reverse order is found
        pass
    [f] = c.findings()
    assert f.details["variant"] == "same-class"
    assert f.details["reason"] == "both-orders"


def test_past_the_class_bound_new_classes_are_still_checked(capfd: pytest.CaptureFixture[str]
                                                            ) -> None:
    # Many classes, each used once and then cold (code generated per request, classes made
    # per plugin): the checker forgets the least recently used to stay within its bound,
    # and classes made after that are checked like the first ones.
    c = LockOrderChecker(max_classes=64)
    outer = make_lock(c, "outer")  # held throughout: never forgotten
    with outer:
        for i in range(1000):
            a, b = make_lock(c, f"a{i}"), make_lock(c, f"b{i}")
            with a, b:
                pass
            assert c.stats()["classes"] <= 64  # the bound holds at every step
    x, y = make_lock(c, "x"), make_lock(c, "y")
    with x, y:
        pass
    with y, x:  # made long past the bound: still checked
        pass
    [f] = c.findings()
    assert f.details["variant"] == "deadlock"
    assert {"x", "y"} <= {c._nodes[n].cls.name for n in c._nodes}
    assert c.stats()["evicted"] >= 1000 * 2 - 64
    assert "least recently used classes are forgotten" in capfd.readouterr().err
    assert any("forgotten" in n for n in c.notes())  # said in the report too


def test_a_class_in_a_finding_or_held_is_never_forgotten() -> None:
    c = LockOrderChecker(max_classes=16)
    p, q = make_lock(c, "p"), make_lock(c, "q")
    with p, q:
        pass
    with q, p:
        pass
    [cycle] = c.findings()
    held = make_lock(c, "held")
    held.acquire()
    try:
        for i in range(200):
            a = make_lock(c, f"a{i}")
            with a:
                pass
    finally:
        held.release()
    names = {c._nodes[n].cls.name for n in c._nodes}
    assert {"p", "q", "held"} <= names
    assert c.findings() == [cycle]  # the finding's edges were kept


def test_past_the_edge_bound_new_orders_are_still_checked() -> None:
    # A chain of classes, each nested in the next: edges grow with classes, and reach their
    # bound first. Cold classes are forgotten with their edges; later orders are checked.
    c = LockOrderChecker(max_edges=50)
    prev = make_lock(c, "c0")
    for i in range(1, 500):
        lk = make_lock(c, f"c{i}")
        with prev, lk:
            pass
        prev = lk
        assert c.edge_count() <= 50
    x, y = make_lock(c, "x"), make_lock(c, "y")
    with x, y:
        pass
    with y, x:
        pass
    [f] = c.findings()
    assert f.details["variant"] == "deadlock"
