"""The JVM's own view: ``jcmd PID Thread.print -l``, else ``jstack -l PID``.

The dump is read by the same parser as ``stuck analyze`` (``stuck.dumps.jstack``). Java threads
carry their OS thread id (``nid``), so each joins the kernel's view of the same thread; monitor
and lock owners come from the JVM itself. Resource and thread ids from the dump are made unique
per process, so two JVMs captured together cannot be confused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stuck.capture import tools
from stuck.capture.evidence import ProcessEvidence
from stuck.capture.naming import thread_id, thread_name
from stuck.model import Edge, Resource, Thread, Wait

if TYPE_CHECKING:
    from stuck.capture.merge import Built


def collect(pe: ProcessEvidence, timeout: float) -> None:
    tried = []
    for name, argv in (("jcmd", [str(pe.pid), "Thread.print", "-l"]),
                       ("jstack", ["-l", str(pe.pid)])):
        exe = tools.find(name)
        if exe is None:
            tried.append(f"{name} is not installed")
            continue
        ran = tools.run([exe, *argv], timeout, target=pe.pid)
        if ran.code == 0 and "java.lang.Thread.State" in ran.out:
            pe.tools[name] = ran.out
            return
        why = ("timed out" if ran.code is None
               else tools.first_line(ran.out) or tools.first_line(ran.err) or "no output")
        tried.append(f"{name} failed: {why}")
    pe.missing.append(f"the Java threads of pid {pe.pid} could not be read ("
                      + "; ".join(tried) + "); run as the JVM's user with a JDK's jcmd")


def apply(pe: ProcessEvidence, threads: list[Thread], built: Built) -> None:
    from stuck.dumps import jstack

    result = jstack.parse(pe.tools.get("jcmd") or pe.tools.get("jstack", ""))
    if not result.processes:
        return
    java = result.processes[0].threads
    rename: dict[str, str] = {}
    by_tid = {t.tid: t for t in threads if t.tid is not None}
    for jt in java:
        if jt.tid is not None and jt.tid in by_tid:
            rename[jt.id] = thread_id(jt.tid)
        else:
            rename[jt.id] = f"pid {pe.pid} {jt.id}"
    rid = {r.id: f"jvm{pe.pid}:{r.id}" for r in result.resources}
    for jt in java:
        native = by_tid.get(jt.tid) if jt.tid is not None else None
        if native is not None and native.waits is not None and native.waits.direction:
            # The kernel shows a pipe or socket wait the JVM calls RUNNABLE: keep the kernel's.
            native.frames = jt.frames
            continue
        jt.holds = [rid.get(h, h) for h in jt.holds]
        if jt.waits is not None:
            jt.waits.resource = rid.get(jt.waits.resource, jt.waits.resource)
        if native is not None:
            native.name = thread_name(jt.name, pe.pid, pe.comm)
            native.frames, native.holds, native.waits = jt.frames, jt.holds, jt.waits
            native.state, native.detail, native.daemon = jt.state, jt.detail, jt.daemon
        else:
            jt.id = rename[jt.id]
            jt.name = thread_name(jt.name, pe.pid, pe.comm)
            threads.append(jt)
    for r in result.resources:
        r.id = rid[r.id]
        r.owners = [rename.get(o, o) for o in r.owners]
        if r.wakers is not None:
            r.wakers = [rename.get(w, w) for w in r.wakers]
        r.acquired_at = {rename.get(k, k): v for k, v in r.acquired_at.items()}
        built.snapshot.resources.append(r)
    for f in result.stated:
        f.threads = [rename.get(t, t) for t in f.threads]
        f.resources = [rid.get(r, r) for r in f.resources]
        f.cycle = [Edge(rename.get(e.thread, e.thread), rid.get(e.waits_for, e.waits_for),
                        rename.get(e.held_by, e.held_by)) for e in f.cycle]
        f.blocked_behind = [rename.get(t, t) for t in f.blocked_behind]
        built.stated.append(f)
    for k, v in result.inferred.items():
        built.inferred[rid.get(k, k)] = v
    _launcher_joins_main(pe, threads, java, rename, built)


# The java launcher runs no Java code on the process's first thread: it starts the JVM's main
# method on a new thread (the Java thread "main", renamed "DestroyJavaVM" once main returns and
# the JVM waits for the other non-daemon threads) and waits for it in pthread_join.
_JAVA_MAIN = ("main", "DestroyJavaVM")


def _launcher_joins_main(pe: ProcessEvidence, threads: list[Thread], java: list[Thread],
                         rename: dict[str, str], built: Built) -> None:
    """The first thread of a ``java`` process, blocked with no Java thread of its own, waits
    for the Java main thread to end: a join, so it is blocked behind whatever stops main, not a
    stall of its own."""
    if pe.comm != "java" or any(jt.tid == pe.pid for jt in java):
        return
    first = next((t for t in threads if t.tid == pe.pid), None)
    main = next((jt for jt in java if jt.name is not None
                 and jt.name.split(" [", 1)[0] in _JAVA_MAIN and jt.tid is not None), None)
    if first is None or main is None or first.state != "blocked" or first.waits is None \
            or first.waits.direction is not None:
        return
    main_id = rename.get(main.id, main.id)
    if main_id == main.id and main.tid is not None:
        main_id = thread_id(main.tid)
    rid = f"jvm{pe.pid}:launcher-join"
    built.snapshot.resources.append(Resource(id=rid, kind="thread", label="Java main thread",
                                             owners=[main_id]))
    first.waits = Wait(resource=rid, durable=True, op="join")
    first.detail = "the java launcher waits for the Java main thread to end (pthread_join)"
