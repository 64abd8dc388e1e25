"""The lock-order checker observing a live install, for the tests that need real primitives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import stuck.runtime
from stuck.runtime import hooks
from stuck.runtime.lockorder import LockOrderChecker


@pytest.fixture
def checker() -> Iterator[LockOrderChecker]:
    if stuck.runtime.installed():
        pytest.skip("stuck is already installed in this process")
    stuck.runtime.install(policy="raise", signal=None)
    c = LockOrderChecker()
    hooks.add_observer(c)
    try:
        yield c
    finally:
        hooks.remove_observer(c)
        stuck.runtime.uninstall()
