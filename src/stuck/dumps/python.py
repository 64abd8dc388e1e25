"""Python thread dumps of any kind: faulthandler, py-spy (text or --json) and pystack.

Each of those formats has its own module (``faulthandler``, ``pyspy``, ``pystack``); this one
runs every one whose ``detect`` matches, so ``--format python`` reads whichever was pasted.
(gdb's ``py-bt`` belongs to the gdb format.)
"""

from __future__ import annotations

from stuck.dumps import ParseResult
from stuck.dumps import faulthandler as _faulthandler
from stuck.dumps import pyspy as _pyspy
from stuck.dumps import pystack as _pystack

NAME = "python"

_FORMATS = (_faulthandler, _pyspy, _pystack)


def detect(text: str) -> bool:
    """True when a faulthandler, py-spy or pystack dump appears anywhere in the text."""
    return any(fmt.detect(text) for fmt in _FORMATS)


def parse(text: str) -> ParseResult:
    """Parse with every Python format found in the text and put the results together."""
    result = ParseResult()
    for fmt in _FORMATS:
        if not fmt.detect(text):
            continue
        part = fmt.parse(text)
        result.processes.extend(part.processes)
        result.resources.extend(part.resources)
        result.notes.extend(part.notes)
        result.stated.extend(part.stated)
    return result
