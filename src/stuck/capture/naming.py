"""How a captured thread is named in the model: ``LWP <tid>`` as its id, and its own name
followed by its process. Below ``merge`` and the runtime views (``gdb``, ``python``, ``jvm``),
which all name threads the same way."""

from __future__ import annotations


def thread_id(tid: int) -> str:
    return f"LWP {tid}"


def thread_name(name: str | None, pid: int, comm: str) -> str:
    """``MainThread [pid 4242 gateway]``: the thread's own name, then its process."""
    if not name or name == comm:
        return f"{comm} [pid {pid}]"
    return f"{name} [pid {pid} {comm}]"
