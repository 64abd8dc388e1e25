"""The bug zoo: real-world blocking bugs re-expressed with Python's standard primitives.

Each module ``zoo.<name>`` holds one bug: ``buggy(points=None)`` and ``fixed(points=None)`` (the
programs' ``main()``: they start named threads, run them and join them) and ``META``
(:class:`zoo.meta.Meta`).  :data:`BUGS` maps every name to a :class:`ZooBug` that also carries
the plain-run hit rate measured by ``python tests/zoo/stress.py --table --write``
(stored in ``measured.json`` next to this file).

Importing the zoo runs no program and creates no thread or lock: the programs look up
``threading.Lock``, ``threading.Condition``, ``queue.Queue`` ... when they run, so tools that
swap those for instrumented versions see every primitive.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from zoo.meta import KINDS, VERDICTS, Meta, Program, ZooBug
from zoo.points import NO_POINTS, Points, Schedule

__all__ = [
    "BUGS",
    "KINDS",
    "NAMES",
    "NO_POINTS",
    "VERDICTS",
    "Meta",
    "Points",
    "Program",
    "Schedule",
    "ZooBug",
    "get",
]

#: Every zoo module, in the order of the README table.
NAMES: tuple[str, ...] = (
    "cockroach_10214",
    "cockroach_7504",
    "moby_4951",
    "cockroach_584",
    "etcd_5509",
    "cockroach_16167",
    "kubernetes_58107",
    "kubernetes_10182",
    "gateway_engine",
    "rocksdb_1297",
    "moby_25384",
    "moby_29733",
    "moby_4395",
)

MEASURED_PATH = Path(__file__).with_name("measured.json")


def _load_measured() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(MEASURED_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


def rate_text(blocked: int, runs: int) -> str:
    """``"3/200 (1.5%)"``."""
    return f"{blocked}/{runs} ({100.0 * blocked / runs:.1f}%)" if runs else "not measured"


def _build() -> dict[str, ZooBug]:
    measured = _load_measured().get("bugs", {})
    bugs: dict[str, ZooBug] = {}
    for name in NAMES:
        module = importlib.import_module(f"zoo.{name}")
        meta: Meta = module.META
        m = measured.get(name, {})
        pb, pr = m.get("buggy_blocked"), m.get("buggy_runs")
        fb, fr = m.get("fixed_blocked"), m.get("fixed_runs")
        bugs[name] = ZooBug(
            name=name,
            origin=meta.origin,
            kind=meta.kind,
            verdict=meta.verdict,
            threads=meta.threads,
            primitives=meta.primitives,
            interleaving=meta.interleaving,
            blocked=meta.blocked,
            fix=meta.fix,
            buggy=module.buggy,
            fixed=module.fixed,
            schedule={k: tuple(v) for k, v in meta.schedule.items()},
            goker=meta.goker,
            provable=meta.provable,
            plain_hit_rate=rate_text(pb, pr) if pr else "not measured",
            plain_blocked=pb,
            plain_runs=pr,
            fixed_blocked=fb,
            fixed_runs=fr,
            module=f"zoo.{name}",
        )
    return bugs


#: name -> :class:`ZooBug`, for every program of the zoo.
BUGS: dict[str, ZooBug] = _build()


def get(name: str) -> ZooBug:
    """The zoo bug called ``name`` (``KeyError`` with the known names otherwise)."""
    try:
        return BUGS[name]
    except KeyError:
        raise KeyError(f"no zoo bug {name!r}; known: {', '.join(NAMES)}") from None
