"""``--save DIR``: the raw evidence of a capture, to attach to a bug report.

``DIR/evidence.json`` holds everything read (the kernel's own text per thread and fd, each
tool's output), which ``stuck analyze DIR`` turns into the same report again. Each tool's
output is also written as plain text (``DIR/PID.gdb.txt``, ``PID.py-spy.txt``, ``PID.jcmd.txt``)
and the report as ``report.txt`` and ``report.json``, for people reading the attachment.
"""

from __future__ import annotations

import json
from pathlib import Path

from stuck.capture.evidence import Evidence, EvidenceFormatError, from_dict
from stuck.model import Report

EVIDENCE = "evidence.json"


def save(ev: Evidence, rep: Report, directory: str) -> None:
    from stuck.report import json as json_report
    from stuck.report import text as text_report

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / EVIDENCE).write_text(json.dumps(ev.to_dict(), indent=1, ensure_ascii=False),
                                encoding="utf-8")
    for pe in ev.processes:
        for tool, text in pe.tools.items():
            (out / f"{pe.pid}.{tool}.txt").write_text(text, encoding="utf-8")
    (out / "report.json").write_text(json_report.dumps(rep), encoding="utf-8")
    (out / "report.txt").write_text(text_report.render(rep), encoding="utf-8")


def is_saved(path: str) -> bool:
    p = Path(path)
    return p.is_dir() and (p / EVIDENCE).is_file()


def load(path: str) -> Evidence:
    """The evidence saved in ``path`` (a directory, or its evidence.json)."""
    p = Path(path)
    if p.is_dir():
        p = p / EVIDENCE
    try:
        doc = json.loads(p.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        raise EvidenceFormatError(f"{p} is not JSON: {exc}") from None
    return from_dict(doc)
