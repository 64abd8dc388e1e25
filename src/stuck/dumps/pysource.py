"""Python source beside a dump: which locks a thread holds, read from the ``with`` blocks and
``acquire()`` calls around the lines its frames stop at.

A Python dump (py-spy, pystack, faulthandler, gdb's py-bt) shows where each thread is, never
which locks it holds. When the source files it names are readable (as named, or found under a
``--source DIR``), the code says more: a thread stopped on ``with lock_b:`` inside
``with lock_a:`` waits for ``lock_b`` and holds ``lock_a``. Two such threads in opposite order
are a lock-order deadlock.

What the code cannot say is whether two threads' ``lock_a`` are one object. Only three kinds
of match are made:

- a name bound at the top level of its module (``lock_a = threading.Lock()``), or an attribute
  of one (``registry.lock``): one object per module, whichever thread names it;
- ``self.<attr>`` where the dump prints ``self`` with its address (py-spy ``--locals``,
  pystack ``--locals``): one object per address;
- ``self.<attr>`` where the frame that called the method names its receiver on the calling
  line, bound at the top level of its module (``bus.publish("hello")``: ``self`` is ``bus``,
  so ``self.lock`` is ``bus.lock``), followed outward through ``self.helper()`` calls.

An attribute every assignment in the file binds to an ``RLock`` (``self.lock =
threading.RLock()``) is an RLock, not a plain lock.

Anything else (a parameter, a local) names a lock of that frame alone.

The code after a line says one more thing: which thread would end a wait. A thread blocked in
``jobs.get()`` on a module-level queue whose every ``jobs.put(...)`` in the module comes later
in a function another blocked thread is inside, above that line, waits for that thread; if that
thread's own wait leads back to the first (it joins it, or waits for a lock it holds), the two
wait for each other. The owners found this
way are recorded as inferred, with the file and line they were read from, so a finding that
rests on them is at most ``probable``; the source on disk may also differ from the code that
ran, which the finding says. Files are read only if they end in ``.py`` and are small; their
text is never executed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from stuck.model import Frame, Process, Resource, ResourceKind, Snapshot, Thread, Wait
from stuck.stacks import sourcepath
from stuck.stacks.python import CALL_ACTIVITY, SIGNAL_WAITS, SLEEP_ONLY, bare, is_stdlib

MAX_SOURCE = 2 << 20  # bytes: a larger file is not read
MAX_FILES = 200
SCAN_UP = 400  # lines above a frame's line searched for enclosing blocks
FRAMES = 24  # frames of a thread read, innermost first

_WITH = re.compile(r"^(\s*)(?:async\s+)?with\s+(.+?)\s*:\s*(?:#.*)?$")
# The line a thread stands on may also carry the block's body: ``with audit: pass``.
_WITH_HERE = re.compile(r"^(\s*)(?:async\s+)?with\s+([^:#]+):(?:\s*(?:#.*)?$|\s+\S)")
_ACQUIRE = re.compile(r"^(\s*)(?:\w+\s*=\s*)?([A-Za-z_][\w.]{0,200})\.acquire\(\s*\)")
_RELEASE = re.compile(r"^\s*([A-Za-z_][\w.]{0,200})\.release\(\s*\)")
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s")
_EXPR = re.compile(r"^[A-Za-z_][\w.]{0,200}$")
_TOP_ASSIGN = re.compile(
    r"^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*){0,20})\s*(?::[^=]{1,200})?=(?!=)\s*(.*)$")
_ADDRESS = re.compile(r"\bat (0x[0-9a-fA-F]{1,16})>")


@dataclass(slots=True)
class _Source:
    path: str
    lines: list[str]
    globals: dict[str, str]  # module-level name -> the right-hand side it is bound to
    sleeps_only: dict[int, bool] = field(default_factory=dict)  # line -> _sleeps_only's answer
    # attribute -> whether every ``.attr = ...`` in the file binds an RLock
    reentrant_attrs: dict[str, bool] = field(default_factory=dict)


class SourceReader:
    """Source files found for the paths a dump names, each read at most once."""

    def __init__(self, dirs: Iterable[str] = (), cwd: str | None = None,
                 scope: str = "") -> None:
        self.dirs = [d for d in dirs if d]
        self.cwd = cwd  # the program's working directory: where its relative paths start
        self.scope = scope  # keeps one process's module-level locks apart from another's
        self.cache: dict[str, _Source | None] = {}

    def candidates(self, path: str) -> list[str]:
        # As the dump names it (a relative path from the program's own directory when known),
        # then under each DIR.
        return sourcepath.candidates(path, self.dirs, self.cwd)

    def get(self, path: str | None) -> _Source | None:
        if not path or not path.endswith(".py"):
            return None
        if path in self.cache:
            return self.cache[path]
        found: _Source | None = None
        if len(self.cache) < MAX_FILES:
            for cand in self.candidates(path):
                try:
                    if not os.path.isfile(cand) or os.path.getsize(cand) > MAX_SOURCE:
                        continue
                    with open(cand, encoding="utf-8", errors="replace") as fh:
                        lines = fh.read().splitlines()
                except OSError:
                    continue
                found = _Source(cand, lines, _module_globals(lines))
                break
        self.cache[path] = found
        return found


def _module_globals(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if not (line[:1].isalpha() or line[:1] == "_") \
                or line.startswith(("def ", "class ", "if ", "for ", "while ", "with ")):
            continue
        for statement in line.split(";", 20):  # "a = Lock(); b = Lock()"
            m = _TOP_ASSIGN.match(statement.strip())
            if m:
                for name in m.group(1).split(","):  # "a, b = Guarded(), Guarded()"
                    out.setdefault(name.strip(), m.group(2))
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _with_items(text: str) -> list[str]:
    """``a.lock, b as x`` -> the lock-like expressions: ``["a.lock", "b"]``."""
    items = []
    for part in text.strip().strip("()").split(","):
        expr = part.strip().split(" as ", 1)[0].strip()
        if _EXPR.match(expr):
            items.append(expr)
    return items


@dataclass(slots=True)
class _Held:
    expr: str
    line: int  # 1-based line of the with / acquire
    text: str


def enclosing_locks(src: _Source, line: int) -> tuple[list[_Held], list[str]]:
    """(locks held by enclosing blocks at ``line`` of ``src``, expressions the line itself
    waits for: ``with X:`` or ``X.acquire()``)."""
    lines = src.lines
    if not 1 <= line <= len(lines):
        return [], []
    here = lines[line - 1]
    waits: list[str] = []
    m = _WITH.match(here) or _WITH_HERE.match(here)
    if m:
        waits = _with_items(m.group(2))
    else:
        a = _ACQUIRE.match(here)
        if a:
            waits = [a.group(2)]
    held: list[_Held] = []
    level = _indent(here)
    released: set[str] = set()
    for n in range(line - 2, max(-1, line - 2 - SCAN_UP), -1):
        text = lines[n]
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        ind = _indent(text)
        r = _RELEASE.match(text)
        if r and ind <= level:
            released.add(r.group(1))
            continue
        if ind < level:
            if _DEF.match(text):
                break  # the function's own start: nothing further out is held by this frame
            wm = _WITH.match(text)
            if wm:
                held.extend(_Held(e, n + 1, stripped) for e in _with_items(wm.group(2)))
            level = ind
            if level == 0:
                break
        a = _ACQUIRE.match(text)
        if a and ind <= level and a.group(2) not in released:
            held.append(_Held(a.group(2), n + 1, stripped))
    return held, waits


def _reentrant(src: _Source, expr: str) -> bool:
    """True when the source binds ``expr`` to an RLock: a module-level name, or an attribute
    (``self.lock``) that every assignment in the file (``self.lock = threading.RLock()``)
    makes an RLock."""
    base, _, attr = expr.rpartition(".")
    if not base:
        return "RLock" in src.globals.get(expr, "")
    if "RLock" in src.globals.get(expr.split(".", 1)[0], ""):
        return True
    known = src.reentrant_attrs.get(attr)
    if known is None:
        assign = re.compile(rf"\.{re.escape(attr)}\s*(?::[^=]{{0,200}})?=(?!=)\s*(.*)$")
        bound = [m.group(1) for m in map(assign.search, src.lines) if m is not None]
        known = src.reentrant_attrs[attr] = bool(bound) and all("RLock(" in b for b in bound)
    return known


def _identity(src: _Source, expr: str, frame_locals: dict[str, str] | None) -> str | None:
    """A key naming the object ``expr`` is, when the source and the dump allow one."""
    base, _, rest = expr.partition(".")
    if base in src.globals:
        return f"{src.path}:{expr}"
    if base == "self" and rest and frame_locals:
        m = _ADDRESS.search(frame_locals.get("self", "")[:400])
        if m:
            return f"{m.group(1).lower()}.{rest}"
    return None


@dataclass(slots=True)
class _Receiver:
    key: str  # the identity of ``<name>.<rest>``, as ``_identity`` makes it for a global
    expr: str  # ``bus.lock``: how the program names the object
    how: str  # where that was read, for the finding's evidence


CALLERS_UP = 8  # ``self.helper()`` calls followed outward at most this far


def _receiver(t: Thread, i: int, expr: str, reader: SourceReader) -> _Receiver | None:
    """``self.<rest>`` in frame ``i`` of ``t``, named through the frames that called it when
    the dump prints no address for ``self``: the calling line ``bus.publish("hello")``, with
    ``bus`` bound at the top level of the caller's module, says that ``self`` in ``publish``
    is ``bus`` (one object per module, as ``_identity`` takes a global to be). A caller that
    is itself a method called as ``self.publish(...)`` is followed outward the same way. None
    where a line names no single receiver, a frame between is not the program's, or its
    source is unreadable."""
    base, _, rest = expr.partition(".")
    if base != "self" or not rest:
        return None
    frames = t.frames
    for k in range(i, min(i + CALLERS_UP, len(frames) - 1)):
        callee, caller = frames[k], frames[k + 1]
        if caller.line is None or is_stdlib(caller.file or ""):
            return None
        src = reader.get(caller.file)
        if src is None or not 1 <= caller.line <= len(src.lines):
            return None
        code = src.lines[caller.line - 1]
        call = re.compile(rf"(?<![\w.])([A-Za-z_]\w*)\s*\.\s*{re.escape(bare(callee.function))}"
                          r"\s*\(")
        names = {m.group(1) for m in call.finditer(code)}
        if len(names) != 1:
            return None
        (name,) = names
        if name == "self":
            continue  # a method calling another on the same object: ask its own caller
        if name not in src.globals:
            return None
        where = f"{os.path.basename(src.path)}:{caller.line}"
        return _Receiver(f"{src.path}:{name}.{rest}", f"{name}.{rest}",
                         f"`self` is `{name}`, as the calling line {where} "
                         f"`{code.strip()[:120]}` says")
    return None


def read_python_sources(snapshot: Snapshot, inferred: dict[str, str],
                        dirs: Iterable[str] = (),
                        frame_locals: dict[tuple[str, int], dict[str, str]] | None = None,
                        threads: list[Thread] | None = None, cwd: str | None = None,
                        scope: str = "") -> None:
    """Add the holds and waits the source shows to the Python threads of ``snapshot``.

    ``frame_locals``: (thread id, frame index) -> the frame's locals as the dump printed them,
    where a parser kept them (``self`` with its address). ``threads``: only these (one process
    of several), whose relative file names start at ``cwd``; ``scope`` prefixes the ids of the
    locks found, so two processes running one module do not share its locks.
    """
    python: dict[int, bool] = {}  # id of a frame list (parsers share them) -> has Python
    py_threads = []
    for t in snapshot.threads() if threads is None else threads:
        key = id(t.frames)
        has = python.get(key)
        if has is None:
            has = python[key] = any((f.file or "").endswith(".py") for f in t.frames[:8])
        if has:
            py_threads.append(t)
    if not py_threads:
        return
    reader = SourceReader(dirs, cwd, scope)
    resources = snapshot.resource_map()
    _stdlib_timeouts(snapshot, py_threads, resources, reader.dirs)
    for t in py_threads:
        _read_thread(t, reader, snapshot, resources, inferred, frame_locals or {})
    _guess_join_targets(py_threads, resources, inferred)
    _later_signallers(py_threads, reader, resources, inferred)
    unseen = [t for t in py_threads if t.state == "unknown" and t.frames
              and t.detail not in ("active", "gil")]
    if unseen:
        where = ", ".join(f"{t.label()} at {t.frames[0].where()}" for t in unseen[:4]) + (
            f" and {len(unseen) - 4} more" if len(unseen) > 4 else "")
        ids = {id(t) for t in unseen}
        pids = {p.pid for p in snapshot.processes if any(id(t) in ids for t in p.threads)}
        pid = next(iter(pids)) if len(pids) == 1 and None not in pids else "PID"
        snapshot.notes.append(
            f"{len(unseen)} thread(s) stopped inside a call the dump does not show ({where}): "
            "a lock acquire, a sleep and I/O look alike there, so what they wait for is not "
            f"claimed; `py-spy dump --native --pid {pid}` or `pystack remote {pid}` shows the "
            "call, and with the program's source (`stuck analyze --source DIR`) the line "
            "says it")


def _stdlib_timeouts(snapshot: Snapshot, threads: list[Thread], resources: dict[str, Resource],
                     dirs: list[str]) -> None:
    """A thread whose innermost Python frame is in the standard library, on the line of a
    blocking call's timed form (``stuck.dumps.pystdlib``), waits with a timeout: it can run
    again by itself, so its wait is not durable. Where the library's source cannot be read,
    or is of another version, the wait stays as the dump shows it."""
    from stuck.dumps.pystdlib import StdlibReader

    process_of = {id(t): p for p in snapshot.processes for t in p.threads}
    readers: dict[int, StdlibReader] = {}
    unread: list[tuple[Thread, Frame, Process | None]] = []
    for t in threads:
        if t.waits is None or not t.waits.durable:
            continue
        res = resources.get(t.waits.resource)
        if res is None or res.kind not in _TIMED_KINDS:
            continue
        f = next((f for f in t.frames if (f.file or "").endswith(".py")), None)
        if f is None or not is_stdlib(f.file or ""):
            continue
        proc = process_of.get(id(t))
        reader = readers.get(id(proc))
        if reader is None:
            reader = readers[id(proc)] = StdlibReader(
                proc.python_version if proc else None, proc.executable if proc else None,
                list(dirs))
        if reader.timed(f.file, f.line, f.function):
            t.waits.durable = False
        elif f.file and reader.lines(f.file) is None:
            unread.append((t, f, proc))
    _note_unread_stdlib(snapshot, unread)


# Where CPython writes a wait's timed and untimed forms on different lines (every timed wait of
# threading and queue ends in the first).
_TWO_FORMS = frozenset({("threading.py", "wait"), ("queue.py", "get"), ("queue.py", "put")})


def _note_unread_stdlib(snapshot: Snapshot,
                        unread: list[tuple[Thread, Frame, Process | None]]) -> None:
    """Where it matters (a process with no thread running, whose waits decide whether it is
    stuck), say which waits the standard library could have told timed from untimed, had the
    one the dump names been readable here."""
    named = [(t, f, p) for t, f, p in unread
             if p is not None and (p.python_version or os.path.isabs(f.file or ""))
             and (os.path.basename(f.file or ""), bare(f.function)) in _TWO_FORMS
             and not any(o.state == "running" for o in p.threads)]
    if not named:
        return
    _, f0, p0 = named[0]
    assert p0 is not None
    library = (f"CPython {p0.python_version}" if p0.python_version
               else os.path.dirname(f0.file or ""))
    who = ", ".join(f"{t.label()} at {f.where()}" for t, f, _ in named[:4]) + (
        f" and {len(named) - 4} more" if len(named) > 4 else "")
    snapshot.notes.append(
        f"{len(named)} thread(s) wait in the standard library ({who}), whose line would say "
        f"whether the wait has a timeout, but the library the dump names ({library}) is not "
        "readable here in that version: they are read as waits without one; "
        "`stuck analyze --source DIR` with DIR holding that Python's threading.py and queue.py, "
        "or a dump by `pystack remote PID` (it prints each line), tells")


def _read_thread(t: Thread, reader: SourceReader, snapshot: Snapshot,
                 resources: dict[str, Resource], inferred: dict[str, str],
                 frame_locals: dict[tuple[str, int], dict[str, str]]) -> None:
    first_user = True
    for i, f in enumerate(t.frames[:FRAMES]):
        if f.line is None or is_stdlib(f.file or ""):
            continue
        src = reader.get(f.file)
        if src is None:
            first_user = False
            continue
        held, waits = enclosing_locks(src, f.line)
        local = frame_locals.get((t.id, i))
        if first_user and waits and _waits_on_lock(t, resources, innermost=i == 0):
            named = _identity(src, waits[0], local)
            via = None if named is not None else _receiver(t, i, waits[0], reader)
            key = reader.scope + (named or (via.key if via else f"{t.id}:{waits[0]}"))
            rid = _resource(snapshot, resources, key, waits[0], src, f,
                            via.expr if via else None)
            if via is not None:
                inferred.setdefault(rid, (
                    f"read from the source, not the dump: {via.how}; that it is the same "
                    "object for every thread naming it, and that the file on disk is the code "
                    "that ran, is assumed"))
            _set_wait(t, rid, f, resources)
        elif first_user and i == 0 and t.state == "unknown":
            _classify_call(t, src, f, snapshot, resources)
        elif first_user and t.waits is not None and t.waits.durable:
            _timed_call(t, src, f, resources)
        if first_user and t.state == "sleeping" and _sleeps_only(src, f.line, t):
            t.detail = SLEEP_ONLY
        first_user = False
        for h in held:
            held_key = _identity(src, h.expr, local)
            via = None if held_key is not None else _receiver(t, i, h.expr, reader)
            if via is not None:
                held_key = via.key
            if held_key is None:
                continue
            held_key = reader.scope + held_key
            rid = _resource(snapshot, resources, held_key, h.expr, src, f,
                            via.expr if via else None)
            if t.waits is not None and t.waits.resource == rid and _reentrant(src, h.expr):
                continue
            res = resources[rid]
            if t.id not in res.owners:
                res.owners.append(t.id)
            if rid not in t.holds:
                t.holds.append(rid)
            where = os.path.basename(src.path)
            inferred.setdefault(rid, (
                f"read from the source, not the dump: {where}:{h.line} `{h.text}` encloses "
                f"where {t.label()} stands ({where}:{f.line})"
                + (f", and {via.how}" if via is not None else "")
                + "; that it is the same object for every thread naming it, and that the file "
                "on disk is the code that ran, is assumed"))


_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")
_CALL_WAIT: dict[str, ResourceKind] = {
    "wait": "condition", "wait_for": "condition", "get": "queue", "put": "queue",
    "join": "thread", "result": "future", "acquire": "mutex",
}


def _classify_call(t: Thread, src: _Source, f: Frame, snapshot: Snapshot,
                   resources: dict[str, Resource]) -> None:
    """A thread the dump left unclassified, stopped in a call of its own code: the call on the
    source line says what it is doing (``time.sleep(1)``, ``sock.recv(4096)``, ``q.get()``)."""
    assert f.line is not None
    line = src.lines[f.line - 1] if 1 <= f.line <= len(src.lines) else ""
    code = line.split("#", 1)[0]
    for m in _CALL.finditer(code):
        if m.group(1) in SIGNAL_WAITS:
            # signal.pause() / sigwait(): a wait for a signal, which comes from outside the
            # process, as a socket's data does; it can run again, so it may end others' waits.
            rid = f"pysrc:{t.id}:signal"
            if rid not in resources:
                res = Resource(id=rid, kind="event", label=f"a signal ({m.group(1)})")
                resources[rid] = res
                snapshot.resources.append(res)
            t.waits = Wait(resource=rid, durable=False, at=f)
            t.state = "io"
            return
        activity = CALL_ACTIVITY.get(m.group(1))
        if activity is None:
            continue
        if activity != "blocked":
            t.state = activity
            return
        kind = _CALL_WAIT.get(m.group(1))
        if kind is None:
            return
        rid = f"pysrc:{t.id}:{m.group(1)}"
        if rid not in resources:
            what = code[:m.start()].strip().rsplit(" ", 1)[-1].rstrip(".") or m.group(1)
            res = Resource(id=rid, kind=kind,
                           label=f"{what} ({os.path.basename(src.path)}:{f.line})")
            resources[rid] = res
            snapshot.resources.append(res)
        t.waits = Wait(resource=rid, durable=True, at=f)
        t.state = "blocked"
        _timed_call(t, src, f, resources)
        return


# Blocking calls and how many positional arguments reach their timeout: wait(timeout),
# wait_for(predicate, timeout), join(timeout), result(timeout), get(block, timeout),
# put(item, block, timeout), acquire(blocking, timeout).
_TIMEOUT_AT = {"wait": 1, "wait_for": 2, "join": 1, "result": 1, "get": 2, "put": 3,
               "acquire": 2}
_TIMED_KINDS = frozenset({"condition", "event", "queue", "thread", "future", "semaphore",
                          "barrier"})
# The waits a literal timeout on the program's own line can end: those, and a lock's acquire.
_CALL_TIMED_KINDS = _TIMED_KINDS | {"mutex", "rlock"}


def _call_args(code: str, start: int) -> str | None:
    """The argument text of the call whose ``(`` is at ``start``, on this line only."""
    depth = 0
    for j in range(start, len(code)):
        c = code[j]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return code[start + 1:j]
    return None


def _timed_call(t: Thread, src: _Source, f: Frame, resources: dict[str, Resource]) -> None:
    """The line of the program's own code where ``t`` waits passes a literal timeout
    (``stop.wait(2.0)``, ``q.get(timeout=5)``, ``lock.acquire(timeout=0.5)``): the wait ends
    by itself, it is not durable. The dump's frames (py-spy, faulthandler) cannot say so
    without ``--locals``."""
    assert t.waits is not None and f.line is not None
    res = resources.get(t.waits.resource)
    if res is None or res.kind not in _CALL_TIMED_KINDS or not 1 <= f.line <= len(src.lines):
        return
    seconds = literal_timeout(src.lines[f.line - 1])
    if seconds is not None:
        t.waits.timeout = seconds
        t.waits.durable = False


def literal_timeout(line: str) -> float | None:
    """The timeout, in seconds, that the first blocking call on a line of Python passes as a
    literal (``timeout=5``, ``get(True, 2)``), 0 for a lock acquire that does not block
    (``acquire(False)``); None when there is none, or it is not a literal (a variable may
    well hold None). The line is only read, never evaluated."""
    code = line.split("#", 1)[0]
    for m in _CALL.finditer(code):
        need = _TIMEOUT_AT.get(m.group(1))
        if need is None:
            continue
        args = _call_args(code, m.end() - 1)
        if args is None:
            return None
        parts = [a.strip() for a in args.split(",") if a.strip()]
        named = {a.split("=", 1)[0].strip(): a.split("=", 1)[1].strip() for a in parts
                 if "=" in a and not a.startswith(("=", "!"))}
        positional = [a for a in parts if "=" not in a or a.startswith(("=", "!"))]
        if m.group(1) == "acquire":
            blocking = named.get("blocking", positional[0] if positional else None)
            if blocking in ("False", "0"):
                return 0.0
        timeout = named.get("timeout")
        if timeout is None and len(positional) >= need:
            timeout = positional[need - 1]
        try:
            seconds = float(timeout) if timeout is not None else None
        except ValueError:
            return None
        return seconds if seconds is not None and seconds >= 0 else None
    return None


_LOOP_FOREVER = re.compile(r"^\s*while\s+(?:True|1)\s*:\s*(?:#.*)?$")


def _sleeps_only(src: _Source, line: int, t: Thread) -> bool:
    """``line`` (a sleep) is in a ``while True:`` loop whose body calls nothing but sleep, in
    a thread other than the main one (a signal handler runs there): the thread will never run
    other code. Read from the source; the loop's body is its lines indented deeper."""
    if any(f.function == "<module>" for f in t.frames) or not 1 <= line <= len(src.lines):
        return False
    known = src.sleeps_only.get(line)
    if known is None:  # many threads sleep on one line: the loop is read once
        known = src.sleeps_only[line] = _loop_only_sleeps(src, line)
    return known


def _loop_only_sleeps(src: _Source, line: int) -> bool:
    level = _indent(src.lines[line - 1])
    start = None
    for n in range(line - 2, max(-1, line - 2 - SCAN_UP), -1):
        text = src.lines[n]
        if text.strip() and not text.strip().startswith("#") and _indent(text) < level:
            if not _LOOP_FOREVER.match(text):
                return False
            start = n
            break
    if start is None:
        return False
    loop_level = _indent(src.lines[start])
    for text in src.lines[start + 1:start + 1 + SCAN_UP]:
        code = text.split("#", 1)[0]
        if not code.strip():
            continue
        if _indent(text) <= loop_level:
            break
        calls = [m.group(1) for m in _CALL.finditer(code)]
        if any(c != "sleep" for c in calls):
            return False
    return True


def _guess_join_targets(threads: list[Thread], resources: dict[str, Resource],
                        inferred: dict[str, str]) -> None:
    """A join the dump does not identify (no ``--locals``), by a thread that holds a lock
    (read from the source) which exactly one other thread waits for: the joined thread is
    taken to be that one, the shape of a lock held across a join of the thread that needs it.
    Recorded as inferred, so a cycle through it says so; the guess may be wrong (the joined
    thread may be another), which the finding states."""
    waiting_on: dict[str, list[Thread]] = {}
    for t in threads:
        if t.waits is not None:
            waiting_on.setdefault(t.waits.resource, []).append(t)
    for t in threads:
        res = resources.get(t.waits.resource) if t.waits is not None else None
        if res is None or res.kind != "thread" or res.owners or not t.holds:
            continue
        candidates = [(w, rid) for rid in t.holds for w in waiting_on.get(rid, ()) if w is not t]
        if len(candidates) != 1:
            continue
        joined, lock = candidates[0]
        lock_name = resources[lock].label or lock
        res.owners = [joined.id]
        res.label = f"a thread to finish (taken to be {joined.label()})"
        inferred.setdefault(res.id, (
            f"the dump does not say which thread {t.label()} joins; it is taken to be "
            f"{joined.label()}, the one thread waiting for {lock_name}, which {t.label()} "
            "holds (read from the source); if it joins another thread, this is a hang "
            "behind that thread, not a cycle (`py-spy dump --locals` prints the joined "
            "thread's address)"))


MAX_SIGNAL_SITES = 8  # more signalling calls of one object than this: not read as one thread's
# What ends a wait on each kind, as a call on the object: Event.set, Condition.notify, ...
_SIGNALS: dict[str, frozenset[str]] = {
    "event": frozenset({"set"}), "condition": frozenset({"notify", "notify_all"}),
    "queue": frozenset({"put", "put_nowait"}), "semaphore": frozenset({"release"}),
}
_WAIT_ON = re.compile(r"(?<![\w.])([A-Za-z_]\w{0,100})\.(?:wait|wait_for|get|acquire)\s*\(")
_SIGNAL_ON = re.compile(r"(?<![\w.])([A-Za-z_]\w{0,100})\.(set|notify|notify_all|put|put_nowait|"
                        r"release)\s*\(")
_DEF_NAME = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)")


