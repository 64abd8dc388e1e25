"""Wait knowledge (``stuck.knowledge``): the table itself, the roles and rules it gives threads,
captions from issue pastes, and the facts read from library logs and printed structs, each
checked through the analysis verdict it changes."""

from __future__ import annotations

import time

import pytest
from tests.dumps.helpers import analyse_text, labels

from stuck.dumps import load_dump
from stuck.knowledge import EVIDENCE, HINTS, ROLES, RULES, Matcher, read_facts
from stuck.model import Frame, Thread, Wait
from stuck.stacks.native import base_name, classify

# --- building small dumps ---------------------------------------------------------------------

COND_WAIT = "pthread_cond_wait@@GLIBC_2.3.2 () from /lib64/libpthread.so.0"
WRITER = [COND_WAIT, "rocksdb::port::CondVar::Wait() ()", "rocksdb::InstrumentedCondVar::Wait() ()",
          "rocksdb::DBImpl::DelayWrite(unsigned long) ()",
          "rocksdb::DBImpl::WriteImpl(rocksdb::WriteOptions const&, rocksdb::WriteBatch*) ()",
          "rocksdb::DBImpl::Write(rocksdb::WriteOptions const&, rocksdb::WriteBatch*) ()",
          "start_thread () from /lib64/libpthread.so.0", "clone () from /lib64/libc.so.6"]
BG_IDLE = [COND_WAIT, "rocksdb::ThreadPoolImpl::Impl::BGThread(unsigned long) ()",
           "rocksdb::ThreadPoolImpl::Impl::BGThreadWrapper(void*) ()",
           "start_thread () from /lib64/libpthread.so.0", "clone () from /lib64/libc.so.6"]
BG_COMPACTING = [
    "rocksdb::BlockBasedTableBuilder::Add(rocksdb::Slice const&, rocksdb::Slice const&) ()",
    "rocksdb::CompactionJob::ProcessKeyValueCompaction(rocksdb::SubcompactionState*) ()",
    "rocksdb::CompactionJob::Run() ()",
    "rocksdb::DBImpl::BackgroundCompaction(bool*, rocksdb::JobContext*) ()",
    "rocksdb::DBImpl::BackgroundCallCompaction(void*, rocksdb::Env::Priority) ()",
    "rocksdb::DBImpl::BGWorkCompaction(void*) ()", *BG_IDLE[1:]]
COMPACTION_WAITING_FOR_INGEST = [
    COND_WAIT, "rocksdb::port::CondVar::Wait() ()", "rocksdb::InstrumentedCondVar::Wait() ()",
    "rocksdb::DBImpl::WaitForIngestFile() ()",
    "rocksdb::DBImpl::BackgroundCompaction(bool*, rocksdb::JobContext*) ()",
    "rocksdb::DBImpl::BackgroundCallCompaction(void*, rocksdb::Env::Priority) ()",
    "rocksdb::DBImpl::BGWorkCompaction(void*) ()", *BG_IDLE[1:]]
INGEST = [COND_WAIT, "rocksdb::port::CondVar::Wait() ()", "rocksdb::InstrumentedCondVar::Wait() ()",
          "rocksdb::DBImpl::WaitUntilFlushWouldNotStallWrites(rocksdb::ColumnFamilyData*, bool*) ()",
          "rocksdb::DBImpl::FlushMemTable(rocksdb::ColumnFamilyData*, rocksdb::FlushOptions const&) ()",
          "rocksdb::DBImpl::IngestExternalFile(rocksdb::ColumnFamilyHandle*) ()"]
SERVING = ["myapp::Server::HandleRequest(int) ()", "start_thread () from /lib64/libpthread.so.0"]


def gdb_thread(num: int, name: str, frames: list[str], caption: str | None = None) -> str:
    lwp = 5000 + num
    lines = [caption, "```"] if caption else []
    lines.append(f'Thread {num} (Thread 0x7f00{lwp:08x} (LWP {lwp}) "{name}"):')
    lines += [f"#{i}  0x00000000{i + 1:08x} in {f}" for i, f in enumerate(frames)]
    if caption:
        lines.append("```")
    return "\n".join(lines) + "\n\n"


