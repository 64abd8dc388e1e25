"""The JSON report, schema ``stuck.report/1`` (see ``stuck/schema/report-1.json``).

``dumps``/``to_dict`` write it; ``load``/``from_dict`` read it back into the model, which is how
``stuck analyze`` reads stuck's own reports. Reading validates shape as it goes and raises
``ReportFormatError`` on anything that is not a report, never a ``KeyError``.
"""

from __future__ import annotations

import io
import json
import json.encoder
from collections.abc import Callable, Iterator
from importlib import resources as _resources
from typing import Any, TextIO

from stuck.__about__ import __version__
from stuck.errors import StuckError
from stuck.model import (
    CONFIDENCES,
    FINDING_KINDS,
    RESOURCE_KINDS,
    THREAD_STATES,
    Edge,
    EventLoop,
    Fact,
    Finding,
    Frame,
    Group,
    Process,
    Recorded,
    Report,
    Resource,
    Signal,
    SignalHandler,
    Snapshot,
    Source,
    Thread,
    Wait,
)

SCHEMA_ID = "stuck.report/1"


class ReportFormatError(StuckError, ValueError):
    """The input is not a ``stuck.report/1`` document."""


def schema() -> dict[str, Any]:
    """The JSON Schema of the report, as shipped in the package."""
    text = _resources.files("stuck").joinpath("schema/report-1.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _frame(f: Frame) -> dict[str, Any]:
    d: dict[str, Any] = {"function": f.function, "file": f.file, "line": f.line}
    if f.module is not None:
        d["module"] = f.module
    return d


def _wait(w: Wait | None) -> dict[str, Any] | None:
    if w is None:
        return None
    d: dict[str, Any] = {"resource": w.resource, "timeout": w.timeout, "durable": w.durable}
    if w.since is not None:
        d["since"] = w.since
    if w.duration is not None:
        d["duration"] = round(w.duration, 3)
    if w.at is not None:
        d["at"] = _frame(w.at)
    if w.direction is not None:
        d["direction"] = w.direction
    if w.op is not None:
        d["op"] = w.op
    return d


def _resource(r: Resource) -> dict[str, Any]:
    d: dict[str, Any] = {"id": r.id, "kind": r.kind, "label": r.label, "address": r.address,
                         "owners": list(r.owners)}
    if r.created_at is not None:
        d["created_at"] = _frame(r.created_at)
    if r.acquired_at:
        d["acquired_at"] = {k: _frame(v) for k, v in r.acquired_at.items()}
    if r.wakers is not None:
        d["wakers"] = list(r.wakers)
    if r.referenced_by:
        d["referenced_by"] = list(r.referenced_by)
    for name in ("inode", "queued", "capacity"):
        value = getattr(r, name)
        if value is not None:
            d[name] = value
    if r.recorded is not None:
        d["recorded"] = _recorded(r.recorded)
    return d


def _recorded(rec: Recorded) -> dict[str, Any]:
    """A live source's facts: only the fields set (see model.Recorded)."""
    d: dict[str, Any] = {}
    for name in _RECORDED_FIELDS:
        value = getattr(rec, name)
        if value is None or value == [] or (value is False and name not in ("reachable", "served")) or (
                value == 0 and name in ("rounds", "in_flight")):
            continue
        d[name] = list(value) if isinstance(value, list) else value
    if rec.signals:
        d["signals"] = [{"op": g.op, "thread": g.thread, "at": g.at, "waiters": g.waiters,
                         **({"where": g.where} if g.where is not None else {})}
                        for g in rec.signals]
    return d


_RECORDED_FIELDS = ("epoch", "wakers", "getters", "size", "maxsize", "jobs", "parties", "waiting",
                    "rounds", "broken", "is_set", "free", "in_flight", "joins", "task",
                    "running", "pool", "pool_label", "pool_workers", "pool_capacity",
                    "pool_shutdown", "pool_pending", "reachable", "served", "set_by")
_RECORDED_TYPES: dict[str, type | tuple[type, ...]] = {
    "epoch": int, "wakers": list, "getters": list, "size": int, "maxsize": int, "jobs": list, "parties": int,
    "waiting": int, "rounds": int, "broken": bool, "is_set": bool, "free": int,
    "in_flight": int, "joins": str, "task": str, "running": bool, "pool": str,
    "pool_label": str, "pool_workers": list, "pool_capacity": int, "pool_shutdown": bool,
    "pool_pending": list, "reachable": bool, "served": bool, "set_by": str,
}


def _read_recorded(d: Any) -> Recorded | None:
    if d is None:
        return None
    rec = Recorded()
    for name in _RECORDED_FIELDS:
        value = _get(d, name, _RECORDED_TYPES[name], None, "recorded")
        if value is not None:
            setattr(rec, name, [str(v) for v in value] if isinstance(value, list) else value)
    rec.signals = [Signal(op=_get(g, "op", str, where="signal"),
                          thread=_get(g, "thread", str, where="signal"),
                          at=float(_get(g, "at", (int, float), where="signal")),
                          waiters=_get(g, "waiters", int, where="signal"),
                          where=_get(g, "where", str, None, "signal"))
                   for g in _get(d, "signals", list, [], "recorded")]
    return rec


def _thread(t: Thread, grouped: bool = False) -> dict[str, Any]:
    """``grouped``: the thread's group is in the report and holds its frames (identical by
    construction), so they are written once there instead of once per thread."""
    d: dict[str, Any] = {"id": t.id}
    # tid, name and group are left out when unknown (the reader's default): at 100,000
    # goroutines without names that is a quarter of the report.
    if t.tid is not None:
        d["tid"] = t.tid
    if t.name is not None:
        d["name"] = t.name
    d["state"] = t.state
    d["waits"] = _wait(t.waits)
    d["holds"] = list(t.holds)
    if t.group is not None:
        d["group"] = t.group
    d["frames"] = [] if grouped else [_frame(f) for f in t.frames]
    if grouped:
        d["frames_in_group"] = True
    if t.daemon is not None:
        d["daemon"] = t.daemon
    if t.detail is not None:
        d["detail"] = t.detail
    if t.paste_label is not None:
        d["paste_label"] = t.paste_label
    if t.ended is not None:
        d["ended"] = t.ended
    return d


def _process_head(p: Process) -> dict[str, Any]:
    d: dict[str, Any] = {"pid": p.pid, "name": p.name}
    if p.file is not None:
        d["file"] = p.file
    if p.complete is not None:
        d["complete"] = p.complete
    if p.no_progress_for is not None:
        d["no_progress_for"] = p.no_progress_for
    if p.signal_handlers is not None:
        d["signal_handlers"] = [{"signal": h.signal, "handler": h.handler, "where": h.where,
                                 "module": h.module, "names": list(h.names)}
                                for h in p.signal_handlers]
    return d


def _read_signal_handlers(items: list[Any] | None) -> list[SignalHandler] | None:
    if items is None:
        return None
    out: list[SignalHandler] = []
    for h in items:
        if not isinstance(h, dict):
            raise ReportFormatError("a signal handler of a process is not an object")
        out.append(SignalHandler(signal=_get(h, "signal", str, where="signal handler"),
                                 handler=_get(h, "handler", str, where="signal handler"),
                                 where=_get(h, "where", str, None, "signal handler"),
                                 module=_get(h, "module", str, None, "signal handler"),
                                 names=[str(n) for n in _get(h, "names", list, [],
                                                             "signal handler")]))
    return out


def _grouped(report: Report) -> set[str]:
    """Ids of the groups written in the report: their threads' frames are written there."""
    return {g.id for g in report.groups}


def _finding(f: Finding) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": f.kind, "confidence": f.confidence,
        "threads": list(f.threads), "resources": list(f.resources),
        "cycle": [{"thread": e.thread, "waits_for": e.waits_for, "held_by": e.held_by}
                  for e in f.cycle],
        "blocked_behind": list(f.blocked_behind),
        "summary": f.summary, "explanation": f.explanation,
        "missing_evidence": list(f.missing_evidence),
    }
    if f.details:
        d["details"] = f.details
    return d


