"""Shared helpers for the dump tests: fixture paths and the corpus header (test metadata,
never part of a dump: the product does not know about it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from stuck.analysis import analyze
from stuck.dumps import load_dump
from stuck.model import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "dumps"
CORPUS = FIXTURES / "corpus"
GENERATED = FIXTURES / "generated"
END_HEADER = "#### end header ####"


def dump_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if END_HEADER in text:
        text = text.split(END_HEADER, 1)[1].lstrip("\n")
    return text


def header(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text.split(END_HEADER, 1)[0] if END_HEADER in text else ""


def report_for(path: Path, fmt: str = "auto") -> Report:
    loaded = load_dump(dump_text(path), fmt, path.name)
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


def analyse_text(text: str, fmt: str = "auto") -> Report:
    loaded = load_dump(text, fmt)
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


def has_format_module(name: str) -> bool:
    return importlib.util.find_spec(f"stuck.dumps.{name}") is not None


def labels(report: Report, rids: list[str]) -> list[str]:
    res = report.snapshot.resource_map()
    return [res[r].label if r in res else r for r in rids]
