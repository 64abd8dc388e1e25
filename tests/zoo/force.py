"""Run a zoo program under its pause-point schedule and report whether it blocked.

In a child process (``python tests/zoo/force.py NAME buggy|fixed``) the program runs on a daemon
thread under :class:`zoo.points.Schedule`.  Once the script has played out (every scripted
point reached, no thread parked in ``at``), the child gives the program ``bound`` seconds more;
if it has not returned, it is blocked in its own primitives.  The child prints one JSON line
(outcome, live threads and where they wait) and leaves with ``os._exit`` so blocked threads
cannot keep it alive.  :func:`force` runs that child from the parent with a hard timeout and
kills only that child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``import zoo`` work
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo.points import Schedule

MAIN_THREAD = "zoo-main"


@dataclass
class ForceResult:
    """What one forced run did."""

    name: str
    variant: str
    outcome: str
    """``completed``, ``blocked``, ``error`` or ``timeout`` (the child itself had to be killed)."""
    threads: dict[str, list[str]] = field(default_factory=dict)
    """Live threads at the end -> innermost-first ``function (file:line)`` frames."""
    timed_out: list[str] = field(default_factory=list)
    unreached: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    detail: str = ""


def _stacks() -> dict[str, list[str]]:
    frames = sys._current_frames()
    out: dict[str, list[str]] = {}
    for t in threading.enumerate():
        if t is threading.current_thread() or t.ident not in frames:
            continue
        stack = traceback.extract_stack(frames[t.ident])
        out[t.name] = [f"{fs.name} ({Path(fs.filename).name}:{fs.lineno})" for fs in stack[::-1]]
    return out


def child(name: str, variant: str, bound: float, gate_timeout: float) -> dict[str, Any]:
    import importlib

    module = importlib.import_module(f"zoo.{name}")
    schedule = Schedule(module.META.schedule, timeout=gate_timeout)
    program = getattr(module, variant)
    errors: list[str] = []

    def main() -> None:
        try:
            program(schedule)
        except BaseException:  # reported to the parent
            errors.append(traceback.format_exc())

    t = threading.Thread(target=main, name=MAIN_THREAD, daemon=True)
    t.start()
    deadline = time.monotonic() + 2 * gate_timeout + 5.0
    while t.is_alive() and not schedule.settled() and time.monotonic() < deadline:
        t.join(0.005)
    t.join(bound)
    result: dict[str, Any] = {
        "timed_out": schedule.timed_out,
        "unreached": schedule.unreached(),
        "parked": schedule.parked(),
    }
    if errors:
        result.update(outcome="error", detail=errors[0])
    elif t.is_alive():
        result.update(outcome="blocked", threads=_stacks())
    else:
        result.update(outcome="completed", threads=_stacks())
    return result


def force(
    name: str,
    variant: str = "buggy",
    *,
    bound: float = 0.5,
    gate_timeout: float = 3.0,
) -> ForceResult:
    """Run ``zoo.<name>.<variant>`` under its schedule in a fresh child process."""
    proc = start(name, variant, bound=bound, gate_timeout=gate_timeout)
    return finish(proc, name, variant, timeout=2 * gate_timeout + bound + 15.0)


def start(name: str, variant: str, *, bound: float, gate_timeout: float) -> subprocess.Popen[str]:
    """Start the child for :func:`force` (use :func:`finish` to collect it)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        name,
        variant,
        "--bound",
        str(bound),
        "--gate-timeout",
        str(gate_timeout),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], name: str, variant: str, timeout: float) -> ForceResult:
    """Wait for a child started by :func:`start`; kill it (only it) if it overstays."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return ForceResult(name, variant, "timeout", detail="child killed")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        return ForceResult(name, variant, "error", detail=f"rc={proc.returncode}\n{out}\n{err}")
    data = json.loads(lines[-1])
    return ForceResult(
        name=name,
        variant=variant,
        outcome=data["outcome"],
        threads=data.get("threads", {}),
        timed_out=data.get("timed_out", []),
        unreached=data.get("unreached", []),
        parked=data.get("parked", []),
        detail=data.get("detail", ""),
    )


def _cli(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("name")
    ap.add_argument("variant", choices=("buggy", "fixed"))
    ap.add_argument("--bound", type=float, default=0.5)
    ap.add_argument("--gate-timeout", type=float, default=3.0)
    args = ap.parse_args(argv)
    result = child(args.name, args.variant, args.bound, args.gate_timeout)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