def _group(g: Group) -> dict[str, Any]:
    return {"id": g.id, "threads": list(g.threads), "state": g.state,
            "frames": [_frame(f) for f in g.frames]}


def _head(report: Report) -> dict[str, Any]:
    snap = report.snapshot
    return {"schema": SCHEMA_ID, "tool": {"name": "stuck", "version": __version__},
            "source": {"kind": snap.source.kind, "format": snap.source.format,
                       "files": list(snap.source.files)},
            "taken_at": snap.taken_at}


def _tail(snap: Snapshot) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if snap.notes:
        out["notes"] = list(snap.notes)
    if snap.facts:
        out["facts"] = [{"name": f.name, "value": f.value, "text": f.text} for f in snap.facts]
    if snap.loops:
        out["loops"] = [_loop(lp) for lp in snap.loops]
    return out


_LOOP_FIELDS = ("thread", "ready", "timers", "io", "idle", "runnable_threads")


def _loop(lp: EventLoop) -> dict[str, Any]:
    """An event loop's facts: the ones known."""
    d: dict[str, Any] = {"id": lp.id, "tasks": list(lp.tasks), "stalled": lp.stalled}
    for name in _LOOP_FIELDS:
        value = getattr(lp, name)
        if value is not None:
            d[name] = list(value) if isinstance(value, list) else value
    if lp.signal_handlers:
        d["signal_handlers"] = list(lp.signal_handlers)
    if not lp.tasks_read:
        d["tasks_read"] = False
    return d