def cgo_writer(gid: int, minutes: int) -> str:
    return (f"goroutine {gid} [syscall, {minutes} minutes, locked to thread]:\n"
            "github.com/cockroachdb/cockroach/storage/engine._Cfunc_DBApplyBatchRepr"
            "(0x7f6bfb844ee0, 0xc820a02000, 0x7076, 0x0, 0x0)\n\t??:0 +0x53\n"
            "github.com/cockroachdb/cockroach/storage/engine.dbApplyBatchRepr(0x7f6bfb844ee0)\n"
            "\t/go/src/github.com/cockroachdb/cockroach/storage/engine/rocksdb.go:1365 +0x138\n"
            "created by github.com/cockroachdb/cockroach/storage.(*Store).processRaft.func1\n"
            "\t/go/src/github.com/cockroachdb/cockroach/storage/store.go:2580 +0x4da\n\n")


STOPPING = ("I160826 08:09:20.287301 storage/engine/rocksdb.go:72  [WARN] [default] Stopping "
            "writes because we have 17 level-0 files\n")
STALLING = ("I160826 08:19:20.287301 storage/engine/rocksdb.go:72  [WARN] [default] Stalling "
            "writes because we have 16 level-0 files rate 1456355\n")


def thread(frames: list[str], name: str | None = None, label: str | None = None,
           at: str | None = None) -> Thread:
    t = Thread(id="t", name=name, frames=[Frame(f) for f in frames], paste_label=label)
    t.waits = Wait(resource="r", at=Frame(at) if at else None)
    return t


# --- the table ----------------------------------------------------------------------------------


def test_every_rule_names_known_roles_and_facts_and_says_why() -> None:
    role_names = {r.name for r in ROLES}
    facts = {e.fact for e in EVIDENCE} | {name for e in EVIDENCE for name, _ in e.also}
    assert len({r.name for r in RULES}) == len(RULES)
    for rule in RULES:
        assert set(rule.ended_by) <= role_names, rule.name
        assert rule.reason and rule.proof and rule.until, rule.name
        assert rule.needs is None or rule.needs in facts, rule.name
        assert set(rule.busy) <= facts, rule.name
        if rule.wait == "call":
            assert rule.needs is not None, f"{rule.name}: a call is a wait only in some state"
    for hint in HINTS:
        assert {name for name, _ in hint.when} <= facts
    for ev in EVIDENCE:
        assert ev.gate in ev.needle


@pytest.mark.parametrize(("at", "wait", "rule"), [
    ("rocksdb::DBImpl::DelayWrite(unsigned long)", "condition", "rocksdb-delay-write"),
    ("rocksdb::DBImpl::WaitUntilFlushWouldNotStallWrites(rocksdb::ColumnFamilyData*, bool*)",
     "condition", "rocksdb-flush-waits-for-stall"),
    ("rocksdb::DBImpl::WaitForIngestFile()", "condition", "rocksdb-compaction-waits-for-ingest"),
    ("github.com/cockroachdb/cockroach/storage/engine._Cfunc_DBApplyBatchRepr", "call",
     "rocksdb-write-stopped"),
    ("github.com/tecbot/gorocksdb._Cfunc_rocksdb_write", "call", "rocksdb-write-stopped"),
    ("github.com/cockroachdb/cockroach/storage/engine._Cfunc_DBApplyBatchRepr", "condition",
     None),
    ("rocksdb::DBImpl::DelayWrite(unsigned long)", "call", None),
    ("myapp::Queue::DelayWrite()", "condition", None),
    ("rocksdb::DBImpl::Get(rocksdb::ReadOptions const&)", "condition", None),
])
def test_rule_is_chosen_by_the_frame_where_the_thread_waits(
        at: str, wait: str, rule: str | None) -> None:
    found = Matcher().rule_for(thread([COND_WAIT, at], at=at), wait)
    assert (found[0].name if found else None) == rule
    if found:
        assert found[1] == "frames"