def _later_signallers(threads: list[Thread], reader: SourceReader,
                      resources: dict[str, Resource], inferred: dict[str, str]) -> None:
    """A thread blocked in ``started.wait()`` on a module-level Event (or Condition, Queue,
    Semaphore) whose every ``started.set()`` in the module lies, in a function another blocked
    thread is inside, after the line that thread stands on: that thread is the one that would
    signal it, once its own wait ends (main setting an Event after the ``with`` block whose
    executor shutdown joins the task waiting for it). Recorded as who the wait needs, inferred
    from the source, so a cycle through it is at most probable and says what was read."""
    blocked = [t for t in threads if t.state == "blocked" and t.waits is not None
               and t.waits.durable]
    signal_calls: dict[str, dict[str, list[tuple[int, str]]]] = {}
    by_id = {t.id: t for t in threads}
    threads_ahead: dict[tuple[str, str, str], list[tuple[Thread, int]]] = {}
    for w in blocked:
        assert w.waits is not None
        res = resources.get(w.waits.resource)
        signals = _SIGNALS.get(res.kind) if res is not None else None
        if res is None or signals is None or res.owners:
            continue
        f = next((f for f in w.frames[:FRAMES] if f.line is not None
                  and not is_stdlib(f.file or "")), None)
        src = reader.get(f.file) if f is not None else None
        if f is None or f.line is None or src is None or not 1 <= f.line <= len(src.lines):
            continue
        m = _WAIT_ON.search(src.lines[f.line - 1].split("#", 1)[0])
        if m is None or m.group(1) not in src.globals:
            continue  # only a module-level object is one object for every thread naming it
        name = m.group(1)
        calls = signal_calls.get(src.path)
        if calls is None:  # every signalling call of the file, read once
            calls = signal_calls[src.path] = {}
            for i, text in enumerate(src.lines):
                if "(" in text:
                    for sm in _SIGNAL_ON.finditer(text.split("#", 1)[0]):
                        calls.setdefault(sm.group(1), []).append((i + 1, sm.group(2)))
        sites = [(n, call) for n, call in calls.get(name, ()) if call in signals]
        if not sites or len(sites) > MAX_SIGNAL_SITES:
            continue  # signalled from many places: no single thread is the one
        key = (src.path, name, res.kind)
        ahead = threads_ahead.get(key)
        if ahead is None:
            ahead = threads_ahead[key] = _threads_ahead_of(sites, src, blocked)
        setters = [(t, at) for t, at in ahead if t is not w]
        if len(setters) != 1:
            continue  # none, or several that might each signal it
        (t, at), (line, call) = setters[0], sites[0]
        if not _waits_for(t, w, resources, by_id):
            continue  # the setter may get past its own wait: no cycle to close
        res.owners = [t.id]
        where = os.path.basename(src.path)
        inferred.setdefault(res.id, (
            f"read from the source, not the dump: `{name}.{call}()` is called only at "
            f"{where}:{line}, after the line {t.label()} stands on ({where}:{at}) in the same "
            f"function, so {t.label()} is taken to be the thread that would end "
            f"{w.label()}'s wait once its own wait ends; that no other code (another module, "
            "a callback) signals it, and that the file is the code that ran, is assumed"))


