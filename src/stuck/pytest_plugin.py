"""pytest plugin: ``pytest --stuck`` checks lock order and catches deadlocks in tests.

Registered through the ``pytest11`` entry point, so it is loaded in every pytest session; it
imports nothing of stuck's runtime until ``--stuck`` (or the ``stuck`` ini option) asks for it.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stuck", "stuck: lock-order checking and deadlock detection")
    group.addoption("--stuck", action="store_true", default=None,
                    help="instrument locks for the session: fail on lock-order cycles and "
                         "turn deadlocks into test failures")
    parser.addini("stuck", type="bool", default=False,
                  help="turn on stuck's instrumentation for every run (like --stuck)")
