"""Helpers shared by the dump parsers: lazy line iteration and small string utilities."""

from __future__ import annotations

import re
from collections.abc import Iterator

# A line longer than this is cut before any parser looks at it: no format needs more, and it
# bounds the work any single line can cost.
MAX_LINE = 16384


def iter_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` without their ends, one at a time (no list of all lines)."""
    pos = 0
    n = len(text)
    find = text.find
    while pos < n:
        end = find("\n", pos)
        if end < 0:
            end = n
        line = text[pos:end] if end - pos <= MAX_LINE else text[pos:pos + MAX_LINE]
        pos = end + 1
        if line.endswith("\r"):
            line = line[:-1]
        yield line


def split_call(text: str) -> tuple[str, str | None]:
    """``name (args)`` or ``name(args)`` -> (name, args); args None when there are none.

    The argument list is the last balanced parenthesised group; found from the end, so
    C++ signatures and nested parentheses in arguments stay with the right part.
    """
    text = text.rstrip()
    if not text.endswith(")"):
        return text, None
    open_at = text.rfind("(")
    if open_at < 0:
        return text, None
    if text.count(")", open_at) != 1:
        depth = 0
        open_at = -1
        for i in range(len(text) - 1, -1, -1):
            c = text[i]
            if c == ")":
                depth += 1
            elif c == "(":
                depth -= 1
                if depth == 0:
                    open_at = i
                    break
        if open_at < 0:
            return text, None
    return text[:open_at].rstrip(), text[open_at + 1:-1]


def has_line(text: str, needle: str, line: re.Pattern[str]) -> bool:
    """True when a line holding ``needle`` matches ``line`` from its start.

    For ``detect``: the text is searched for the distinctive substring at C speed, and only
    the lines holding it are tried with the pattern, each at most once, so the cost stays
    linear and small even for a 100 MB dump of another format.
    """
    n = len(text)
    pos = text.find(needle)
    while pos >= 0:
        lo = max(0, pos - MAX_LINE)
        start = text.rfind("\n", lo, pos) + 1
        if start == 0:
            start = lo
        end = text.find("\n", pos)
        if end < 0:
            end = n
        if line.match(text, start, min(end, max(start + MAX_LINE, pos + 4096))):
            return True
        pos = text.find(needle, end)
    return False


def has_any_line(text: str, checks: tuple[tuple[str, re.Pattern[str]], ...]) -> bool:
    """``has_line`` for several (needle, pattern) pairs: True when any of them matches."""
    return any(has_line(text, needle, line) for needle, line in checks)
