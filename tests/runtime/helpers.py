"""Helpers for the deadlock tests: bounded waits only, so no test can hang the suite."""

from __future__ import annotations

import threading
import time
from typing import Any

from stuck.runtime import registry

BOUND = 10.0  # seconds: the most any helper waits


def wait_until_blocked(thread: threading.Thread, op: str | None = None) -> None:
    """Wait until ``thread`` has registered a blocking wait (optionally of kind ``op``)."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        record = registry.waits.get(thread.ident or -1)
        if record is not None and (op is None or record.op == op):
            return
        time.sleep(0.005)
    raise AssertionError(f"{thread.name} never blocked")


def start(target: Any, name: str, *args: Any) -> threading.Thread:
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    return t


def join_all(*threads: threading.Thread) -> None:
    for t in threads:
        t.join(BOUND)
        assert not t.is_alive(), f"{t.name} is still stuck"