def test_rule_from_a_paste_label_only_when_the_frames_are_cut_off() -> None:
    m = Matcher()
    cut = thread([COND_WAIT], label="BackgroundCompaction stack")
    found = m.rule_for(cut, "condition")
    assert found is not None and found[0].name == "rocksdb-compaction-waits-for-ingest"
    assert found[1] == "label"
    # frames that reach a program frame speak for themselves: the caption is not read
    whole = thread([COND_WAIT, "myapp::Queue::Pop()"], label="BackgroundCompaction stack",
                   at="myapp::Queue::Pop()")
    assert m.rule_for(whole, "condition") is None
    assert m.rule_for(thread([COND_WAIT], label="writer stack"), "condition") is None


@pytest.mark.parametrize(("frames", "name", "label", "roles"), [
    (BG_IDLE, "rocksdb:bg0", None, {"rocksdb-background": "frames"}),
    ([COND_WAIT], "rocksdb:low3", None, {"rocksdb-background": "name"}),
    ([COND_WAIT], "rocksdb:high0", None, {"rocksdb-background": "name"}),
    (INGEST, "worker", None, {"rocksdb-ingest": "frames"}),
    ([COND_WAIT], "Thread 156", "BackgroundCompaction stack", {"rocksdb-background": "label"}),
    ([COND_WAIT], "Thread 144", "IngestExternalFile stack", {"rocksdb-ingest": "label"}),
    # a label never overrides what the frames or the name already say
    (INGEST, "worker", "BackgroundCompaction stack", {"rocksdb-ingest": "frames"}),
    (SERVING, "cockroach", None, {}),
    ([COND_WAIT], "rocksdb-bgwriter", None, {}),
])
def test_roles_come_from_frames_name_or_label(frames: list[str], name: str, label: str | None,
                                              roles: dict[str, str]) -> None:
    assert Matcher().roles_of(thread(frames, name=name, label=label)) == roles


def test_a_pool_thread_inside_a_known_job_is_blocked_not_idle() -> None:
    idle = classify([Frame(f.removesuffix(" ()")) for f in BG_IDLE])
    assert idle.state == "idle"
    in_job = classify([Frame(f.removesuffix(" ()")) for f in COMPACTION_WAITING_FOR_INGEST])
    assert (in_job.state, in_job.kind) == ("blocked", "condition")
    assert in_job.at is not None
    assert base_name(in_job.at.function) == "rocksdb::DBImpl::WaitForIngestFile"


# --- captions in issue pastes -------------------------------------------------------------------


def test_gdb_keeps_a_caption_right_before_a_thread_block() -> None:
    text = (gdb_thread(1, "a", INGEST, caption="IngestExternalFile stack")
            + "BackgroundCompaction stack:\n\n````\n"
            + gdb_thread(2, "b", [COND_WAIT])
            + "Here is what the second thread was doing when we looked at it, the writer thread:\n"
            + gdb_thread(3, "c", WRITER)
            + "BackgroundFlush stack\nand some prose in between\n" + gdb_thread(4, "d", BG_IDLE))
    threads = load_dump(text, "gdb").snapshot.thread_map()
    assert threads["LWP 5001"].paste_label == "IngestExternalFile stack"
    assert threads["LWP 5002"].paste_label == "BackgroundCompaction stack"
    assert threads["LWP 5003"].paste_label is None  # a sentence, not a caption
    assert threads["LWP 5004"].paste_label is None  # prose between caption and block


def _issue_5007(compaction_caption: str | None, compaction: list[str] | None = None) -> str:
    return (gdb_thread(144, "ingest", INGEST, caption="IngestExternalFile stack")
            + gdb_thread(156, "compaction", compaction or [COND_WAIT],
                         caption=compaction_caption))


