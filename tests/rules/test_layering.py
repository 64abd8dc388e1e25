"""``stuck.rules`` reads the model only: importing it loads no source of facts.

A rule that reached into the live runtime, a dump parser, a capture tool or the explorer would
work for that source alone; the rules must give the same verdict on the same snapshot whatever
made it.
"""

from __future__ import annotations

import subprocess
import sys

SOURCES = ("stuck.runtime", "stuck.dumps", "stuck.capture", "stuck.explore", "stuck.analysis")


def test_importing_the_rules_loads_no_source_of_facts() -> None:
    code = ("import sys, stuck.rules, stuck.rules.engine\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('stuck.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert "stuck.rules.knot" in out  # the package really was imported
    loaded = [m for m in out if m.startswith(SOURCES)]
    assert loaded == [], f"stuck.rules imports {loaded}"
