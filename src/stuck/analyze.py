"""``stuck analyze FILE…``: read thread dumps, name why the program is stuck.

Every file (``-`` is stdin) is parsed with the formats it contains (or ``--format``), the
results are merged into one Snapshot and analysed once, so a paste with a gdb session and a
goroutine dump of the same service is read as a whole. Exit 0: nothing found; 1: findings;
2: unreadable or unrecognised input, with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import click

from stuck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, UnrecognisedInput

BIG_INPUT = 8 << 20  # bytes: show progress on a terminal above this


def _read(path: str) -> str:
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    return data.decode("utf-8", errors="replace")


def _fail(message: str) -> None:
    click.echo(f"stuck analyze: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.command("analyze", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", default="auto", show_default=True,
              help="Dump format: auto, gdb, go, jstack, faulthandler, pyspy, pystack, "
                   "python (any of the three), linux, procstat, json.")
@click.option("--json", "json_out", is_flag=False, flag_value="-", default=None,
              metavar="[FILE]", help="Write the stuck.report/1 JSON (to FILE, or stdout).")
@click.option("--html", "html_out", default=None, metavar="FILE",
              help="Write an HTML report to FILE.")
def analyze_command(files: tuple[str, ...], fmt: str, json_out: str | None,
                    html_out: str | None) -> None:
    """Read thread dumps (gdb, Go, jstack, Python, Linux, FreeBSD, stuck JSON) and report
    deadlocks, stalls, lock-order problems and hangs."""
    from stuck.analysis import analyze
    from stuck.dumps import Loaded, merge, parse_text

    report = _saved_capture(files)
    if report is not None:
        _emit(report, json_out, html_out)
    results = []
    for path in files:
        try:
            text = _read(path)
        except OSError as exc:
            _fail(f"cannot read {path}: {exc.strerror or exc}")
        try:
            parsed = _parse_with_progress(text, fmt, path, parse_text)
        except UnrecognisedInput as exc:
            _fail(f"{path}: {exc}")
        except RecursionError:
            _fail(f"{path}: input nested too deeply to read")
        for _, result in parsed:
            for proc in result.processes:  # each finding can then name its file
                proc.file = proc.file or ("<stdin>" if path == "-" else path)
        results.extend(parsed)
    loaded: Loaded = merge(results, list(files))
    _emit(analyze(loaded.snapshot, loaded.stated, loaded.inferred), json_out, html_out)


def _saved_capture(files: tuple[str, ...]):  # type: ignore[no-untyped-def]
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
        return report(load(saved[0]))
    except (OSError, EvidenceFormatError) as exc:
        _fail(f"{saved[0]}: {exc}")
    return None


def _emit(report, json_out: str | None, html_out: str | None) -> None:  # type: ignore[no-untyped-def]
    from stuck.report import json as json_report
    if json_out is not None:
        if json_out == "-":
            json_report.write(report, sys.stdout)
            sys.stdout.write("\n")
        else:
            _write_with(json_out, lambda out: json_report.write(report, out))
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


def _parse_with_progress(text: str, fmt: str, path: str, parse_text):  # type: ignore[no-untyped-def]
    if len(text) < BIG_INPUT or not sys.stderr.isatty():
        return [(name, r) for name, r in parse_text(text, fmt)]
    from rich.console import Console
    with Console(stderr=True).status(f"reading {len(text) >> 20} MB from {path}…"):
        return [(name, r) for name, r in parse_text(text, fmt)]


def _print_text(report) -> None:  # type: ignore[no-untyped-def]
    from stuck.report import text as text_report
    out = text_report.render(report)
    if not sys.stdout.isatty():
        click.echo(out, nl=False)
        return
    from rich.console import Console
    from rich.text import Text
    console = Console(highlight=False)
    styles = {"DEADLOCK": "bold red", "STALL": "bold magenta", "LOCK-ORDER": "bold yellow",
              "HANG": "bold yellow", "stuck:": "bold"}
    for line in out.splitlines():
        styled = Text(line)  # plain Text: dump content is never read as markup
        for word, style in styles.items():
            if line.startswith(word):
                styled.stylize(style, 0, len(word))
        console.print(styled)
