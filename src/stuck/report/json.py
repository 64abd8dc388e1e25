"""The JSON report, schema ``stuck.report/1`` (see ``stuck/schema/report-1.json``).

``dumps``/``to_dict`` write it; ``load``/``from_dict`` read it back into the model, which is how
``stuck analyze`` reads stuck's own reports. Reading validates shape as it goes and raises
``ReportFormatError`` on anything that is not a report, never a ``KeyError``.
"""

from __future__ import annotations

import json
from importlib import resources as _resources
from typing import Any

from stuck.__about__ import __version__
from stuck.model import (
    CONFIDENCES,
    FINDING_KINDS,
    RESOURCE_KINDS,
    THREAD_STATES,
    Edge,
    Fact,
    Finding,
    Frame,
    Group,
    Process,
    Report,
    Resource,
    Snapshot,
    Source,
    Thread,
    Wait,
)

SCHEMA_ID = "stuck.report/1"


class ReportFormatError(ValueError):
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
    return d


def _thread(t: Thread) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": t.id, "tid": t.tid, "name": t.name, "state": t.state,
        "waits": _wait(t.waits), "holds": list(t.holds), "group": t.group,
        "frames": [_frame(f) for f in t.frames],
    }
    if t.daemon is not None:
        d["daemon"] = t.daemon
    if t.detail is not None:
        d["detail"] = t.detail
    if t.paste_label is not None:
        d["paste_label"] = t.paste_label
    return d


def _process(p: Process) -> dict[str, Any]:
    d: dict[str, Any] = {"pid": p.pid, "name": p.name}
    if p.file is not None:
        d["file"] = p.file
    d["threads"] = [_thread(t) for t in p.threads]
    return d


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


def to_dict(report: Report) -> dict[str, Any]:
    snap = report.snapshot
    out: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "tool": {"name": "stuck", "version": __version__},
        "source": {"kind": snap.source.kind, "format": snap.source.format,
                   "files": list(snap.source.files)},
        "taken_at": snap.taken_at,
        "processes": [_process(p) for p in snap.processes],
        "resources": [_resource(r) for r in snap.resources],
        "findings": [_finding(f) for f in report.findings],
        "groups": [{"id": g.id, "threads": list(g.threads), "state": g.state,
                    "frames": [_frame(f) for f in g.frames]} for g in report.groups],
    }
    if snap.notes:
        out["notes"] = list(snap.notes)
    if snap.facts:
        out["facts"] = [{"name": f.name, "value": f.value, "text": f.text} for f in snap.facts]
    return out


def dumps(report: Report, indent: int | None = 2) -> str:
    return json.dumps(to_dict(report), indent=indent, ensure_ascii=False)


# --- reading -------------------------------------------------------------------------------


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
                    at=_maybe_frame(_get(w, "at", dict, None, "wait")))
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
                          wakers=_maybe_strs(_get(r, "wakers", list, None, "resource")))
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
    snap = Snapshot(source=source, processes=processes, resources=resources,
                    taken_at=_get(doc, "taken_at", (int, float), None),
                    notes=[str(n) for n in _get(doc, "notes", list, [])],
                    facts=[Fact(name=_get(f, "name", str, where="fact"),
                                value=_get(f, "value", int, where="fact"),
                                text=_get(f, "text", str, where="fact"))
                           for f in _get(doc, "facts", list, [])])
    return Report(snapshot=snap, findings=findings, groups=groups)


def loads(text: str) -> Report:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportFormatError(f"not JSON: {exc}") from None
    return from_dict(doc)
