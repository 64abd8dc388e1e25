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