def _waits_for(t: Thread, target: Thread, resources: dict[str, Resource],
               by_id: dict[str, Thread]) -> bool:
    """Whether ``t``'s wait leads to ``target`` through the owners the dump (or the source)
    shows: ``t`` joins it, or waits for a lock held by a thread that does, and so on."""
    seen: set[str] = set()
    node: Thread | None = t
    while node is not None and node.id not in seen and node.waits is not None:
        seen.add(node.id)
        res = resources.get(node.waits.resource)
        if res is None or len(res.owners) != 1:
            return False
        if res.owners[0] == target.id:
            return True
        node = by_id.get(res.owners[0])
    return False


def _threads_ahead_of(sites: list[tuple[int, str]], src: _Source,
                      blocked: list[Thread]) -> list[tuple[Thread, int]]:
    """The blocked threads whose stack is, in ``src``, inside the function of every site and
    above it (the site comes later in the function), each with the line it stands on."""
    funcs = [_enclosing_def(src, line) for line, _ in sites]
    if any(fn is None for fn in funcs):
        return []  # a site at module level: any import could run it
    found = []
    for t in blocked:
        at = None
        for (line, _), fn in zip(sites, funcs, strict=True):
            assert fn is not None
            frame = next((g for g in t.frames[:FRAMES] if g.file == _same_file(src, g)
                          and g.function.rsplit(".", 1)[-1] == fn[1] and g.line is not None
                          and fn[0] < g.line < line <= fn[2]), None)
            if frame is None:
                break
            at = frame.line
        else:
            if at is not None:
                found.append((t, at))
    return found


