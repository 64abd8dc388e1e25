"""The bug zoo as a yardstick (CI-sized: one seed; benchmarks/explore.py --acceptance does ten)."""

from __future__ import annotations

import pytest

zoo = pytest.importorskip("zoo")

from stuck.explore import explore  # noqa: E402


@pytest.mark.parametrize("name", sorted(zoo.BUGS))
def test_zoo_bug_found_and_fixed_twin_passes(name: str) -> None:
    bug = zoo.BUGS[name]
    found = explore(bug.buggy, executions=1000, seed=0, stall_seconds=5.0)
    assert found.found, f"{name}: not found in 1000 executions"
    assert found.verdict is not None
    # the verdict the zoo expects: deadlock for a closed cycle of ownership and waiting, stall
    # for a waiter nothing still able to run can wake (rocksdb_1297: work nobody takes; a
    # readers-writer lock built on a Condition, whose readers are a count, not owners)
    assert found.verdict.kind == bug.expected_verdict, found.verdict.summary
    fixed = explore(bug.fixed, executions=150, seed=0, stall_seconds=5.0)
    assert not fixed.found, f"{name} fixed twin: {fixed.verdict and fixed.verdict.summary}"
