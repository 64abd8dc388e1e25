"""The Python view of a CPython process: py-spy, else pystack.

Either tool reads the interpreter's memory from outside and prints each thread's Python stack
with its OS thread id, which is how its frames join the kernel's view of the same thread. The
kernel keeps saying what the thread waits on (a pipe, a futex); the Python frames say where in
the program.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from stuck.capture import handover, tools
from stuck.capture.evidence import ProcessEvidence
from stuck.capture.naming import thread_id, thread_name
from stuck.model import Edge, Process, Recorded, Resource, Thread
from stuck.rules.facts import OWN_THREADS, TASK_PREFIX

if TYPE_CHECKING:
    from stuck.capture.merge import Built


def collect(pe: ProcessEvidence, timeout: float, stop: bool = True) -> bool:
    """Read the Python stacks of ``pe``; False when no tool could (the caller falls back to
    the native view). ``stop=False``: only with py-spy --nonblocking, which reads the memory of
    the running process without stopping it (its stacks may then be caught mid-change)."""
    tried = []
    readers = (("py-spy", ["dump", "--pid", str(pe.pid)]),
               ("pystack", ["remote", str(pe.pid)])) if stop \
        else (("py-spy", ["dump", "--nonblocking", "--pid", str(pe.pid)]),)
    for name, argv in readers:
        exe = tools.find(name)
        if exe is None:
            tried.append(f"{name} is not installed")
            continue
        ran = tools.run([exe, *argv], timeout, target=pe.pid)
        if ran.code == 0 and ran.out.strip():
            pe.tools[name] = ran.out
            _ask_stuck(pe, ran.out, timeout)
            return True
        why = ("timed out" if ran.code is None
               else tools.first_line(ran.err) or tools.first_line(ran.out) or "no output")
        tried.append(f"{name} failed: {why}")
    pe.missing.append(f"the Python stacks of pid {pe.pid} could not be read ("
                      + "; ".join(tried) + "); `pip install py-spy` or `pip install pystack`; "
                      "only the interpreter's native frames are shown")
    return False


STUCK_WATCHDOG = "stuck/runtime/watchdog.py"


def _ask_stuck(pe: ProcessEvidence, stacks: str, timeout: float) -> None:
    """A program running under stuck (its watchdog thread shows in the stacks) is asked for
    its own live report, which its watchdog hands over (``stuck.capture.handover``)."""
    if STUCK_WATCHDOG not in stacks.replace("\\", "/"):
        return
    text = handover.request(pe.pid, min(timeout, 10.0))
    if text is None:
        pe.missing.append(f"pid {pe.pid} runs under stuck but its watchdog did not hand over "
                          "its live report in time (is the watchdog thread itself stuck?)")
        return
    pe.tools["stuck"] = text


def apply(pe: ProcessEvidence, threads: list[Thread], built: Built) -> None:
    told: set[int] = set()  # the threads the live report described: theirs is the last word
    if "stuck" in pe.tools:
        told = _apply_live(pe, threads, built)
        if "py-spy" not in pe.tools and "pystack" not in pe.tools:
            return
    from stuck.dumps import pyspy, pystack

    text = pe.tools.get("py-spy")
    result = pyspy.parse(text) if text else pystack.parse(pe.tools.get("pystack", ""))
    by_tid = {t.tid: t for t in threads if t.tid is not None}
    named = {r.id: r for r in result.resources}
    ids = {pt.id: by_tid[pt.tid].id for proc in result.processes for pt in proc.threads
           if pt.tid is not None and pt.tid in by_tid}
    for proc in result.processes:
        for pt in proc.threads:
            t = by_tid.get(pt.tid) if pt.tid is not None else None
            if t is None or not pt.frames or pt.tid in told:
                # (py-spy's frames of a thread under stuck show stuck's own calls around the
                # program's: its lock wrappers, its runner, the command line that started it)
                continue
            t.frames = pt.frames
            if pt.name:
                t.name = thread_name(pt.name, pe.pid, pe.comm)
            if pt.name in OWN_THREADS:
                # stuck's own thread runs none of the program's code: it wakes none of its
                # waits, and a wait only it could end is a wait nothing ends.
                t.state, t.waits = "idle", None
                t.detail = "stuck's watchdog: runs none of the program's code"
                continue
            if t.waits is not None and t.waits.at is None:
                t.waits.at = pt.frames[0]
            _name_futex_wait(pe, t, pt, named, ids, built)
            if t.state == "blocked" and t.waits is not None \
                    and t.waits.resource.startswith("futex:"):
                # A Python lock or condition: the kernel shows the futex, not its owner.
                built.inferred.setdefault(
                    t.waits.resource, "a Python lock's owner is not readable from outside; "
                    "run the program under `stuck run` to track owners")


def _name_futex_wait(pe: ProcessEvidence, t: Thread, pt: Thread, named: dict[str, Resource],
                     ids: dict[str, str], built: Built) -> None:
    """A futex wait whose Python frames say what it is (``Thread.join``, ``Condition.wait``,
    ``Queue.get``): the wait is on that object, as ``stuck analyze`` reads the same stacks.
    The kernel keeps the say on whether the wait is timed."""
    if t.state != "blocked" or t.waits is None or not t.waits.resource.startswith("futex:") \
            or pt.waits is None:
        return
    res = named.get(pt.waits.resource)
    if res is None or res.kind in ("unknown", "mutex", "rlock"):
        return  # a lock's acquire: its owner is the source's to tell (stuck.dumps.pysource)
    rid = f"py{pe.pid}:{res.id}"
    if built.snapshot.resource(rid) is None:
        built.snapshot.resources.append(replace(
            res, id=rid, owners=[ids.get(o, o) for o in res.owners],
            wakers=None if res.wakers is None else [ids.get(w, w) for w in res.wakers],
            acquired_at={}))
    t.waits.resource = rid


def _apply_live(pe: ProcessEvidence, threads: list[Thread], built: Built) -> set[int]:
    """The program's own report: owners, waits and wakers its runtime tracked, joined to the
    kernel's threads by OS thread id; ids made unique per process. Its recorded facts (who
    ever completed, notified or joined what) are renamed with its threads, so the rules judge
    the process as its runtime did (``stuck.rules.facts.recorded_part`` judges only facts
    about threads the snapshot has). The OS thread ids of the threads it described."""
    from stuck.report.json import ReportFormatError, loads

    try:
        live = loads(pe.tools["stuck"])
    except (ReportFormatError, RecursionError) as exc:
        pe.missing.append(f"the live report pid {pe.pid} handed over is not readable: {exc}")
        return set()
    _name_program(pe, threads, built, live.snapshot.processes)
    by_tid = {t.tid: t for t in threads if t.tid is not None}
    told: set[int] = set()
    rename: dict[str, str] = {}
    for lt in live.snapshot.threads():
        if lt.tid is not None and lt.tid in by_tid:
            rename[lt.id] = thread_id(lt.tid)
        elif lt.id.startswith(TASK_PREFIX):  # still a task to the asyncio rules
            rename[lt.id] = f"{lt.id} (pid {pe.pid})"
        else:
            rename[lt.id] = f"pid {pe.pid} {lt.id}"
    rid = {r.id: f"live{pe.pid}:{r.id}" for r in live.snapshot.resources}
    for lt in live.snapshot.threads():
        native = by_tid.get(lt.tid) if lt.tid is not None else None
        holds = [rid.get(h, h) for h in lt.holds]
        if lt.waits is not None:
            lt.waits.resource = rid.get(lt.waits.resource, lt.waits.resource)
        if native is None:
            if lt.state == "dead" or lt.id.startswith("task:"):
                lt.id = rename[lt.id]
                lt.holds = holds
                lt.name = thread_name(lt.name, pe.pid, pe.comm)
                threads.append(lt)
            continue
        native.name = thread_name(lt.name, pe.pid, pe.comm)
        told.add(native.tid or 0)
        if lt.frames:
            native.frames = lt.frames
        native.holds = holds
        if native.waits is not None and native.waits.direction:
            continue  # the kernel's pipe or socket wait: the runtime does not see those
        if lt.waits is not None:
            native.waits, native.state, native.detail = lt.waits, lt.state, lt.detail
        elif lt.state in ("idle", "sleeping", "io") and native.waits is not None \
                and native.waits.resource.startswith("futex:"):
            native.state, native.waits = lt.state, None  # a wait the runtime knows is benign
    for r in live.snapshot.resources:
        r.id = rid[r.id]
        r.owners = [rename.get(o, o) for o in r.owners]
        if r.wakers is not None:
            r.wakers = [rename.get(w, w) for w in r.wakers]
        r.acquired_at = {rename.get(k, k): v for k, v in r.acquired_at.items()}
        if r.recorded is not None:
            _rename_recorded(r.recorded, rename)
        built.snapshot.resources.append(r)
    # Its event loops as its watchdog saw them (idle, stalled, who could still wake them):
    # the asyncio rules judge their tasks here as they did live.
    for lp in live.snapshot.loops:
        lp.id = rid.get(lp.id, f"live{pe.pid}:{lp.id}")
        lp.thread = rename.get(lp.thread, lp.thread) if lp.thread is not None else None
        lp.tasks = [rename.get(t, t) for t in lp.tasks]
        if lp.runnable_threads is not None:
            lp.runnable_threads = [rename.get(t, t) for t in lp.runnable_threads]
        built.snapshot.loops.append(lp)
    # What the runtime itself concluded: kept where the rules find nothing on its threads
    # from what was carried over (stuck.capture.report).
    for f in live.findings:
        f.threads = [rename.get(t, t) for t in f.threads]
        f.blocked_behind = [rename.get(t, t) for t in f.blocked_behind]
        f.resources = [rid.get(r, r) for r in f.resources]
        f.cycle = [Edge(rename.get(e.thread, e.thread), rid.get(e.waits_for, e.waits_for),
                        rename.get(e.held_by, e.held_by)) for e in f.cycle]
        f.details = {**f.details, "found_by": f"the stuck runtime inside pid {pe.pid}"}
        built.live_findings.append(f)
    return told


def _rename_recorded(rec: Recorded, rename: dict[str, str]) -> None:
    """The thread ids in a primitive's recorded history, as the capture names those threads."""
    def ids(xs: list[str] | None) -> list[str] | None:
        return None if xs is None else [rename.get(x, x) for x in xs]

    rec.wakers, rec.getters = ids(rec.wakers), ids(rec.getters)
    rec.pool_workers = ids(rec.pool_workers)
    if rec.joins is not None:
        rec.joins = rename.get(rec.joins, rec.joins)
    rec.signals = [replace(g, thread=rename.get(g.thread, g.thread)) for g in rec.signals]


