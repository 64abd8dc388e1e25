"""``stuck analyze FILE…``: read thread dumps, name why the program is stuck.

The files (``-`` is stdin) are one paste split over files: their text is made plain
(``stuck.dumps.paste``) and read as one, in the order given, so a ``thread apply all bt`` in
one file and the ``print *mutex`` output in another are read together, as gdb printed them. A
saved stuck JSON report is read on its own and merged. The result is analysed once. Exit 0:
nothing found; 1: findings; 2: unreadable input, or input that holds no dump, with a one-line
message.

Reports are never written over an input: ``--json`` alone (or ``--json -``) writes to stdout
and never takes the next word as the file to write (``--json=FILE`` names the file). A saved
report or a new ``.json`` name right after a bare ``--json`` is refused with exit 2: whether
the user meant to read it or to write it cannot be told, and either guess is a trap (a report
merged with last run's, or an input overwritten).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TextIO

import click

from stuck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, StuckError, UnrecognisedInput
from stuck.model import Process, Report

BIG_INPUT = 8 << 20  # bytes: show progress on a terminal above this


def _read(path: str) -> str:
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    return data.decode("utf-8", errors="replace")


def _fail(message: str) -> NoReturn:
    click.echo(f"stuck analyze: {message}", err=True)
    sys.exit(EXIT_USAGE)


class JsonValueTrap(StuckError, ValueError):
    """The word after a bare ``--json`` looks like the file to write: refused, see
    ``json_value_args``."""


def _is_saved_report(path: str) -> bool:
    from stuck.dumps.stuckjson import detect
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return detect(head.decode("utf-8", errors="replace"))


def json_value_args(args: list[str]) -> list[str]:
    """Command-line arguments with a bare ``--json`` made explicit: it always means stdout
    (``--json=-``; ``--json -`` too), and the word after it stays an input. When that word is
    a saved stuck report, or a ``.json`` name that does not exist, the user most likely meant
    it as the file to write (``stuck analyze dump.txt --json r.json``): raise
    ``JsonValueTrap`` rather than merge last run's report into this one or fail to read it."""
    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out.extend(args[i:])
            break
        if a == "--json":
            nxt = args[i + 1] if i + 1 < len(args) else None
            out.append("--json=-")
            i += 2 if nxt == "-" else 1
            if nxt is not None and nxt != "-" and not nxt.startswith("-") and (
                    _is_saved_report(nxt)
                    or (nxt.lower().endswith(".json") and not os.path.exists(nxt))):
                what = "a saved stuck report" if os.path.exists(nxt) else "a new .json name"
                raise JsonValueTrap(
                    f"{nxt} after a bare --json is {what}; a bare --json writes to stdout: "
                    f"write --json={nxt} to write the report there, or put {nxt} before the "
                    "options to read it")
            continue
        out.append(a)
        i += 1
    return out


class _AnalyzeCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            explicit = json_value_args(list(args))
        except JsonValueTrap as exc:
            _fail(str(exc))
        return super().parse_args(ctx, explicit)


def _same_file(out: str, inputs: tuple[str, ...]) -> str | None:
    """The input ``out`` would overwrite, if any."""
    if out == "-":
        return None
    target = Path(out)
    for path in inputs:
        if path == "-":
            continue
        p = Path(path)
        try:
            if target.exists() and p.exists() and target.samefile(p):
                return path
        except OSError:
            pass
        if target.resolve() == p.resolve():
            return path
    return None


@click.command("analyze", cls=_AnalyzeCommand,
               context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", default="auto", show_default=True,
              help="Dump format: auto, gdb, go, jstack, jdkdump (jcmd Thread.dump_to_file), faulthandler, pyspy, pystack, "
                   "python (any of the three), linux, procstat, json.")
@click.option("--json", "json_out", default=None, metavar="[FILE]",
              help="Write the stuck.report/1 JSON: to stdout (--json, --json -) or to FILE "
                   "(--json=FILE; a bare --json never takes the next word as FILE). Never "
                   "over an input.")
