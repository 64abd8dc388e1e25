"""The public entry points: ``stuck.explore(...)`` itself, and ``jobs`` from Python."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import explore_targets as targets
import pytest

import stuck.explore
from stuck.explore import explore, replay

HERE = Path(__file__).resolve().parent


def test_the_package_is_callable_after_a_plain_import() -> None:
    assert isinstance(stuck.explore, types.ModuleType)
    assert callable(stuck.explore)
    result = stuck.explore(targets.abba, executions=1000, seed=1)  # type: ignore[operator]
    assert result.found
    assert result.verdict is not None and result.verdict.kind == "deadlock"
    # the function and the submodules are still where they were
    assert stuck.explore.explore is explore
    same = stuck.explore.explore(targets.abba, executions=1000, seed=1)
    assert same.token == result.token


def test_stuck_explore_through_the_lazy_top_level_attribute() -> None:
    code = (
        "import stuck, types, explore_targets as t\n"
        "assert isinstance(stuck.explore, types.ModuleType)\n"
        "r = stuck.explore(t.abba, executions=1000, seed=1)\n"
        "print(r.verdict.kind, r.found_at)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env, check=False)
    assert out.returncode == 0, out.stderr
    kind, found_at = out.stdout.split()
    assert kind == "deadlock"
    assert int(found_at) == explore(targets.abba, executions=1000, seed=1).found_at


def test_jobs_split_the_same_seeded_sequence_over_processes() -> None:
    alone = explore(targets.abba, executions=400, seed=1, shrink_failures=False)
    assert alone.found and alone.found_at is not None
    split = explore(targets.abba, executions=400, seed=1, jobs=2, shrink_failures=False)
    assert split.found
    # the failure is the one a single process meets at the same execution number
    assert split.found_at == alone.found_at
    assert split.token is not None
    again = replay(targets.abba, split.token)
    assert again.verdict is not None and again.verdict.kind == "deadlock"


def test_jobs_on_a_correct_program_run_every_execution() -> None:
    result = explore(targets.abba_fixed, executions=60, seed=0, jobs=2)
    assert not result.found
    assert result.executions == 60


def test_jobs_need_a_function_importable_by_name() -> None:
    def local() -> None:
        pass

    with pytest.raises(ValueError, match="module level"):
        explore(local, executions=10, jobs=2)


def test_public_functions_are_not_shadowed_by_submodules() -> None:
    import stuck.explore.engine  # imports every submodule the engine uses

    for name in ("explore", "explores", "replay", "render"):
        value = getattr(stuck.explore, name)
        assert callable(value) and not isinstance(value, types.ModuleType), name


def test_a_lock_made_before_exploring_is_named_as_not_controlled() -> None:
    """``explore(func)`` cannot remake what ``func`` captured: it says so instead of a bare pass."""
    import threading

    from stuck.explore import explore as run

    outer = threading.Lock()

    def uses_outer() -> None:
        with outer:
            pass

    result = run(uses_outer, executions=5)
    assert not result.found
    assert any("not controlled" in n and "outer" in n for n in result.notes), result.notes

    def makes_its_own() -> None:
        with threading.Lock():
            pass

    assert not any("not controlled" in n for n in run(makes_its_own, executions=5).notes)