def _read_loop(d: Any) -> EventLoop:
    return EventLoop(
        id=_get(d, "id", str, where="loop"),
        thread=_get(d, "thread", str, None, "loop"),
        tasks=[str(t) for t in _get(d, "tasks", list, [], "loop")],
        ready=_get(d, "ready", int, None, "loop"),
        timers=_get(d, "timers", int, None, "loop"),
        io=_get(d, "io", int, None, "loop"),
        idle=_get(d, "idle", bool, None, "loop"),
        stalled=_get(d, "stalled", bool, False, "loop"),
        runnable_threads=_maybe_strs(_get(d, "runnable_threads", list, None, "loop")),
        signal_handlers=[str(s) for s in _get(d, "signal_handlers", list, [], "loop")],
        tasks_read=_get(d, "tasks_read", bool, True, "loop"))


def to_dict(report: Report) -> dict[str, Any]:
    """The report as one JSON-compatible object (what ``write`` writes, built in memory)."""
    snap = report.snapshot
    grouped = _grouped(report)
    out = _head(report)
    out["processes"] = [{**_process_head(p),
                         "threads": [_thread(t, t.group in grouped) for t in p.threads]}
                        for p in snap.processes]
    out["resources"] = [_resource(r) for r in snap.resources]
    out["findings"] = [_finding(f) for f in report.findings]
    out["groups"] = [_group(g) for g in report.groups]
    out.update(_tail(snap))
    return out


