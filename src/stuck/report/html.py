"""The HTML report: one self-contained page (no scripts, no external assets), rendered with
Jinja2 with autoescaping on, so nothing from a dump can become markup."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from stuck.__about__ import __version__
from stuck.model import Report
from stuck.report.text import clean


def render(report: Report) -> str:
    env = Environment(loader=PackageLoader("stuck", "report/templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["clean"] = clean
    snap = report.snapshot
    return env.get_template("report.html.j2").render(
        report=report, snap=snap, threads=snap.thread_map(), resources=snap.resource_map(),
        version=__version__)