def _same_file(src: _Source, g: Frame) -> str | None:
    """``g.file`` when it names the file ``src`` was read from, else None."""
    if g.file and (g.file == src.path or src.path.endswith("/" + os.path.basename(g.file))):
        return g.file
    return None


def _enclosing_def(src: _Source, line: int) -> tuple[int, str, int] | None:
    """(def line, name, last line) of the function ``line`` (1-based) is in, if any."""
    indent = _indent(src.lines[line - 1])
    for i in range(line - 2, max(-1, line - 2 - SCAN_UP), -1):
        text = src.lines[i]
        if not text.strip() or _indent(text) >= indent:
            continue
        m = _DEF_NAME.match(text)
        if m is None:
            indent = _indent(text)  # an enclosing block: keep looking further out
            continue
        body = _indent(text)
        end = i + 1
        for j in range(i + 1, len(src.lines)):
            if src.lines[j].strip() and _indent(src.lines[j]) <= body:
                break
            end = j + 1
        return i + 1, m.group(1), end
    return None


def _waits_on_lock(t: Thread, resources: dict[str, Resource], innermost: bool) -> bool:
    """The thread waits in a lock acquire (or the dump could not tell what it waits in), not
    in a wait the dump's own frames name (``Semaphore.acquire``, ``Condition.wait``): a
    semaphore's ``pool.acquire()`` on the line is no lock. A thread the kernel shows asleep on
    a futex word nobody is known to own, with no Python frame inside the line's call
    (``innermost``), sleeps in the acquire that line makes in C: a Lock's or an RLock's."""
    if t.waits is None:
        return t.state in ("unknown", "blocked")
    res = resources.get(t.waits.resource)
    if res is not None and res.kind not in ("mutex", "rlock", "unknown"):
        return False
    if innermost and t.waits.durable and res is not None and res.kind == "unknown" \
            and res.address is not None and not res.owners:
        return True
    return t.waits.resource.endswith("/wait") or "(unnamed" in t.waits.resource


def _resource(snapshot: Snapshot, resources: dict[str, Resource], key: str, expr: str,
              src: _Source, f: Frame, named: str | None = None) -> str:
    """The resource for the lock ``expr`` in ``src`` (``named``: what the program calls it
    where ``self`` was named through a caller, ``bus.lock``)."""
    rid = "pysrc:" + key
    if rid not in resources:
        kind: ResourceKind = "rlock" if _reentrant(src, expr) else "mutex"
        res = Resource(id=rid, kind=kind,
                       label=f"{named or expr} ({os.path.basename(src.path)})")
        resources[rid] = res
        snapshot.resources.append(res)
    return rid


def _set_wait(t: Thread, rid: str, f: Frame, resources: dict[str, Resource]) -> None:
    if t.waits is not None:
        t.waits.resource = rid
        if t.waits.at is None:
            t.waits.at = f
    else:
        t.waits = Wait(resource=rid, durable=True, at=f)
    t.state = "blocked"


__all__ = ["SourceReader", "enclosing_locks", "read_python_sources"]
