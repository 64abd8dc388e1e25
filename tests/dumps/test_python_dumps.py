"""The Python dump parsers (faulthandler, py-spy, pystack) against genuine dumps.

The generated dumps come from tests/fixtures/dumps/generated/extra/src/stuck_py.py: two
threads deadlocked over a Lock and an RLock, a Condition nobody notifies, the main thread on a
future whose worker waits on an Event nobody sets, a sleeper and a reader in recv().
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.work import growth

from stuck.dumps import FORMATS, ParseResult, faulthandler, parse_text, pyspy, pystack
from stuck.model import Thread

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "dumps" / "corpus"
EXTRA = ROOT / "tests/fixtures/dumps/generated/extra"
HEADER_END = "#### end header ####\n"
OTHER_FORMATS = ["01-rocksdb-5007-ingest-vs-compaction-pstack.txt",
                 "07-etcd-3929-v3-snapshot-deadlock-goroutines.txt",
                 "08-jajuk-847-java-deadlock-3threads.txt",
                 "14-syzkaller-436-hung-task-rtnl-lock.txt",
                 "17-freebsd-valgrind-189-procstat-kk.txt", "19-taurus-1061-gdb-py-bt-rlock.txt",
                 "21-dockerize-2-go-all-goroutines-asleep.txt",
                 "22-tda-jdk21-jstack-healthy-negative.txt"]
OWN = {
    "faulthandler-py311.txt": faulthandler,
    "pyspy-dump.txt": pyspy, "pyspy-dump-locals.txt": pyspy, "pyspy-dump.json": pyspy,
    "pystack-remote.txt": pystack, "pystack-remote-locals.txt": pystack,
    "pystack-remote-native.txt": pystack, "pystack-core.txt": pystack,
}


def corpus(name: str) -> str:
    text = (CORPUS / name).read_text()
    return text.split(HEADER_END, 1)[1] if HEADER_END in text else text


def extra(name: str) -> str:
    return (EXTRA / name).read_text()


def by_name(result: ParseResult) -> dict[str, Thread]:
    return {(t.name or t.id): t for p in result.processes for t in p.threads}


def test_gprofiler_pyspy_dump() -> None:
    r = pyspy.parse(corpus("12-gprofiler-612-pyspy-dump.txt"))
    ts = by_name(r)
    kinds = {x.id: x.kind for x in r.resources}
    main = ts["MainThread"]
    assert main.id == "0x7F768F77C740" and main.state == "blocked"
    assert main.waits is not None and kinds[main.waits.resource] == "future"
    assert main.waits.at is not None and main.waits.at.function == "_snapshot"
    assert ts["Process Events Listener"].state == "io"
    assert ts["ThreadPoolExecutor-0_0"].state == "idle"
    assert ts["ThreadPoolExecutor-0_1"].state == "idle"
    t6 = ts["Thread-6"]
    assert t6.waits is not None and kinds[t6.waits.resource] == "event"
    assert main.frames[0].function == "wait" and main.frames[0].line == 295


@pytest.mark.parametrize("name", ["pyspy-dump.txt", "pyspy-dump-locals.txt", "pyspy-dump.json"])
def test_pyspy_generated(name: str) -> None:
    r = pyspy.parse(extra(name))
    assert [p.pid for p in r.processes] == [23690]
    ts = by_name(r)
    assert len(ts) == 7
    kinds = {x.id: x.kind for x in r.resources}
    main, cond, pool = ts["MainThread"], ts["waits-on-condition"], ts["pool_0"]
    assert main.tid == 23690
    assert main.waits is not None and kinds[main.waits.resource] == "future"
    assert cond.waits is not None and kinds[cond.waits.resource] == "condition"
    assert pool.waits is not None and kinds[pool.waits.resource] == "event"
    assert cond.waits.durable and cond.waits.timeout is None
    # No locals, no source line: a thread inside a C call is not guessed at.
    assert ts["take-a-then-b"].state == "unknown" and ts["take-a-then-b"].waits is None
    if name == "pyspy-dump-locals.txt":
        # With --locals the waited objects have addresses: identity across threads.
        assert main.waits.resource == "0x7fba3eb06290"
        assert pool.waits.resource == "0x7fba3ec72e90"
        assert cond.waits.resource == "0x7fba3ec73d90"


@pytest.mark.parametrize("name", ["pystack-remote.txt", "pystack-remote-locals.txt",
                                  "pystack-remote-native.txt", "pystack-core.txt"])
def test_pystack_generated(name: str) -> None:
    r = pystack.parse(extra(name))
    ts = {t.id: t for p in r.processes for t in p.threads}
    assert set(ts) == {"23690", "23692", "23693", "23694", "23695", "23696", "23697"}
    kinds = {x.id: x.kind for x in r.resources}
    assert ts["23695"].state == "sleeping"
    assert ts["23696"].state == "io"
    for lock_waiter in ("23692", "23693"):
        t = ts[lock_waiter]
        assert t.state == "blocked" and t.waits is not None
        assert t.waits.at is not None and t.waits.at.function == "take_both"
    main = ts["23690"]
    assert main.waits is not None and kinds[main.waits.resource] == "future"
    assert ts["23694"].waits is not None and kinds[ts["23694"].waits.resource] == "condition"
    if name == "pystack-core.txt":
        assert r.processes[0].pid == 23690
    if name == "pystack-remote-locals.txt":
        # `with second:` names the local holding the lock the thread is acquiring.
        first_then_second = ts["23692"].waits
        assert first_then_second is not None
        assert first_then_second.resource == "0x7fba3ec86c80"
        assert kinds["0x7fba3ec86c80"] == "rlock"
        assert ts["23693"].waits is not None and ts["23693"].waits.resource == "0x7fba3ec86840"
        assert kinds["0x7fba3ec86840"] == "mutex"
    if name == "pystack-remote-native.txt":
        assert ts["23692"].frames[0].module is not None  # native frames innermost first
        assert ts["23692"].frames[-1].function == "__clone3"


def test_faulthandler_generated() -> None:
    r = faulthandler.parse(extra("faulthandler-py311.txt"))
    ts = {t.id: t for p in r.processes for t in p.threads}
    assert len(ts) == 7
    main = ts["0x00007fba3fa03b80"]
    assert main.detail == "current"
    kinds = {x.id: x.kind for x in r.resources}
    assert main.waits is not None and kinds[main.waits.resource] == "future"
    worker = ts["0x00007fba27fff6c0"]
    assert worker.waits is not None and kinds[worker.waits.resource] == "event"
    assert worker.frames[0].function == "wait" and worker.frames[-1].function == "_bootstrap"


def test_rlock_repr_names_its_owner() -> None:
    # A hand-written snippet in py-spy's --json shape (labelled as such, not a captured dump):
    # the full RLock repr carries the owner's thread ident.
    snippet = """[
 {"pid": 1, "thread_id": 111, "thread_name": "holder", "os_thread_id": 11, "active": false,
  "owns_gil": false, "frames": [{"name": "work", "filename": "app.py", "line": 3,
  "locals": [{"name": "lk", "repr": "<locked _thread.RLock object owner=111 count=1 at 0xabc>",
              "arg": true}]}]},
 {"pid": 1, "thread_id": 222, "thread_name": "other", "os_thread_id": 22, "active": true,
  "owns_gil": true, "frames": [{"name": "spin", "filename": "app.py", "line": 9}]}
]"""
    r = pyspy.parse(snippet)
    res = {x.id: x for x in r.resources}
    assert res["0xabc"].kind == "rlock" and res["0xabc"].owners == ["11"]
    ts = by_name(r)
    assert ts["holder"].holds == ["0xabc"]
    assert ts["other"].state == "running"


@pytest.mark.parametrize("name", sorted(OWN))
def test_detect_own_and_not_others(name: str) -> None:
    own = OWN[name]
    text = "pasted from the issue:\n" + extra(name)
    assert own.detect(text)
    assert [name for name, _ in parse_text(text, "python")] == [own.NAME]
    for module in (faulthandler, pyspy, pystack):
        if module is not own:
            assert not module.detect(text), (name, module.NAME)


@pytest.mark.parametrize("name", OTHER_FORMATS)
def test_not_detected_in_other_formats(name: str) -> None:
    text = corpus(name)
    for module in (faulthandler, pyspy, pystack):
        assert not module.detect(text), module.NAME


def test_format_python_reads_each_python_format_found() -> None:
    text = extra("faulthandler-py311.txt") + "\n" + extra("pyspy-dump.txt")
    results = parse_text(text, "python")
    assert [name for name, _ in results] == ["faulthandler", "pyspy"]
    assert sum(len(r.processes) for _, r in results) == 2


def test_python_formats_are_first_class_and_parsed_once_in_auto_mode() -> None:
    assert {"faulthandler", "pyspy", "pystack"} <= set(FORMATS)
    assert "python" not in FORMATS
    text = extra("pyspy-dump.txt")
    assert [name for name, _ in parse_text(text)] == ["pyspy"]


@pytest.mark.parametrize("name", ["faulthandler-py311.txt", "pyspy-dump-locals.txt",
                                  "pystack-remote-locals.txt", "pyspy-dump.json"])
def test_parse_time_grows_linearly(name: str) -> None:
    module, text = OWN[name], extra(name)
    repeated = [text.strip()[1:-1]] * 16  # the --json list, sixteen times as long
    big = "[" + ",".join(repeated) + "]" if name.endswith(".json") else text * 16
    # Work counted, not timed (tests/work.py): linear is ~16x, quadratic ~256x.
    ratio = growth(module.parse, text, big)
    assert ratio < 24, ratio


FIXTURES = sorted(OWN)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIXTURES), st.integers(0, 20000), st.integers(0, 20000),
       st.text(max_size=40))
def test_mutations_never_raise(name: str, cut: int, at: int, junk: str) -> None:
    text = extra(name)
    a = at % len(text)
    mutated = text[:a] + junk + text[a: a + cut % len(text)]
    for module in (faulthandler, pyspy, pystack):
        r = module.parse(mutated)
        ids = {x.id for x in r.resources}
        for p in r.processes:
            for t in p.threads:
                assert t.waits is None or t.waits.resource in ids


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_any_text_never_raises(text: str) -> None:
    for module in (faulthandler, pyspy, pystack):
        assert isinstance(module.parse(text), ParseResult)


def test_end_to_end_loads() -> None:
    from stuck.analysis import analyze
    from stuck.dumps import load_dump

    loaded = load_dump(corpus("12-gprofiler-612-pyspy-dump.txt"))
    snap = loaded.snapshot
    main = next(t for t in snap.threads() if t.name == "MainThread")
    assert main.waits is not None
    report = analyze(snap, loaded.stated, loaded.inferred)
    # No cycle can be claimed: nothing in a py-spy dump without locals shows who holds what.
    assert not [f for f in report.findings if f.kind == "deadlock"]


PYSPY_SIGNAL_AND_CHILD = """\
Process 4242: python daemon.py
Python v3.11.7 (/usr/bin/python3.11)

