"""How a failing explored pytest test is named and replayed: its node id, and the command that
runs that one schedule again. Apart from the pytest plugin so that ``stuck.explore`` can name
the command without importing pytest (or the plugin, which imports the package)."""

from __future__ import annotations

import os


def replay_command(nodeid: str, token: str) -> str:
    return f"pytest '{nodeid}' --stuck-replay={token}"


def current_nodeid() -> str | None:
    """The node id of the pytest test running now (from ``PYTEST_CURRENT_TEST``), or None."""
    current = os.environ.get("PYTEST_CURRENT_TEST")
    if not current:
        return None
    return current.rsplit(" (", 1)[0]
