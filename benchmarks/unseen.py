"""Score `stuck analyze` on the unseen set (tests/fixtures/unseen/): dumps of small programs
written after the rules, in shapes the dump zoo does not have, each against its program's
truth, with the zoo's scorer.

Prints the zoo's table by runtime and capture style, with both scores: right against the
program's truth alone, and right for what the text shows (where the capture lacks the evidence
the verdict needs: every stuck thread named by a finding of the right kind or by a `possible`
hang that says what to capture next). Then the cases that are not right, marking those right
for what the text shows. Run:

    python benchmarks/unseen.py [--write]

`--write` puts the table and the list into tests/fixtures/unseen/README.md (between the
unseen-table markers).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UNSEEN = ROOT / "tests" / "fixtures" / "unseen"
BEGIN, END = "<!-- unseen-table:begin -->", "<!-- unseen-table:end -->"

# The fixture sets' scripts are loaded as the tests load them (tests/dumps/loading.py).
sys.path.insert(0, str(ROOT))
from tests.dumps.loading import load_script  # noqa: E402


def load_scoring() -> ModuleType:
    return load_script("unseen_scoring", UNSEEN / "scoring.py")


def not_right(outcomes: list[Any]) -> str:
    """The cases not right against the truth, each with whether it is right for what the text
    shows, and what stuck said."""
    lines = ["| case | truth | lacks the evidence its verdict needs | right for what the text "
             "shows | stuck said |", "|---|---|---|---|---|"]
    for o in outcomes:
        if o.right:
            continue
        said = "; ".join(f.split(":", 1)[0] for f in o.findings) or "nothing"
        lines.append(f"| {o.id} | {o.truth['verdict']} | {'yes' if o.lacks_evidence else 'no'} "
                     f"| {'**yes**' if o.right_for_text else 'no'} | {said} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="update the table in the README")
    args = ap.parse_args()
    unseen = load_scoring()
    scoring = unseen.zoo_scoring()
    start = time.perf_counter()
    outcomes = unseen.score_all()
    elapsed = time.perf_counter() - start
    text = (scoring.markdown(scoring.table(outcomes)) + "\n\nCases not right against the "
            "program's truth:\n\n" + not_right(outcomes))
    print(text)
    print(f"\n{len(outcomes)} cases scored in {elapsed:.1f} s")
    if args.write:
        readme = UNSEEN / "README.md"
        doc = readme.read_text()
        if BEGIN not in doc:
            raise SystemExit(f"no {BEGIN} marker in {readme}")
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                     lambda _: f"{BEGIN}\n{text}\n{END}", doc, flags=re.S)
        readme.write_text(new)
        print(f"wrote the table into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
