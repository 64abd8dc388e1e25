"""How a report names a thread or a resource, with everything a source supplied escaped.

Every name a report writes as text comes from its source: a thread name a program chose, a
resource label, a file or function name from a dump, a JSON report anyone could have edited.
A newline in one would start a line of its own ("DEADLOCK (certain): forged"), an escape
sequence would drive the terminal. So each name passes through ``clean`` on its way into
text, and each control character (C0, DEL, C1, U+2028/2029: everything a terminal or an editor
could take for the end of a line or a command) is shown as a visible escape (``\\n``,
``\\x1b``, ``\\u2028``), never written. The JSON report keeps names exact: there they are data.

A finding's summary and missing evidence are one line each: ``clean`` escapes them whole. Its
explanation is several lines joined by newlines, with names inside: ``text_lines`` first
escapes every name of the snapshot that carries a control character (``raw_names``), then
splits the lines the rules wrote.

Below ``text`` and ``holding`` (both name things); nothing here imports either."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from stuck.model import Resource, Thread

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: object) -> str:
    """Make one line of text from a source safe to print: every control character becomes a
    visible escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL.sub(_escape, str(text))


def raw_names(source: object) -> list[str]:
    """Every string of ``source`` (a snapshot, a finding's details: names, labels, files,
    functions, messages) that holds a control character, longest first: those ``text_lines``
    escapes inside a longer text."""
    found: set[str] = set()
    stack: list[object] = [source]
    while stack:
        obj = stack.pop()
        if isinstance(obj, str):
            if _CONTROL.search(obj):
                found.add(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
    return sorted(found, key=len, reverse=True)


def text_lines(text: str, names: Iterable[str] = ()) -> list[str]:
    """The lines of a text a rule wrote (lines joined by newlines, names of the source inside),
    each safe to print: the ``names`` (``raw_names`` of the snapshot) are escaped first, so a
    newline inside one never starts a line of its own."""
    for name in names:
        if name in text:
            text = text.replace(name, clean(name))
    return [clean(line) for line in text.removesuffix("\n").split("\n")] if text else []


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
