"""Score `stuck analyze` on the dump zoo (tests/fixtures/dumpzoo/): real dumps of small stuck
programs in C, Go, Java and Python, captured in several styles, each against the truth its
program states.

Prints a table by runtime and capture style: the cases with the right verdict and every stuck
thread named, the cases where a bystander appears in a finding, and the cases with a `certain`
finding the capture's evidence cannot support. Run:

    python benchmarks/dumpzoo.py [--programs] [--cases] [--write]

`--programs` adds how many cases of each program are right (which shapes a rule misses);
`--cases` lists every case that is not right, with what stuck said; `--write` puts the table
into tests/fixtures/dumpzoo/README.md (between the dumpzoo-table markers).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "tests" / "fixtures" / "dumpzoo"
BEGIN, END = "<!-- dumpzoo-table:begin -->", "<!-- dumpzoo-table:end -->"

# The fixture sets' scripts are loaded as the tests load them (tests/dumps/loading.py).
sys.path.insert(0, str(ROOT))
from tests.dumps.loading import load_script  # noqa: E402


def load_scoring() -> ModuleType:
    return load_script("dumpzoo_scoring", ZOO / "scoring.py")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", action="store_true", help="list every case that is not right")
    ap.add_argument("--programs", action="store_true",
                    help="also print, per program, how many of its cases are right")
    ap.add_argument("--write", action="store_true", help="update the table in the zoo's README")
    args = ap.parse_args()
    scoring = load_scoring()
    start = time.perf_counter()
    outcomes = scoring.score_all()
    elapsed = time.perf_counter() - start
    text = scoring.markdown(scoring.table(outcomes))
    print(text)
    print(f"\n{len(outcomes)} cases scored in {elapsed:.1f} s")
    if args.programs:
        per: dict[str, list[bool]] = {}
        for o in outcomes:
            per.setdefault(f"{o.case['runtime']}/{o.case['program']}", []).append(o.right)
        print("\n| program | verdict | right |\n|---|---|---|")
        for name, rights in sorted(per.items()):
            verdict = next(o.truth["verdict"] for o in outcomes
                           if f"{o.case['runtime']}/{o.case['program']}" == name)
            print(f"| {name} | {verdict} | {sum(rights)}/{len(rights)} |")
    if args.cases:
        for o in outcomes:
            if o.right and o.parsed and not (o.bystanders or o.unjustified_certain
                                             or o.false_edges or o.overconfident):
                continue
            print(f"\n{o.id}: expected {o.truth['verdict']} naming {o.truth.get('stuck')}")
            if o.error:
                print(f"  error: {o.error}")
            if o.missing:
                print(f"  not named: {o.missing}")
            if o.bystanders:
                print(f"  bystanders in a finding: {o.bystanders}")
            for e in o.false_edges:
                print(f"  false edge: {e}")
            for c in o.overconfident:
                print(f"  above possible from an excerpt: {c}")
            for u in o.unjustified_certain:
                print(f"  unjustified certain: {u}")
            for f in o.findings or ["(no finding)"]:
                print(f"  said: {f}")
    if args.write:
        readme = ZOO / "README.md"
        doc = readme.read_text()
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END),
                     lambda _: f"{BEGIN}\n{text}\n{END}", doc, flags=re.S)
        readme.write_text(new)
        print(f"wrote the table into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