def test_the_caption_closes_the_cycle_through_two_conditions() -> None:
    report = analyse_text(_issue_5007("BackgroundCompaction stack"))
    assert [f.kind for f in report.findings] == ["deadlock"]
    f = report.findings[0]
    assert f.confidence == "possible"
    assert f.threads == ["LWP 5144", "LWP 5156"]
    assert {(e.thread, e.held_by) for e in f.cycle} == {("LWP 5144", "LWP 5156"),
                                                         ("LWP 5156", "LWP 5144")}
    assert any("paste's label \"BackgroundCompaction stack\"" in m for m in f.missing_evidence)
    assert f.details["knowledge"] == ["rocksdb-flush-waits-for-stall",
                                      "rocksdb-compaction-waits-for-ingest"]


@pytest.mark.parametrize("caption", [None, "Writer stack"])
def test_without_a_role_for_the_cut_thread_there_is_no_cycle(caption: str | None) -> None:
    report = analyse_text(_issue_5007(caption))
    assert [f.kind for f in report.findings] == ["stall"]  # two waiters, nothing else runs


def test_whole_frames_close_the_same_cycle_without_any_caption() -> None:
    text = gdb_thread(144, "ingest", INGEST) + gdb_thread(156, "rocksdb:low0",
                                                          COMPACTION_WAITING_FOR_INGEST)
    report = analyse_text(text)
    assert [f.kind for f in report.findings] == ["deadlock"]
    assert not any("label" in m for m in report.findings[0].missing_evidence)


def test_a_running_background_thread_breaks_the_cycle() -> None:
    text = (_issue_5007("BackgroundCompaction stack")
            + gdb_thread(157, "rocksdb:low1", BG_COMPACTING))
    report = analyse_text(text)
    assert [f.kind for f in report.findings] == []


# --- writers in DelayWrite ----------------------------------------------------------------------


def test_writer_with_only_an_idle_background_pool_is_a_stall() -> None:
    report = analyse_text(gdb_thread(1, "writer", WRITER) + gdb_thread(2, "rocksdb:bg0", BG_IDLE))
    assert [f.kind for f in report.findings] == ["stall"]
    f = report.findings[0]
    assert (f.threads, f.confidence) == (["LWP 5001"], "probable")
    assert f.details["knowledge"] == ["rocksdb-delay-write"]
    assert "rocksdb:bg0 (LWP 5002) (idle)" in f.explanation


def test_writer_with_a_background_thread_running_a_compaction_is_not_stuck() -> None:
    report = analyse_text(gdb_thread(1, "writer", WRITER)
                          + gdb_thread(2, "rocksdb:bg0", BG_COMPACTING))
    threads = report.snapshot.thread_map()
    assert threads["LWP 5002"].state == "running"
    assert report.findings == []


def test_knowledge_makes_a_stall_even_with_unrelated_threads_running() -> None:
    text = (gdb_thread(1, "writer", WRITER) + gdb_thread(2, "rocksdb:bg0", BG_IDLE)
            + gdb_thread(3, "server", SERVING))
    report = analyse_text(text)
    assert [(f.kind, f.confidence, f.threads) for f in report.findings] == [
        ("stall", "possible", ["LWP 5001"])]
    # the same wait in code nothing is known about: another thread runs, so no verdict
    unknown = text.replace("rocksdb::DBImpl::DelayWrite", "myapp::Journal::DelayWrite")
    assert analyse_text(unknown).findings == []


def test_a_printed_dbimpl_saying_a_compaction_runs_keeps_the_writer_from_a_stall() -> None:
    text = (gdb_thread(1, "writer", WRITER) + gdb_thread(2, "rocksdb:bg0", BG_IDLE)
            + gdb_thread(3, "server", SERVING))
    busy = text + "(gdb) print bg_compaction_scheduled_\n$1 = 1\nnum_running_compactions_ = 1\n"
    assert analyse_text(busy).findings == []


# --- facts from LOG lines and printed structs -----------------------------------------------------