@click.option("--html", "html_out", default=None, metavar="FILE",
              help="Write an HTML report to FILE (never over an input).")
@click.option("--source", "sources", multiple=True, metavar="DIR",
              help="Where the source files the dump names can be read, when not at the "
                   "paths it prints (repeatable): the locks a Python thread holds, and what a "
                   "Go goroutine's code can reach, are read from them.")
def analyze_command(files: tuple[str, ...], fmt: str, json_out: str | None,
                    html_out: str | None, sources: tuple[str, ...] = ()) -> None:
    """Read thread dumps (gdb, Go, jstack, Python, Linux, FreeBSD, stuck JSON) and report
    deadlocks, stalls, lock-order problems and hangs. Several files are read as one paste."""
    from stuck.analysis import analyze
    from stuck.dumps import Loaded, merge, parse_text
    from stuck.dumps.stuckjson import detect as is_report

    for out in (json_out, html_out):
        if out is not None and (clash := _same_file(out, files)) is not None:
            _fail(f"will not write the report over the input {clash}; name another file "
                  "(--json=FILE, --html FILE)")
    report = _saved_capture(files, sources)
    if report is not None:
        _emit(report, json_out, html_out)
    results = []
    texts: list[tuple[str, str]] = []  # (path, text) of the dump files: one paste
    for path in files:
        try:
            text = _read(path)
        except OSError as exc:
            _fail(f"cannot read {path}: {exc.strerror or exc}")
        if is_report(text):  # a saved report is read on its own, then merged
            results.extend(_parse_file(text, fmt, path, parse_text))
        else:
            texts.append((path, text))
    if texts:
        joined = texts[0][1] if len(texts) == 1 else "\n".join(t for _, t in texts)
        where = " + ".join("<stdin>" if p == "-" else p for p, _ in texts)
        parsed = _parse_file(joined, fmt, where, parse_text)
        if len(texts) > 1:
            _name_files(parsed, texts, fmt, parse_text)
        results.extend(parsed)
    loaded: Loaded = merge(results, list(files), sources)
    _emit(analyze(loaded.snapshot, loaded.stated, loaded.inferred, unsure=loaded.unsure,
                  sources=sources), json_out,
          html_out)


def _name_files(parsed, texts: list[tuple[str, str]], fmt: str, parse_text) -> None:  # type: ignore[no-untyped-def]
    """Several dumps are read as one paste (an owner printed in one file belongs to a thread
    in another); each process still names the file it came from, so each finding can. A
    process is matched by its pid and threads against each file read alone; one that only
    the whole paste makes (or that several files show alike) keeps the joined name."""
    def signature(proc: Process) -> tuple[object, ...]:
        return proc.pid, tuple(t.id for t in proc.threads[:8]), len(proc.threads)

    owner: dict[tuple[object, ...], str | None] = {}
    for path, text in texts:
        try:
            alone = parse_text(text, fmt)
        except (UnrecognisedInput, RecursionError):
            continue
        for _, result in alone:
            for proc in result.processes:
                key = signature(proc)
                name = "<stdin>" if path == "-" else path
                owner[key] = name if owner.get(key, name) == name else None
    for _, result in parsed:
        for proc in result.processes:
            found = owner.get(signature(proc))
            if found is not None:
                proc.file = found


