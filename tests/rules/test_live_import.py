"""The live runtime imports ``stuck.rules`` when the user's program starts (the watchdog uses
``evaluate`` and ``hang.hang_finding``); the rules for facts read from stacks are loaded only
when a dump or a capture is judged, so they add nothing to that start."""

from __future__ import annotations

import subprocess
import sys

READ_RULES = ("advice", "contention", "deadlock", "evidence", "graph", "known", "quiescence",
              "reading", "signaller", "standstill", "stated", "unwoken")


def _loaded(code: str) -> list[str]:
    code += "\nprint('\\n'.join(sorted(m for m in sys.modules if m.startswith('stuck.rules.'))))"
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    return [m.removeprefix("stuck.rules.") for m in out]


def test_the_live_imports_load_no_rule_for_read_facts() -> None:
    loaded = _loaded("import stuck.rules, stuck.rules.engine, stuck.rules.hang")
    assert "engine" in loaded and "hang" in loaded
    assert [m for m in loaded if m in READ_RULES] == []


def test_judging_read_facts_loads_them() -> None:
    loaded = _loaded("from stuck.model import Snapshot, Source\n"
                     "from stuck.rules import ReadFacts, evaluate\n"
                     "evaluate(Snapshot(source=Source(kind='dump')), read=ReadFacts())")
    assert set(READ_RULES) - {"advice", "contention", "signaller"} <= set(loaded)