Thread 4242 (idle): "MainThread"
    sigwait (signal.py:82)
    main (daemon.py:28)
    <module> (daemon.py:36)
Thread 4243 (idle): "worker-0"
    Condition.wait (threading.py:327)
    Queue.get (queue.py:171)
    work (daemon.py:15)
    Thread.run (threading.py:982)
    Thread._bootstrap_inner (threading.py:1045)
    Thread._bootstrap (threading.py:1002)
Thread 4244 (idle): "runner"
    Popen.communicate (subprocess.py:1196)
    run_tool (daemon.py:23)
    Thread.run (threading.py:982)
    Thread._bootstrap_inner (threading.py:1045)
    Thread._bootstrap (threading.py:1002)
"""


def test_a_signal_wait_is_a_wait_on_the_outside_and_communicate_a_wait_on_a_child() -> None:
    r = pyspy.parse(PYSPY_SIGNAL_AND_CHILD)
    ts = by_name(r)
    kinds = {x.id: (x.kind, x.label) for x in r.resources}
    # signal.sigwait: a signal comes from outside the process, as a socket's data does; the
    # thread can run again, so the queue waiters are not out of reach, and its wait is not
    # durable.
    main = ts["MainThread"]
    assert main.state == "io" and main.waits is not None and not main.waits.durable
    assert kinds[main.waits.resource] == ("event", "a signal")
    assert main.waits.at is not None and main.waits.at.function == "main"
    # Popen.communicate reads the child's pipes to their end and then waits for it to exit:
    # a wait on another process, not anonymous I/O.
    runner = ts["runner"]
    assert runner.state == "blocked" and runner.waits is not None
    assert runner.waits.direction == "wait-child" and not runner.waits.durable
    assert kinds[runner.waits.resource][0] == "process"
    assert "communicate" in kinds[runner.waits.resource][1]


def test_a_signal_pause_read_from_the_source_line_is_a_wait_on_the_outside() -> None:
    # pystack prints the source line; signal.pause() is a C call with no frame of its own.
    text = ('Traceback for thread 4242 (python) [] (most recent call last):\n'
            '    (Python) File "/srv/daemon.py", line 12, in main\n'
            '        signal.pause()\n')
    [main] = [t for p in pystack.parse(text).processes for t in p.threads]
    assert main.state == "io" and main.waits is not None and not main.waits.durable