def _saved_capture(files: tuple[str, ...], sources: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """The report of a ``stuck capture --save DIR`` directory, rebuilt from its evidence."""
    from stuck.capture.save import is_saved
    saved = [f for f in files if is_saved(f)]
    if not saved:
        return None
    if len(files) > 1:
        _fail(f"{saved[0]} is a saved capture: analyze it on its own")
    from stuck.capture import report
    from stuck.capture.evidence import EvidenceFormatError
    from stuck.capture.save import load
    try:
        return report(load(saved[0]), sources)
    except (OSError, EvidenceFormatError) as exc:
        _fail(f"{saved[0]}: {exc}")


def _said_once(report: Report) -> Report:
    """``report`` for a reader: a note already given under a finding it weakens (what a
    capture could not read of a process in it) is not said again after the finding. The JSON
    keeps every note as the source stated it."""
    from dataclasses import replace
    told = {m for f in report.findings for m in f.missing_evidence}
    notes = [n for n in report.snapshot.notes if n not in told]
    if len(notes) == len(report.snapshot.notes):
        return report
    return replace(report, snapshot=replace(report.snapshot, notes=notes))


def _emit(report, json_out: str | None, html_out: str | None) -> None:  # type: ignore[no-untyped-def]
    from stuck.report import json as json_report
    if json_out is not None:
        if json_out == "-":
            json_report.write(report, sys.stdout)
            sys.stdout.write("\n")
        else:
            _write_with(json_out, lambda out: json_report.write(report, out))
    report = _said_once(report)
    if html_out is not None:
        from stuck.report import html
        _write_with(html_out, lambda out: html.write(report, out))
    if json_out != "-":
        _print_text(report)
    sys.exit(EXIT_FINDINGS if report.findings else EXIT_OK)


def _write_with(path: str, writer: Callable[[TextIO], None]) -> None:
    """Stream a report into ``path`` (through a temporary file: never half a report)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            writer(out)
            out.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _fail(f"cannot write {path}: {exc.strerror or exc}")


def _parse_file(text: str, fmt: str, path: str, parse_text):  # type: ignore[no-untyped-def]
    """Parse results of one input (``path`` names it in messages and findings)."""
    try:
        parsed = _parse_with_progress(text, fmt, path, parse_text)
    except UnrecognisedInput as exc:
        _fail(f"{path}: {exc}")
    except RecursionError:
        _fail(f"{path}: input nested too deeply to read")
    for _, result in parsed:
        for proc in result.processes:  # each finding can then name its file
            proc.file = proc.file or ("<stdin>" if path == "-" else path)
    return parsed


def _parse_with_progress(text: str, fmt: str, path: str, parse_text):  # type: ignore[no-untyped-def]
    if len(text) < BIG_INPUT or not sys.stderr.isatty():
        return [(name, r) for name, r in parse_text(text, fmt)]
    from rich.console import Console
    with Console(stderr=True).status(f"reading {len(text) >> 20} MB from {path}…"):
        return [(name, r) for name, r in parse_text(text, fmt)]


# Line prefix -> style, first match wins: the verdict stands out, what is missing recedes.
TERMINAL_STYLES: tuple[tuple[str, str], ...] = (
    ("DEADLOCK", "bold red"), ("STALL", "bold magenta"), ("LOCK-ORDER", "bold yellow"),
    ("HANG", "bold yellow"), ("stuck:", "bold"), ("  ┌", "red"), ("  │", "red"),
    ("  └", "red"), ("  Blocked behind it", "yellow"), ("  from ", "dim"),
    ("  Not shown by the source", "dim"), ("    - ", "dim"), ("Threads (", "bold"),
)


def _print_text(report) -> None:  # type: ignore[no-untyped-def]
    from stuck.report import text as text_report
    out = text_report.render(report)
    if not sys.stdout.isatty():
        click.echo(out, nl=False)
        return
    from rich.console import Console
    from rich.text import Text
    console = Console(highlight=False)
    for line in out.splitlines():
        console.print(styled_line(line, Text))


def styled_line(line: str, text_type):  # type: ignore[no-untyped-def]
    """``line`` as rich Text with the style of its prefix. Plain Text, never markup: dump
    content like ``[bold]`` is shown as written."""
    styled = text_type(line)
    for prefix, style in TERMINAL_STYLES:
        if line.startswith(prefix):
            word = prefix if prefix.isupper() else line
            styled.stylize(style, 0, len(word))
            break
    return styled