def test_log_and_struct_lines_become_facts_the_last_statement_winning() -> None:
    text = ("write_controller_ = {total_stopped_ = 1, total_delayed_ = 0, bytes_left_ = 7785}\n"
            "compaction_queue_ = std::deque with 1 elements, unscheduled_compactions_ = 1, "
            "bg_compaction_scheduled_ = 0, xnum_running_compactions_ = 9\n" + STOPPING)
    facts = {f.name: f for f in read_facts(text)}
    assert {n: f.value for n, f in facts.items()} == {
        "rocksdb.writes_stopped": 1, "rocksdb.writes_delayed": 0,
        "rocksdb.compactions_unscheduled": 1, "rocksdb.compactions_scheduled": 0}
    stopped = facts["rocksdb.writes_stopped"].text
    assert "total_stopped_ = 1" in stopped
    assert "Stopping writes because we have 17 level-0 files" in stopped
    later = {f.name: f.value for f in read_facts(text + STALLING)}
    assert later["rocksdb.writes_stopped"] == 0 and later["rocksdb.writes_delayed"] == 1


def test_no_facts_from_a_dump_that_states_none() -> None:
    assert read_facts("SIGQUIT: quit\nPC=0x46b1c1 m=0 sigcode=0\n" + cgo_writer(1, 47)) == []
    assert read_facts("x=total_stopped_=1 total_stopped_= 1 Stopping writes\n") == []


def test_cgo_writes_while_writes_are_stopped_are_a_stall_on_the_write_stop() -> None:
    report = analyse_text(cgo_writer(784393, 47) + cgo_writer(1262693, 834) + STOPPING)
    assert [f.kind for f in report.findings] == ["stall"]
    f = report.findings[0]
    assert f.threads == ["goroutine 784393", "goroutine 1262693"]
    assert f.confidence == "possible"
    assert labels(report, f.resources) == ["RocksDB write stop"]
    assert any("native backtraces" in m and "max_background_compactions" in m
               for m in f.missing_evidence)
    assert "Stopping writes because we have 17 level-0 files" in f.explanation


def test_a_printed_idle_dbimpl_raises_the_write_stall_to_probable() -> None:
    printed = ("write_controller_ = {total_stopped_ = 1, total_delayed_ = 0}, "
               "bg_compaction_scheduled_ = 0, num_running_compactions_ = 0, "
               "bg_flush_scheduled_ = 0, num_running_flushes_ = 0, unscheduled_compactions_ = 1\n")
    report = analyse_text(cgo_writer(1, 47) + printed)
    f = report.findings[0]
    assert (f.kind, f.confidence) == ("stall", "probable")
    assert "max_background_compactions = 0" in f.explanation  # the hint the fields support


@pytest.mark.parametrize("extra", [
    "",  # nothing says writes are stopped
    STOPPING + STALLING,  # they were, then only slowed
    STOPPING + "bg_compaction_scheduled_ = 1\n",  # and a compaction is on its way
])
def test_cgo_writes_stay_a_hang_without_a_current_write_stop(extra: str) -> None:
    report = analyse_text(cgo_writer(1, 47) + extra)
    assert [f.kind for f in report.findings] == ["hang"]


def test_a_short_cgo_write_is_nothing_even_while_writes_are_stopped() -> None:
    text = cgo_writer(1, 47).replace("[syscall, 47 minutes, locked to thread]", "[syscall]")
    assert analyse_text(text + STOPPING).findings == []


def test_stuck_json_does_not_reread_facts_from_its_own_explanations() -> None:
    from stuck.report import json as json_report
    report = analyse_text(cgo_writer(1, 47) + STOPPING)
    again = load_dump(json_report.dumps(report))
    assert "Stopping writes" in json_report.dumps(report)
    # the report's own "facts" come back as they were, not again from its explanations' words
    assert again.snapshot.facts == report.snapshot.facts
    assert len(report.snapshot.facts) == 1


def _best(fn, text: str) -> float:  # type: ignore[no-untyped-def]
    # CPU time of this thread (a loaded machine does not change it), as a ratio against itself
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        fn(text)
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("unit", ["Stopping writes because ", "total_stopped_ = 1, ", "a=b ",
                                  "x = ", "bg_flush_scheduled_ = -"])
def test_reading_facts_scales_linearly(unit: str) -> None:
    short, long = unit * 5_000, unit * 80_000
    assert _best(read_facts, long) / max(_best(read_facts, short), 1e-4) < 80
    assert len(read_facts(long)) <= len(EVIDENCE) + 1