def _refuse(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _make_encoder() -> Callable[[Any], str]:
    """One encoder for every item. ``JSONEncoder.encode`` builds a new C encoder on each call,
    which for 100,000 small thread objects costs twice the encoding itself; the C encoder is
    built once here (the standard library's own fast path, with the same output), and the
    public encoder is used where CPython's accelerator is absent."""
    public = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return public
    try:
        fast = make(None, _refuse, json.encoder.encode_basestring, None, ": ", ", ", False,
                    False, True)
        probe: dict[str, Any] = {"a": [1, None, True, 2.5, "é\n"], "b": {}}
        if "".join(fast(probe, 0)) != public(probe):
            return public
    except Exception:
        return public
    return lambda obj: "".join(fast(obj, 0))


_ENCODE = _make_encoder()


def _key(name: str) -> str:
    return _ENCODE(name) + ": "


def _items(out: TextIO, items: Iterator[dict[str, Any]], indent: str) -> None:
    """A JSON array of ``items``, one per line, written as they are made (a few hundred
    lines per write)."""
    encode = _ENCODE
    opened = False
    lines: list[str] = []
    for item in items:
        lines.append(indent + encode(item))
        if len(lines) >= 512:
            out.write((",\n" if opened else "[\n") + ",\n".join(lines))
            opened = True
            lines.clear()
    if lines:
        out.write((",\n" if opened else "[\n") + ",\n".join(lines))
        opened = True
    out.write("\n" + indent[:-2] + "]" if opened else "[]")


def write(report: Report, out: TextIO) -> None:
    """Write the report to ``out`` in one pass, an object per line: the same document as
    ``to_dict``, without holding it all in memory. Threads of a group get their frames from
    the group (``frames_in_group``), so a stack shared by 10,000 goroutines is written once."""
    snap = report.snapshot
    grouped = _grouped(report)
    out.write("{\n")
    for k, v in _head(report).items():
        out.write(f"  {_key(k)}{_ENCODE(v)},\n")
    out.write(f"  {_key('processes')}")
    first = True
    for p in snap.processes:
        out.write(("[\n" if first else ",\n") + "    {")
        first = False
        for k, v in _process_head(p).items():
            out.write(f"{_key(k)}{_ENCODE(v)}, ")
        out.write(_key("threads"))
        _items(out, (_thread(t, t.group in grouped) for t in p.threads), "      ")
        out.write("}")
    out.write("[]" if first else "\n  ]")
    for name, items in (("resources", (_resource(r) for r in snap.resources)),
                        ("findings", (_finding(f) for f in report.findings)),
                        ("groups", (_group(g) for g in report.groups))):
        out.write(f",\n  {_key(name)}")
        _items(out, items, "    ")
    for k, v in _tail(snap).items():
        out.write(f",\n  {_key(k)}{_ENCODE(v)}")
    out.write("\n}")


def dumps(report: Report) -> str:
    buf = io.StringIO()
    write(report, buf)
    return buf.getvalue()


# --- reading -------------------------------------------------------------------------------


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _get(d: Any, key: str, kind: type | tuple[type, ...], default: Any = ..., where: str = "") -> Any:
    if not isinstance(d, dict):
        raise ReportFormatError(f"{where or 'report'}: expected an object")
    if key not in d:
        if default is ...:
            raise ReportFormatError(f"{where or 'report'}: missing field {key!r}")
        return default
    value = d[key]
    if value is None and default is not ... and default is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ReportFormatError(f"{where or 'report'}: field {key!r} has the wrong type")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> Any:
    if value not in allowed:
        raise ReportFormatError(f"unknown {what} {value!r}")
    return value


def _read_frame(d: Any) -> Frame:
    return Frame(function=_get(d, "function", str, where="frame"),
                 file=_get(d, "file", str, None, "frame"),
                 line=_get(d, "line", int, None, "frame"),
                 module=_get(d, "module", str, None, "frame"))


def _maybe_strs(items: list[Any] | None) -> list[str] | None:
    return None if items is None else [str(i) for i in items]


def _maybe_frame(d: Any) -> Frame | None:
    return None if d is None else _read_frame(d)


def _read_thread(d: Any) -> Thread:
    w = _get(d, "waits", dict, None, "thread")
    wait = None
    if w is not None:
        wait = Wait(resource=_get(w, "resource", str, where="wait"),
                    timeout=_get(w, "timeout", (int, float), None, "wait"),
                    durable=_get(w, "durable", bool, True, "wait"),
                    since=_get(w, "since", (int, float), None, "wait"),
                    duration=_get(w, "duration", (int, float), None, "wait"),
                    at=_maybe_frame(_get(w, "at", dict, None, "wait")),
                    direction=_get(w, "direction", str, None, "wait"),
                    op=_get(w, "op", str, None, "wait"))
    return Thread(
        id=_get(d, "id", str, where="thread"),
        tid=_get(d, "tid", int, None, "thread"),
        name=_get(d, "name", str, None, "thread"),
        state=_one_of(_get(d, "state", str, "unknown", "thread"), THREAD_STATES, "thread state"),
        frames=[_read_frame(f) for f in _get(d, "frames", list, [], "thread")],
        holds=[str(h) for h in _get(d, "holds", list, [], "thread")],
        waits=wait,
        group=_get(d, "group", str, None, "thread"),
        daemon=_get(d, "daemon", bool, None, "thread"),
        detail=_get(d, "detail", str, None, "thread"),
        paste_label=_get(d, "paste_label", str, None, "thread"),
        ended=_get(d, "ended", str, None, "thread"),
    )


def from_dict(doc: Any) -> Report:
    if _get(doc, "schema", str) != SCHEMA_ID:
        raise ReportFormatError(f"not a {SCHEMA_ID} document")
    src = _get(doc, "source", dict)
    source = Source(kind=_one_of(_get(src, "kind", str, where="source"),
                                 ("dump", "live", "explore", "proc"), "source kind"),
                    format=_get(src, "format", str, None, "source"),
                    files=[str(f) for f in _get(src, "files", list, [], "source")])
    processes = [Process(pid=_get(p, "pid", int, None, "process"),
                         name=_get(p, "name", str, None, "process"),
                         file=_get(p, "file", str, None, "process"),
                         complete=_get(p, "complete", bool, None, "process"),
                         no_progress_for=_float(_get(p, "no_progress_for", (int, float), None,
                                                     "process")),
                         signal_handlers=_read_signal_handlers(
                             _get(p, "signal_handlers", list, None, "process")),
                         threads=[_read_thread(t) for t in _get(p, "threads", list, [], "process")])
                 for p in _get(doc, "processes", list)]
    resources = [Resource(id=_get(r, "id", str, where="resource"),
                          kind=_one_of(_get(r, "kind", str, "unknown", "resource"),
                                       RESOURCE_KINDS, "resource kind"),
                          label=_get(r, "label", str, "", "resource"),
                          address=_get(r, "address", str, None, "resource"),
                          owners=[str(o) for o in _get(r, "owners", list, [], "resource")],
                          created_at=_maybe_frame(_get(r, "created_at", dict, None, "resource")),
                          acquired_at={str(k): _read_frame(v) for k, v in
                                       _get(r, "acquired_at", dict, {}, "resource").items()},
                          wakers=_maybe_strs(_get(r, "wakers", list, None, "resource")),
                          referenced_by=_maybe_strs(
                              _get(r, "referenced_by", list, None, "resource")),
                          inode=_get(r, "inode", int, None, "resource"),
                          queued=_get(r, "queued", int, None, "resource"),
                          capacity=_get(r, "capacity", int, None, "resource"),
                          recorded=_read_recorded(_get(r, "recorded", dict, None, "resource")))
                 for r in _get(doc, "resources", list)]
    findings = []
    for f in _get(doc, "findings", list, []):
        findings.append(Finding(
            kind=_one_of(_get(f, "kind", str, where="finding"), FINDING_KINDS, "finding kind"),
            confidence=_one_of(_get(f, "confidence", str, where="finding"), CONFIDENCES,
                               "confidence"),
            summary=_get(f, "summary", str, "", "finding"),
            explanation=_get(f, "explanation", str, "", "finding"),
            threads=[str(t) for t in _get(f, "threads", list, [], "finding")],
            resources=[str(r) for r in _get(f, "resources", list, [], "finding")],
            cycle=[Edge(thread=_get(e, "thread", str, where="edge"),
                        waits_for=_get(e, "waits_for", str, where="edge"),
                        held_by=_get(e, "held_by", str, where="edge"))
                   for e in _get(f, "cycle", list, [], "finding")],
            blocked_behind=[str(t) for t in _get(f, "blocked_behind", list, [], "finding")],
            missing_evidence=[str(m) for m in _get(f, "missing_evidence", list, [], "finding")],
            details=_get(f, "details", dict, {}, "finding"),
        ))
    groups = [Group(id=_get(g, "id", str, where="group"),
                    threads=[str(t) for t in _get(g, "threads", list, [], "group")],
                    frames=[_read_frame(fr) for fr in _get(g, "frames", list, [], "group")],
                    state=_one_of(_get(g, "state", str, "unknown", "group"), THREAD_STATES,
                                  "thread state"))
              for g in _get(doc, "groups", list, [])]
    by_group = {g.id: g for g in groups}
    for p in processes:
        for t in p.threads:
            if t.group is not None and not t.frames and t.group in by_group:
                t.frames = list(by_group[t.group].frames)  # written once, in the group
    snap = Snapshot(source=source, processes=processes, resources=resources,
                    taken_at=_get(doc, "taken_at", (int, float), None),
                    notes=[str(n) for n in _get(doc, "notes", list, [])],
                    facts=[Fact(name=_get(f, "name", str, where="fact"),
                                value=_get(f, "value", int, where="fact"),
                                text=_get(f, "text", str, where="fact"))
                           for f in _get(doc, "facts", list, [])],
                    loops=[_read_loop(lp) for lp in _get(doc, "loops", list, [])])
    return Report(snapshot=snap, findings=findings, groups=groups)


def loads(text: str) -> Report:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportFormatError(f"not JSON: {exc}") from None
    return from_dict(doc)
