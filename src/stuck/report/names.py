"""How a report names a thread or a resource, with everything a dump supplied escaped.

Below ``text`` and ``holding`` (both name things); nothing here imports either."""

from __future__ import annotations

import re

from stuck.model import Resource, Thread

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: object) -> str:
    """Make text from a dump safe to print: control characters become ``\\xNN`` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def resource_name(res: Resource | None, rid: str) -> str:
    if res is None:
        return clean(rid)
    text = clean(res.named())
    if res.created_at is not None and res.created_at.file:
        text += f" (made at {clean(res.created_at.where())})"
    return text


def thread_name(snap_threads: dict[str, Thread], tid: str) -> str:
    t = snap_threads.get(tid)
    return clean(t.label()) if t is not None else clean(tid)
