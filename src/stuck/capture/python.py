"""The Python view of a CPython process: py-spy, else pystack.

Either tool reads the interpreter's memory from outside and prints each thread's Python stack
with its OS thread id, which is how its frames join the kernel's view of the same thread. The
kernel keeps saying what the thread waits on (a pipe, a futex); the Python frames say where in
the program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stuck.capture import tools
from stuck.capture.evidence import ProcessEvidence
from stuck.model import Thread

if TYPE_CHECKING:
    from stuck.capture.merge import Built


def collect(pe: ProcessEvidence, timeout: float) -> None:
    tried = []
    for name, argv in (("py-spy", ["dump", "--pid", str(pe.pid)]),
                       ("pystack", ["remote", str(pe.pid)])):
        exe = tools.find(name)
        if exe is None:
            tried.append(f"{name} is not installed")
            continue
        ran = tools.run([exe, *argv], timeout, target=pe.pid)
        if ran.code == 0 and ran.out.strip():
            pe.tools[name] = ran.out
            return
        why = ("timed out" if ran.code is None
               else tools.first_line(ran.err) or tools.first_line(ran.out) or "no output")
        tried.append(f"{name} failed: {why}")
    pe.missing.append(f"the Python stacks of pid {pe.pid} could not be read ("
                      + "; ".join(tried) + "); `pip install py-spy` or `pip install pystack`")


def apply(pe: ProcessEvidence, threads: list[Thread], built: Built) -> None:
    from stuck.capture.merge import thread_name
    from stuck.dumps import pyspy, pystack

    text = pe.tools.get("py-spy")
    result = pyspy.parse(text) if text else pystack.parse(pe.tools.get("pystack", ""))
    by_tid = {t.tid: t for t in threads if t.tid is not None}
    for proc in result.processes:
        for pt in proc.threads:
            t = by_tid.get(pt.tid) if pt.tid is not None else None
            if t is None or not pt.frames:
                continue
            t.frames = pt.frames
            if pt.name:
                t.name = thread_name(pt.name, pe.pid, pe.comm)
            if t.waits is not None and t.waits.at is None:
                t.waits.at = pt.frames[0]
            if t.state == "blocked" and t.waits is not None \
                    and t.waits.resource.startswith("futex:"):
                # A Python lock or condition: the kernel shows the futex, not its owner.
                built.inferred.setdefault(
                    t.waits.resource, "a Python lock's owner is not readable from outside; "
                    "run the program under `stuck run` to track owners")
    del built