def _name_program(pe: ProcessEvidence, threads: list[Thread], built: Built,
                  told: list[Process]) -> None:
    """A program run by ``stuck run script.py`` is, to the kernel, the process ``stuck``; its
    runtime knows the script it runs. The process and its threads are named by that."""
    name = next((p.name for p in told if p.name and p.pid in (pe.pid, None)), None)
    if not name or name == pe.comm:
        return
    old, pe.comm = pe.comm, name
    for proc in built.snapshot.processes:
        if proc.pid == pe.pid:
            proc.name = name
    for t in threads:
        if t.name == thread_name(None, pe.pid, old):
            t.name = thread_name(None, pe.pid, name)
        elif t.name is not None and t.name.endswith(f" [pid {pe.pid} {old}]"):
            t.name = thread_name(t.name[:-len(f" [pid {pe.pid} {old}]")], pe.pid, name)


def read_sources(pe: ProcessEvidence, threads: list[Thread], built: Built,
                 sources: tuple[str, ...] = ()) -> None:
    """The program's own source, where readable, says which locks its threads hold and wait
    for (the ``with`` blocks around the lines py-spy or pystack show): the same reading
    ``stuck analyze`` makes of a pasted dump (``stuck.dumps.pysource``). Relative file names
    start at the process's working directory, and ``sources`` (``--source DIR``) are looked
    in too. A program that handed over its live report needs none of it: its runtime tracked
    the owners."""
    if "stuck" in pe.tools:
        return
    from stuck.dumps.pysource import read_python_sources

    read_python_sources(built.snapshot, built.inferred, sources, threads=threads, cwd=pe.cwd,
                        scope=f"{pe.pid}:")
