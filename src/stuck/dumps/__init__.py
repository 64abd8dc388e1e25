"""Dump parsers: one module per format, each turning the text of a dump into a Snapshot.

Every format module provides

- ``NAME``: the format name used by ``--format`` and in ``Source.format``;
- ``detect(text: str) -> bool``: cheap, True when the text holds a dump of this format
  anywhere (issue pastes mix formats and prose; a file may hold several dumps);
- ``parse(text: str) -> list[Process]`` plus resources: see ``ParseResult``; it reads the lines it
  understands, skips everything else, runs in linear time and never executes anything.

``load`` runs every format that ``detect`` finds (or the one asked for) and merges the results
into one Snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stuck.model import Finding, Process, Resource


@dataclass(slots=True)
class ParseResult:
    """What one format module read from a text."""

    processes: list[Process] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # gaps, truncation, lines not understood
    # Conclusions the dump states outright (a lockdep report, jstack's deadlock section).
    # Analysis checks them against the graph rather than copying them.
    stated: list[Finding] = field(default_factory=list)
