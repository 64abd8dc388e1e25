"""stuck's own JSON report (``stuck.report/1``): read back so a saved report can be analysed
again, or merged with a dump of another process. Lock-order findings are kept as stated (a
snapshot cannot re-derive them); everything else is recomputed from the snapshot.
"""

from __future__ import annotations

from stuck.dumps import ParseResult
from stuck.errors import UnrecognisedInput
from stuck.report.json import SCHEMA_ID, ReportFormatError, loads

NAME = "json"


def detect(text: str) -> bool:
    head = text[:4096].lstrip()
    return head.startswith("{") and SCHEMA_ID in head


def parse(text: str) -> ParseResult:
    try:
        report = loads(text)
    except (ReportFormatError, RecursionError) as exc:
        raise UnrecognisedInput(f"not a readable stuck report: {exc}") from None
    snap = report.snapshot
    return ParseResult(processes=snap.processes, resources=snap.resources, notes=snap.notes,
                       stated=[f for f in report.findings if f.kind == "lock-order"],
                       facts=snap.facts, loops=snap.loops)
