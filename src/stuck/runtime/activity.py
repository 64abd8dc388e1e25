"""What a live thread's innermost Python frame says it is doing: running, in I/O, sleeping,
idle (an event loop with nothing to do) or blocked in a tracked primitive's wait, and the call
it is in. Read by the watchdog, the live snapshot and the asyncio rule; below all of them.

The tables of which standard-library functions are which activity are the stack classifier's
(``stuck.stacks.python``), shared with the dump parsers.
"""

from __future__ import annotations

import dis
import os
from types import CodeType, FrameType

from stuck.model import Frame
from stuck.stacks.python import CALL_ACTIVITY as _CALL_ACTIVITY
from stuck.stacks.python import STDLIB_ACTIVITY as _STDLIB_ACTIVITY
from stuck.stacks.python import Activity
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

_STUCK_RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))
_call_names: dict[tuple[CodeType, int], str | None] = {}
_LOADS = frozenset({"LOAD_METHOD", "LOAD_ATTR", "LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF"})


def pending_call(frame: FrameType) -> str | None:
    """The name of the function ``frame`` is calling right now, when the call site names one
    the watchdog knows (``sleep``, ``recv``, ``acquire``, ...). A heuristic over the bytecode of
    the current line: the last known name loaded before the instruction being executed."""
    code = frame.f_code
    lasti = frame.f_lasti
    key = (code, lasti)
    if key in _call_names:
        return _call_names[key]
    found: str | None = None
    try:
        line_start_index = 0
        instructions = list(dis.get_instructions(code))
        for index, ins in enumerate(instructions):
            if ins.offset > lasti:
                break
            # starts_line: the line number before Python 3.13, a bool from 3.13 on
            if ins.starts_line is not None and ins.starts_line is not False:
                line_start_index = index
        for ins in instructions[line_start_index:]:
            if ins.offset > lasti:
                break
            if ins.opname in _LOADS and isinstance(ins.argval, str) \
                    and ins.argval in _CALL_ACTIVITY:
                found = ins.argval
    except Exception:  # an unusual code object: no name, no harm
        found = None
    if len(_call_names) > 4096:
        _call_names.clear()
    _call_names[key] = found
    return found


def frame_activity(frame: FrameType | None) -> tuple[Activity, str | None]:
    """What the innermost Python frame says the thread is doing, and the call it is in."""
    if frame is None:
        return "running", None
    code = frame.f_code
    filename = code.co_filename
    if os.path.dirname(os.path.abspath(filename)) == _STUCK_RUNTIME_DIR:
        return "blocked", code.co_name  # inside a tracked primitive's wait
    base = os.path.basename(filename)
    known = _STDLIB_ACTIVITY.get((base, code.co_name))
    if known is not None:
        if known == "io" and base == "selectors.py" and _called_from_event_loop(frame):
            return "idle", "select"
        return known, code.co_name
    name = pending_call(frame)
    if name is not None:
        return _CALL_ACTIVITY[name], name
    return "running", None


def _called_from_event_loop(frame: FrameType) -> bool:
    outer = frame.f_back
    depth = 0
    while outer is not None and depth < 4:
        if outer.f_code.co_filename.endswith(("base_events.py", "asyncio/events.py")):
            return True
        outer = outer.f_back
        depth += 1
    return False


def frames_of(frame: FrameType | None, limit: int = 64) -> list[Frame]:
    """The model's frames, innermost first."""
    out: list[Frame] = []
    while frame is not None and len(out) < limit:
        code = frame.f_code
        out.append(Frame(function=code.co_name, file=code.co_filename, line=frame.f_lineno,
                         module=frame.f_globals.get("__name__") if frame.f_globals else None))
        frame = frame.f_back
    return out


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()
