"""Every real dump in the corpus (public bug reports, kernel reports, the seed thread) against
the verdict its header gives. Formats parsed by modules that are not installed are skipped."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from tests.dumps.helpers import CORPUS, has_format_module, labels, report_for


@dataclass
class Expect:
    module: str  # the format module that must exist
    kinds: list[str]  # finding kinds, in order
    threads: list[str] = field(default_factory=list)  # threads of the first finding
    resources: list[str] = field(default_factory=list)  # resource labels of the first finding
    behind: list[str] = field(default_factory=list)  # blocked_behind of the first finding


CASES: dict[str, Expect] = {
    # a cycle through two condition variables: the ingestion's flush waits for compaction,
    # the compaction (known only by the paste's label) waits for the ingestion
    "01-rocksdb-5007-ingest-vs-compaction-pstack.txt": Expect(
        "gdb", ["deadlock"], ["LWP 515446", "LWP 515434"]),
    # only the Go side: goroutines for hours inside a cgo write while RocksDB's LOG and a
    # printed DBImpl say writes are stopped, and nothing shows a compaction: a write stall
    "03-rocksdb-1297-cockroach-8784-delaywrite.txt": Expect(
        "go", ["stall"], ["goroutine 784393", "goroutine 1262693"], ["RocksDB write stop"]),
    # 63 -> store mutex held (likely) by 64 -> mutex whose holder is not in the excerpt
    "07-etcd-3929-v3-snapshot-deadlock-goroutines.txt": Expect(
        "go", ["hang"], ["goroutine 64"], ["sync.Mutex 0xc82030c1c0", "sync.Mutex 0xc8201f5ac0"],
        ["goroutine 63"]),
    # exactly the two-thread cycle; Thread-88 is a victim, not part of the cycle
    "08-jajuk-847-java-deadlock-3threads.txt": Expect(
        "jstack", ["deadlock"], ["Thread-80", "AWT-EventQueue-1"], [], ["Thread-88"]),
    # MainThread waits on a future whose worker (cut from the excerpt) waits on an external
    # process: a possible hang, not a deadlock or stall
    "12-gprofiler-612-pyspy-dump.txt": Expect("pyspy", ["hang"], ["0x7F768F77C740"],
                                              ["concurrent.futures.Future"]),
    # hung on rtnl_mutex; the likely holder is running (starvation, not a cycle)
    "14-syzkaller-436-hung-task-rtnl-lock.txt": Expect(
        "linux", ["hang"], ["syz-executor687/8773"], ["rtnl_mutex"], ["kworker/1:0/17"]),
    # lockdep: a potential deadlock over three lock classes
    "15-syzkaller-188-lockdep-circular-rtnl.txt": Expect(
        "linux", ["lock-order"], ["syz-executor0/4217"],
        ["rtnl_mutex", "sk_lock-AF_INET6", "&xt[i].mutex"]),
    # one runnable thread, the rest in pipe_read: nothing provable from kernel stacks
    "17-freebsd-valgrind-189-procstat-kk.txt": Expect("procstat", []),
    # thread 31 blocked entering an RLock whose owner py-bt cannot show; pool workers idle
    "19-taurus-1061-gdb-py-bt-rlock.txt": Expect(
        "gdb", ["stall"], ["LWP 23498"], ["_thread.RLock at 0x7f65684549f0"]),
    # the runtime proved it: main waits on a WaitGroup nobody can Done()
    "21-dockerize-2-go-all-goroutines-asleep.txt": Expect(
        "go", ["stall"], ["goroutine 16"], ["sync.WaitGroup 0x651980"]),
    # healthy JDK 21 process: no finding
    "22-tda-jdk21-jstack-healthy-negative.txt": Expect("jstack", []),
    # eight waiters on rtnl_mutex behind its owner, which waits for an RCU grace period
    "23-syzkaller-440-hung-rtnl-owner-in-synchronize-rcu.txt": Expect(
        "linux", ["hang"], ["syz-executor.1/1147"], ["rtnl_mutex", "an RCU grace period"],
        ["kworker/u4:2/24", "syz-executor.2/13855", "syz-executor.0/20090",
         "syz-executor.3/20104", "syz-executor.5/20132", "kworker/0:0/5", "kworker/1:2/2857",
         "syz-executor.5/20135"]),
}


def test_every_corpus_file_has_an_expectation() -> None:
    files = {p.name for p in CORPUS.glob("[0-9]*.txt")}
    assert files == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_verdict(name: str) -> None:
    exp = CASES[name]
    if not has_format_module(exp.module):
        pytest.skip(f"format module stuck.dumps.{exp.module} not installed yet")
    report = report_for(CORPUS / name)
    assert [f.kind for f in report.findings] == exp.kinds
    if not exp.kinds:
        return
    first = report.findings[0]
    assert first.threads == exp.threads
    if exp.resources:
        assert labels(report, first.resources) == exp.resources
    assert sorted(first.blocked_behind) == sorted(exp.behind)
    assert not set(first.blocked_behind) & set(first.threads)


def test_jajuk_cycle_edges_close_on_the_two_threads() -> None:
    if not has_format_module("jstack"):
        pytest.skip("jstack parser not installed yet")
    f = report_for(CORPUS / "08-jajuk-847-java-deadlock-3threads.txt").findings[0]
    assert {e.thread for e in f.cycle} == {e.held_by for e in f.cycle} == {
        "Thread-80", "AWT-EventQueue-1"}


def test_seed_rocksdb_thread_is_a_stall_with_the_writer_on_bg_cv() -> None:
    report = report_for(CORPUS / "seed-001-rocksdb-1297-thread.txt")
    threads = report.snapshot.thread_map()
    # the same stall three times: two gdb sessions (before and after 4.9) and the goroutine
    # dump, whose cgo write the LOG's write stop explains
    assert [f.kind for f in report.findings] == ["stall", "stall", "stall"]
    native = [f for f in report.findings if all(t.startswith("LWP ") for t in f.threads)]
    assert len(native) == 2
    named = [f for f in native if labels(report, f.resources) == ["bg_cv_"]]
    assert len(named) == 1
    writer = threads[named[0].threads[0]]
    assert writer.waits is not None and writer.waits.at is not None
    assert writer.waits.at.function == "rocksdb::DBImpl::DelayWrite"
    assert writer.waits.at.line == 4839
    go_side = [f for f in report.findings if f not in native]
    assert go_side[0].threads == ["goroutine 784393"]
    assert labels(report, go_side[0].resources) == ["RocksDB write stop"]
    for f in native:
        assert f.details["knowledge"] == ["rocksdb-delay-write"]
        idle_names = [threads[t].name for t in f.details["idle"]]  # type: ignore[union-attr]
        assert "rocksdb:bg0" in idle_names
        assert f.confidence == "probable"
        assert any("signal" in m for m in f.missing_evidence)
    bg0 = [t for t in threads.values() if t.name == "rocksdb:bg0"]
    assert len(bg0) == 2 and all(t.state == "idle" for t in bg0)
    # the background thread's own condition was recognised by its mutex address
    res = report.snapshot.resource_map()
    assert "bgsignal_" not in [r.label for r in res.values()
                               if any(t.waits and t.waits.resource == r.id
                                      for t in threads.values() if t.state == "blocked")]


def test_seed_holds_both_gdb_sessions_and_the_goroutine_dump() -> None:
    report = report_for(CORPUS / "seed-001-rocksdb-1297-thread.txt")
    snap = report.snapshot
    assert snap.source.format == "gdb+go"
    sizes = sorted(len(p.threads) for p in snap.processes)
    assert sizes == [1, 9, 10]


def test_gprofiler_hang_says_the_futures_runner_is_missing_and_workers_are_one_group() -> None:
    report = report_for(CORPUS / "12-gprofiler-612-pyspy-dump.txt")
    f = report.findings[0]
    assert f.confidence == "possible"
    assert any("which thread runs the future" in m and "ThreadPoolExecutor-0_0" in m
               for m in f.missing_evidence)
    idle_workers = [g for g in report.groups if g.state == "idle" and len(g.threads) >= 2]
    assert idle_workers, [(g.state, g.threads) for g in report.groups]
