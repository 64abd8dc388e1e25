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
