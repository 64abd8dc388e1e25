"""A join on a thread stopped in a call the dump does not name, with nothing else seen running.

py-spy (without ``--native``) and faulthandler print no frame for a C call: a thread in
``with lock:``, ``time.sleep(1)`` or ``sock.recv(n)`` stands on its own line with nothing
above it, and the three look alike. What the text does show is a join: ``Thread.join`` in
threading.py waits until the joined thread ends, and with ``--locals`` the joined thread is
identified (its ``Thread.run`` frame prints the same ``self: <Thread at 0x..>``). CPython's
semantics then say this much:

- the joiner goes on only when the joined thread returns from that call and ends;
- if the call is a lock acquire, the lock's holder is a live thread (a ``Lock`` held by a
  thread that ended stays held: then nothing releases it), and with every other thread idle,
  waiting or stopped in calls the dump does not name, no thread is seen that will release it;
- if the call is a sleep or I/O, it ends by itself and the program may be fine.

So the claim is a ``possible`` hang of the joiner and the joined thread, never a deadlock:
a busy program whose main thread joins a worker in a sleep or a socket read prints the same
text (tests/fixtures/unseen: recv_join_idle, sleep_join_idle). The finding says exactly what
would decide it: the native frames (``py-spy dump --native``, ``pystack remote --native``)
or the program's source beside the dump (``stuck analyze --source DIR``).

Threads stopped in unnamed calls that nothing joins are not named at all: a sleeping
heartbeat prints exactly as a lock waiter does, and naming every such thread would name the
sleepers of every idle program; the note the Python reader adds lists them.
"""

from __future__ import annotations

from stuck.model import Finding, Process, Thread
from stuck.rules.reading import Reading
from stuck.stacks.native import base_name
from stuck.stacks.python import is_stdlib


def unnamed_call(t: Thread) -> bool:
    """``t`` is off the CPU in a call the dump does not name, on the program's own line."""
    return (t.state == "unknown" and bool(t.frames) and t.detail not in ("active", "gil")
            and (t.frames[0].file or "").endswith(".py")
            and not is_stdlib(t.frames[0].file or ""))


def _quiet(t: Thread) -> bool:
    """Nothing shown lets ``t`` run: idle, ended, in a wait without a timeout, or stopped in a
    call the dump does not name (which may be a wait too)."""
    if t.state in ("idle", "dead"):
        return True
    if t.state == "blocked":
        return t.waits is not None and t.waits.durable
    return t.state == "unknown" and t.detail not in ("active", "gil")


def unnamed_joins(dump: Reading) -> None:
    """For each complete Python process where a thread joins an identified thread that is
    stopped in an unnamed call, and nothing is seen running: a possible hang of both."""
    for proc in dump.snap.processes:
        if proc.name != "python" or proc.complete is not True:
            continue
        if any(t.id in dump.covered for t in proc.threads):
            continue  # beside a finding, the join is likely its victim: that one says more
        if not all(_quiet(t) for t in proc.threads):
            continue
        for joiner in proc.threads:
            joined = _joined_unnamed(dump, joiner)
            if joined is not None and joined.id not in dump.covered:
                _report(dump, proc, joiner, joined)


def _joined_unnamed(dump: Reading, t: Thread) -> Thread | None:
    if t.state != "blocked" or t.waits is None or not t.waits.durable:
        return None
    res = dump.resources.get(t.waits.resource)
    if res is None or res.kind != "thread" or len(res.owners) != 1:
        return None
    joined = dump.threads.get(res.owners[0])
    return joined if joined is not None and unnamed_call(joined) else None


def _report(dump: Reading, proc: Process, joiner: Thread, joined: Thread) -> None:
    top = joined.frames[0]
    where = f"{base_name(top.function)} ({top.where()})"
    pid = proc.pid or "PID"
    others = [t for t in proc.threads if t.id not in (joiner.id, joined.id) and unnamed_call(t)]
    summary = (f"{joiner.label()} waits for {joined.label()} to finish, and {joined.label()} "
               f"is stopped in {where} inside a call the dump does not name; no thread of "
               "the process is seen running: if that call is a wait (a lock, say, that "
               f"{joiner.label()} holds), neither goes on")
    words = [f"{joiner.label()} is in Thread.join, and its Thread object's address is the one "
             f"{joined.label()}'s own frames print: it goes on only when {joined.label()} "
             "ends.",
             f"{joined.label()} is off the CPU on its own line, {where}, inside a call this "
             "dump shows no frame for: a lock acquire, a sleep and a socket read look alike "
             "here.",
             "Every other thread of the process is idle, waiting without a timeout or "
             "stopped in a call the dump does not name"
             + (" (" + ", ".join(f"{t.label()} at {t.frames[0].where()}" for t in others[:3])
                + (" and more" if len(others) > 3 else "") + ")" if others else "")
             + ": none is seen running, so none is seen that would end the wait if it is one.",
             "Nothing proves a cycle or a wait that cannot end, so this is a possible hang, "
             "not a deadlock."]
    missing = [
        f"what {joined.label()} waits for in {where} is not in the dump: "
        f"`py-spy dump --native --pid {pid}` or `pystack remote --native {pid}` shows the C "
        "call (lock_PyThread_acquire_lock for a lock, clock_nanosleep for a sleep, a recv "
        "for a socket), and the program's source beside the dump (`stuck analyze --source "
        "DIR`) shows the line",
        f"if it is a lock acquire and {joiner.label()} (or another thread here) holds that "
        f"lock, they wait for each other (a deadlock); if it is a sleep or I/O, "
        f"{joined.label()} may still end and nothing is wrong",
        "the dump does not say how long the threads have waited: a second dump a while "
        f"later (py-spy dump --locals --pid {pid}) with both at the same lines rules out a "
        "wait that was about to end",
    ]
    res_id = joiner.waits.resource if joiner.waits is not None else None
    behind = [b for b in dump.graph.behind([joiner.id], []) if b not in (joiner.id, joined.id)]
    dump.findings.append(Finding(
        kind="hang", confidence="possible", summary=summary, explanation=" ".join(words),
        threads=[joined.id, joiner.id], resources=[res_id] if res_id else [],
        blocked_behind=behind, missing_evidence=missing,
        details={"evidence": "a join on an identified thread stopped in a call the dump "
                             "does not name; nothing seen running"}))
    dump.covered.update([joined.id, joiner.id, *behind])
