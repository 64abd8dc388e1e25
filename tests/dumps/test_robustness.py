"""Dumps are untrusted: truncated, shuffled, mutated or concatenated input must either parse
or fail with UnrecognisedInput, and the work must grow linearly with the input."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.dumps.helpers import CORPUS, GENERATED, analyse_text, dump_text
from tests.work import growth

from stuck.errors import UnrecognisedInput

SAMPLES = [dump_text(p) for p in [*sorted(CORPUS.glob("*.txt")), *sorted(GENERATED.glob("*.txt"))]
           if p.stat().st_size < 200_000]


def survives(text: str) -> None:
    try:
        report = analyse_text(text)
    except UnrecognisedInput:
        return
    for f in report.findings:  # whatever is claimed refers to real threads
        tids = report.snapshot.thread_map()
        assert all(t in tids for t in f.threads + f.blocked_behind)


COMMON = settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@COMMON
@given(st.sampled_from(SAMPLES), st.floats(0, 1))
def test_truncated(text: str, cut: float) -> None:
    survives(text[: int(len(text) * cut)])


@COMMON
@given(st.sampled_from(SAMPLES), st.randoms(use_true_random=False))
def test_shuffled_lines(text: str, rnd) -> None:  # type: ignore[no-untyped-def]
    lines = text.splitlines()
    rnd.shuffle(lines)
    survives("\n".join(lines))


@COMMON
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.floats(0, 1), st.text(max_size=6)),
                                          max_size=12))
def test_mutated(text: str, edits: list[tuple[float, str]]) -> None:
    for where, repl in edits:
        i = int(len(text) * where)
        text = text[:i] + repl + text[i + len(repl):]
    survives(text)


@COMMON
@given(st.lists(st.sampled_from(SAMPLES), min_size=2, max_size=4))
def test_concatenated(texts: list[str]) -> None:
    survives("\n".join(texts))


@COMMON
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    survives(text)


def _go_dump(n: int) -> str:
    block = ("goroutine {i} [semacquire, 3 minutes]:\n"
             "sync.runtime_Semacquire(0xc000{i:06x})\n\t/go/src/runtime/sema.go:62 +0x25\n"
             "sync.(*Mutex).Lock(0xc000{i:06x})\n\t/go/src/sync/mutex.go:81 +0x47\n"
             "main.worker(0xc000{j:06x})\n\t/app/main.go:{i} +0x1\n"
             "created by main.main\n\t/app/main.go:9 +0x2\n\n")
    return "".join(block.format(i=i, j=(i + 1) % n) for i in range(n))


def _gdb_dump(n: int) -> str:
    block = ("Thread {i} (Thread 0x7f00{i:08x} (LWP {i})):\n"
             "#0  futex_wait (private=0, expected=2, futex_word=0x5600{i:08x}) at f.h:146\n"
             "#1  __GI___lll_lock_wait (futex=0x5600{i:08x}, private=0) at l.c:49\n"
             "#2  ___pthread_mutex_lock (mutex=0x5600{i:08x}) at m.c:93\n"
             "#3  0x0000 in worker (arg=0x0) at w.c:{i}\n\n")
    return "".join(block.format(i=i) for i in range(1, n + 1))


HOSTILE_LINES = [
    "(" * 20000 + ")" * 20000,
    "goroutine 1 [" + "a, " * 30000,
    "#0  " + "0x1 in " * 20000,
    "$1 = " + "{" * 30000,
    "[  1.0] " + "(" * 10000 + "){" * 10000,
    "1 2 x y " + "f+0x1 " * 20000,
    "Thread 1 (" * 10000,
]


def _best_of(fn, text: str, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    # CPU time of this thread, not wall-clock time: a loaded machine does not change it.
    # Backtracking happens inside one C regex call, which tests/work.py cannot count.
    best = float("inf")
    for _ in range(runs):
        start = time.thread_time()
        fn(text)
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("line", HOSTILE_LINES, ids=range(len(HOSTILE_LINES)))
def test_hostile_single_lines_scale_linearly(line: str) -> None:
    # Backtracking on a hostile line shows as superlinear growth in the line's length: doubling
    # the line four times must cost about 16x, not 256x (measured against itself, never against
    # a wall-clock bound).
    short, long = line[: len(line) // 16], line
    t_short = _best_of(survives, (short + "\n") * 4)
    t_long = _best_of(survives, (long + "\n") * 4)
    assert t_long / max(t_short, 1e-3) < 80


@pytest.mark.parametrize("make", [_go_dump, _gdb_dump], ids=["go", "gdb"])
def test_parse_and_analysis_scale_linearly(make) -> None:  # type: ignore[no-untyped-def]
    # Work counted, not timed (tests/work.py): 4x the input is ~4x the work when linear,
    # ~16x when quadratic; the bound holds on any machine, however loaded.
    ratio = growth(analyse_text, make(500), make(2000))
    assert ratio < 6, ratio


_LINE = re.compile(r"[^\n]*\n")


def _rescanning_parser(text: str) -> int:  # each line searched for from the start again
    count, pos = 0, 0
    while True:
        m = _LINE.search(text[pos:])
        if m is None:
            return count
        count, pos = count + 1, pos + m.end()


def _linear_parser(text: str) -> int:
    return sum(1 for _ in _LINE.finditer(text))


def _pairwise_parser(text: str) -> int:  # every line compared with every other one
    lines = text.splitlines()
    return sum(1 for a in lines for b in lines if a == b)


@pytest.mark.parametrize(("parser", "linear"), [(_linear_parser, True),
                                                 (_rescanning_parser, False),
                                                 (_pairwise_parser, False)],
                         ids=["linear", "rescanning", "pairwise"])
def test_counted_work_tells_linear_from_quadratic(parser, linear: bool) -> None:  # type: ignore[no-untyped-def]
    # The measure the linearity tests rely on sees a quadratic pattern, whether its cost is
    # in Python loops (counted bytecode) or inside one regex call per line (counted text).
    small, big = "a line\n" * 200, "a line\n" * 800
    assert (growth(parser, small, big, prefix=__name__) < 6) is linear


def test_graph_cycle_detection_is_iterative_on_long_chains(tmp_path: Path) -> None:
    report = analyse_text(_go_dump(20000))  # a 20,000-goroutine ring, no recursion limit hit
    assert report.snapshot.threads()
