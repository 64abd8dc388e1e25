"""The Java dump parser against genuine dumps (public corpus and jstack/jhsdb runs)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.work import growth

from stuck.dumps import ParseResult, jstack
from stuck.model import Thread

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "dumps" / "corpus"
EXTRA = ROOT / "tests/fixtures/dumps/generated/extra"
HEADER_END = "#### end header ####\n"

JSTACK_RUNS = ["jstack-jdk17-deadlocks.txt", "jstack-l-jdk17-deadlocks.txt",
               "jhsdb-jstack-jdk17-deadlocks.txt", "jhsdb-jstack-locks-jdk17-deadlocks.txt"]
OTHER_FORMATS = ["01-rocksdb-5007-ingest-vs-compaction-pstack.txt",
                 "07-etcd-3929-v3-snapshot-deadlock-goroutines.txt",
                 "12-gprofiler-612-pyspy-dump.txt", "14-syzkaller-436-hung-task-rtnl-lock.txt",
                 "17-freebsd-valgrind-189-procstat-kk.txt", "19-taurus-1061-gdb-py-bt-rlock.txt",
                 "21-dockerize-2-go-all-goroutines-asleep.txt"]


def corpus(name: str) -> str:
    """A corpus file without its descriptive header (the product never sees the header)."""
    text = (CORPUS / name).read_text()
    return text.split(HEADER_END, 1)[1] if HEADER_END in text else text


def threads(result: ParseResult) -> dict[str, Thread]:
    return {t.id: t for p in result.processes for t in p.threads}


def test_jajuk_excerpt_gives_waits_and_holds_from_the_deadlock_section() -> None:
    r = jstack.parse(corpus("08-jajuk-847-java-deadlock-3threads.txt"))
    ts = threads(r)
    assert set(ts) == {"Thread-88", "Thread-80", "AWT-EventQueue-1"}
    assert ts["Thread-88"].waits is not None and ts["Thread-88"].waits.resource == "0x09583348"
    assert ts["Thread-80"].waits is not None and ts["Thread-80"].waits.resource == "0x093e4b58"
    assert sorted(ts["Thread-80"].holds) == ["0x09583348", "0x0ab3c0b0"]
    assert ts["AWT-EventQueue-1"].holds == ["0x093e4b58"]
    res = {x.id: x for x in r.resources}
    # named as the dump prints it: two locks of one class differ only by the address
    assert res["0x093e4b58"].label == "<0x093e4b58> (a java.awt.Component$AWTTreeLock)"
    assert res["0x093e4b58"].owners == ["AWT-EventQueue-1"]
    assert ts["Thread-88"].frames[0].function == "org.jajuk.base.ObserverRegistry.notifySync"
    assert ts["Thread-88"].frames[0].line == 37
    [stated] = r.stated
    assert stated.kind == "deadlock"
    assert stated.threads == ["Thread-88", "Thread-80", "AWT-EventQueue-1"]


def test_healthy_jdk21_dump() -> None:
    r = jstack.parse(corpus("22-tda-jdk21-jstack-healthy-negative.txt"))
    ts = threads(r)
    assert len(ts) == 28 and not r.stated
    assert not [t.id for t in ts.values() if t.state == "blocked"]
    loop = ts["JPS event loop"]
    assert loop.state == "io" and loop.tid == 32771
    assert "0x000000034b314548" in loop.holds  # the ReentrantLock from the ownable section
    res = {x.id: x for x in r.resources}
    assert res["0x000000034b314548"].kind == "mutex"
    fin = ts["Finalizer"]
    # Object.wait released the monitor the stack later prints as "- locked".
    assert fin.holds == [] and fin.waits is not None
    assert fin.waits.resource == "0x000000034b3000f0/wait"
    cleaner = ts["Common-Cleaner"]
    assert cleaner.state == "idle" and cleaner.waits is not None
    assert cleaner.waits.durable is False and cleaner.waits.timeout is not None
    assert fin.frames[0].module == "java.base@21.0.9"


@pytest.mark.parametrize("name", JSTACK_RUNS)
def test_generated_deadlocks(name: str) -> None:
    r = jstack.parse((EXTRA / name).read_text())
    ts = threads(r)
    res = {x.id: x for x in r.resources}
    a, b = ts["mon-a"], ts["mon-b"]
    assert a.state == b.state == "blocked"
    assert a.waits is not None and b.waits is not None
    assert a.waits.resource in b.holds and b.waits.resource in a.holds
    assert a.waits.resource not in a.holds  # jhsdb prints the awaited monitor as "locked"
    assert res[a.waits.resource].owners == ["mon-b"]
    victim = ts["victim"]
    assert victim.waits is not None and victim.waits.resource in a.holds and not victim.holds
    ra, rb = ts["rl-a"], ts["rl-b"]
    assert ra.waits is not None and res[ra.waits.resource].kind == "mutex"
    assert ra.waits.resource in rb.holds and rb.waits is not None and rb.waits.resource in ra.holds
    nn = ts["never-notified"]
    assert nn.state == "blocked" and nn.holds == []
    assert nn.waits is not None and res[nn.waits.resource].kind == "condition"
    assert ts["timed-parker"].state == "sleeping"
    assert ts["pool-1-thread-1"].state == "idle"
    assert ts["main"].state == "sleeping"
    assert len(r.stated) == 2
    assert sorted(sorted(f.threads) for f in r.stated) == [["mon-a", "mon-b"], ["rl-a", "rl-b"]]
    if name.startswith("jhsdb"):
        assert r.processes[0].pid is not None


def test_two_dumps_in_one_file_are_two_processes() -> None:
    text = (EXTRA / "jstack-jdk17-deadlocks.txt").read_text()
    r = jstack.parse(text + "\n" + text)
    assert len(r.processes) == 2 and r.notes
    assert "dump2:mon-a" in threads(r)
    assert len(r.stated) == 4


def test_detect() -> None:
    assert jstack.detect(corpus("08-jajuk-847-java-deadlock-3threads.txt"))
    assert jstack.detect(corpus("22-tda-jdk21-jstack-healthy-negative.txt"))
    for name in JSTACK_RUNS:
        assert jstack.detect("Some prose first.\n" + (EXTRA / name).read_text())
    for name in OTHER_FORMATS:
        assert not jstack.detect(corpus(name)), name
    for name in ("pyspy-dump.txt", "pystack-remote.txt", "faulthandler-py311.txt"):
        assert not jstack.detect((EXTRA / name).read_text())


def _best_time(text: str) -> float:
    # CPU time of this thread, not wall-clock time: other processes on a loaded machine do not
    # count. Regex backtracking inside one C call is invisible to tests/work.py's counters, so
    # a hostile line is measured this way, as a ratio against itself.
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        jstack.parse(text)
        best = min(best, time.thread_time() - start)
    return best


def test_parse_time_grows_linearly() -> None:
    text = (EXTRA / "jstack-l-jdk17-deadlocks.txt").read_text()
    # Work counted, not timed (tests/work.py): linear is ~16x, quadratic ~256x.
    ratio = growth(jstack.parse, text, text * 16)
    assert ratio < 24, ratio


def test_hostile_lines_stay_fast() -> None:
    hostile = '"' + "a\" " * 3000 + "\n" + "- waiting to lock <" + "0" * 9000 + "\n"
    at = "at " + "(" * 9000 + "\n"
    text = (hostile + at) * 50
    # best of three each, in CPU time; linear would be ~8, quadratic ~64
    assert _best_time(text * 8) / max(_best_time(text), 1e-4) < 40


FIXTURE_TEXTS = [(EXTRA / n).read_text() for n in JSTACK_RUNS]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIXTURE_TEXTS), st.integers(0, 20000), st.integers(0, 20000),
       st.text(max_size=40))
def test_mutations_never_raise(text: str, cut: int, at: int, junk: str) -> None:
    mutated = text[: at % len(text)] + junk + text[at % len(text): cut % len(text) + at % len(text)]
    r = jstack.parse(mutated)
    assert isinstance(r, ParseResult)
    ids = {x.id for x in r.resources}
    for p in r.processes:
        for t in p.threads:
            assert set(t.holds) <= ids
            assert t.waits is None or t.waits.resource in ids


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_text_never_raises(text: str) -> None:
    assert isinstance(jstack.parse(text), ParseResult)


def test_end_to_end_verdicts() -> None:
    from stuck.analysis import analyze
    from stuck.dumps import load_dump

    loaded = load_dump(corpus("08-jajuk-847-java-deadlock-3threads.txt"))
    report = analyze(loaded.snapshot, loaded.stated, loaded.inferred)
    deadlocks = [f for f in report.findings if f.kind == "deadlock"]
    assert len(deadlocks) == 1
    assert sorted(deadlocks[0].threads) == ["AWT-EventQueue-1", "Thread-80"]
    assert deadlocks[0].blocked_behind == ["Thread-88"]

    loaded = load_dump(corpus("22-tda-jdk21-jstack-healthy-negative.txt"))
    assert analyze(loaded.snapshot, loaded.stated, loaded.inferred).findings == []

    loaded = load_dump((EXTRA / "jstack-l-jdk17-deadlocks.txt").read_text())
    found = analyze(loaded.snapshot, loaded.stated, loaded.inferred).findings
    cycles = sorted(sorted(f.threads) for f in found if f.kind == "deadlock")
    assert cycles == [["mon-a", "mon-b"], ["rl-a", "rl-b"]]
