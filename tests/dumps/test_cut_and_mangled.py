"""Dumps handed over cut off or with a mangled line (tests/fixtures/dumps/excerpts/).

A cut dump lacks threads: whatever it shows, "nothing found" or "all goroutines are asleep" in
it is no all-clear and no proof, so the report says the text is an excerpt (a note, printed
even with no finding) and no finding claims more than the text shows. A line a parser cannot
read must not take a thread with it unsaid. Each case is checked on the dump a user sent and on
dumps made here with the real tools, cut at many points.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.dumps.helpers import analyse_text

from stuck.analysis import analyze
from stuck.analyze import analyze_command
from stuck.dumps import load_dump
from stuck.model import Report, Resource

EXCERPTS = Path(__file__).resolve().parent.parent / "fixtures" / "dumps" / "excerpts"


def read(name: str) -> str:
    # newline="" keeps a CR inside a line as the dump has it
    with open(EXCERPTS / name, encoding="utf-8", newline="") as fh:
        return fh.read()


def analyze_cli(name: str, *options: str) -> tuple[int, str]:
    res = CliRunner().invoke(analyze_command, [*options, str(EXCERPTS / name)])
    return res.exit_code, res.output


def excerpt_notes(report: Report, words: str) -> list[str]:
    return [n for n in report.snapshot.notes if words in n]


# -- jstack ---------------------------------------------------------------------------------------


def test_a_jstack_cut_mid_thread_says_it_is_an_excerpt_even_with_nothing_found() -> None:
    code, out = analyze_cli("cache-jstack-first-2000-bytes.txt")
    assert code == 0  # nothing is found in what the text shows ...
    assert out.startswith("stuck: nothing found in dump (jstack)")
    # ... and the report says why that is no all-clear, and what captures every thread
    note = next(line for line in out.splitlines() if line.startswith("note: jstack dump 1"))
    assert "the text lacks threads" in note
    assert "ends inside Finalizer's block, cut off" in note
    assert "jstack -l PID" in note


def test_the_whole_jstack_dump_has_no_excerpt_note() -> None:
    report = analyse_text(read("ledger-jstack.txt"))
    assert not excerpt_notes(report, "lacks threads")
    assert [(f.kind, f.confidence) for f in report.findings] == [("deadlock", "certain")]
    assert report.snapshot.processes[0].complete is True


def test_a_jstack_cut_anywhere_among_its_threads_is_an_excerpt() -> None:
    text = read("ledger-jstack.txt")
    start, end = text.index('"main" #1') + 1, text.index("JNI global")
    for cut in range(start, end, 41):
        report = analyse_text(text[:cut])
        assert report.snapshot.processes[0].complete is False, cut
        assert excerpt_notes(report, "jstack dump 1: the text lacks threads"), cut


# -- Go -----------------------------------------------------------------------------------------


def test_a_go_dump_cut_after_40_lines_is_an_excerpt_not_all_asleep() -> None:
    report = analyse_text(read("gohung-sigquit-first-40-lines.txt"))
    assert report.snapshot.processes[0].complete is False
    assert report.findings, "the waits it shows are still reported"
    for f in report.findings:
        assert f.confidence == "possible"
        assert "all goroutines are asleep" not in f.summary
        assert any("lacks goroutines" in m for m in f.missing_evidence)
    (note,) = excerpt_notes(report, "Go dump 1: the text lacks goroutines")
    assert "goroutine 2's stack at runtime.goparkunlock" in note


def test_the_whole_go_dump_is_complete() -> None:
    report = analyse_text(read("ledger-sigquit.txt"))
    assert report.snapshot.processes[0].complete is True
    assert not excerpt_notes(report, "lacks goroutines")
    assert [(f.kind, f.confidence) for f in report.findings] == [("deadlock", "possible")]


def test_a_go_dump_cut_at_any_line_or_mid_line_claims_no_more_than_possible() -> None:
    text = read("ledger-sigquit.txt")
    lines = text.split("\n")
    registers = next(i for i, line in enumerate(lines) if line.startswith("rax "))
    first = next(i for i, line in enumerate(lines) if line.startswith("goroutine 1 "))
    cuts = ["\n".join(lines[:k]) + "\n" for k in range(first + 1, registers)]
    start, end = text.index("goroutine 1 ["), text.index("\nrax ")
    cuts += [text[:offset] for offset in range(start + 20, end, 53)]
    for cut in cuts:
        report = analyse_text(cut)
        assert report.snapshot.processes[0].complete is False, cut[-80:]
        assert excerpt_notes(report, "Go dump 1: the text lacks goroutines"), cut[-80:]
        assert all(f.confidence == "possible" for f in report.findings), cut[-80:]


def test_a_go_dump_without_its_register_block_is_an_excerpt() -> None:
    # Cut exactly after the last goroutine: every stack is whole, but a dump the runtime
    # writes for a signal ends with the registers.
    text = read("ledger-sigquit.txt")
    report = analyse_text(text[:text.index("\nrax ") + 1])
    (note,) = excerpt_notes(report, "Go dump 1: the text lacks goroutines")
    assert "no register block" in note
    assert all(f.confidence == "possible" for f in report.findings)


# -- a CR in a thread's name ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kept"), [
    ("pyspy-thread-name-with-cr.txt", "pwn<img src=x onerror=alert(1)>\rDEADLOCK (certain): fake"),
    ("crname-pyspy.txt", "job\r42 <b>"),
])
def test_a_thread_whose_name_holds_a_cr_is_kept(name: str, kept: str) -> None:
    report = analyse_text(read(name))
    names = [t.name for t in report.snapshot.threads()]
    assert kept in names  # the CR stays in the name; the escape sequence is taken out
    (stall,) = report.findings
    assert any(report.snapshot.thread_map()[t].name == kept for t in stall.threads)
    assert not excerpt_notes(report, "lacks threads")


def test_a_cr_in_a_thread_name_is_printed_escaped() -> None:
    code, out = analyze_cli("pyspy-thread-name-with-cr.txt")
    assert code == 1
    assert "\r" not in out and "\x1b" not in out
    assert "pwn<img src=x onerror=alert(1)>\\rDEADLOCK (certain): fake (21037) waits" in out
    assert not any(line.startswith("DEADLOCK") for line in out.splitlines())


def test_a_thread_line_that_cannot_be_read_is_named_not_dropped() -> None:
    text = read("crname-pyspy.txt").replace('(idle): "job', '(idle) "job', 1)
    report = analyse_text(text)
    (note,) = excerpt_notes(report, "py-spy dump 1: the text lacks threads")
    assert "a thread line not understood, 'Thread 16067 (idle) \"job" in note
    assert report.snapshot.processes[0].complete is False


def test_lone_cr_line_ends_are_still_line_ends() -> None:
    # A text with CR alone as its line end (no LF anywhere) is read line by line as before.
    text = read("crname-pyspy.txt").replace("job\r42", "job42").replace("\n", "\r")
    report = analyse_text(text)
    assert sorted(t.name or "" for t in report.snapshot.threads()) == [
        "MainThread", "job42\x1b[2J <b>".replace("\x1b[2J", "")]


# -- a lock held by `with self.lock:`, read beside the source ------------------------------------


def analyse_beside(name: str, source_dir: Path = EXCERPTS) -> Report:
    return analyse_loaded(name, source_dir)[0]


def analyse_loaded(name: str, source_dir: Path = EXCERPTS) -> tuple[Report, dict[str, str]]:
    """The report, and what was inferred rather than read from the dump (resource -> how)."""
    loaded = load_dump(read(name), "auto", name, sources=[str(source_dir)])
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred), loaded.inferred


def lock_of(report: Report, label_start: str) -> Resource:
    (res,) = [r for r in report.snapshot.resources if r.label.startswith(label_start)]
    return res


def test_pystack_rlock_held_by_with_self_lock_is_found_through_the_caller() -> None:
    # main stands at `f.result()` (line 22) inside `with self.lock:` (line 18) of
    # Bus.publish, called as `bus.publish("hello")`; the dispatcher waits on `with self.lock:`
    # of Bus.unsubscribe, called as `bus.unsubscribe(once)`: one `bus`, one lock.
    report = analyse_beside("pystack-rlock-callbacks.txt")
    lock = lock_of(report, "bus.lock")
    assert lock.kind == "rlock"  # `self.lock = threading.RLock()`, not a threading.Lock
    assert lock.owners == ["20915"]
    waiter = report.snapshot.thread_map()["21043"]
    assert waiter.waits is not None and waiter.waits.resource == lock.id
    (stall,) = report.findings
    assert stall.confidence == "probable"
    assert "21043" in stall.threads + stall.blocked_behind
    said = " ".join(stall.missing_evidence)
    assert "records no owner" not in said and "threading.Lock" not in said


@pytest.mark.parametrize("name", ["inventory-pyspy.txt", "inventory-pystack.txt"])
def test_a_lock_taken_one_method_below_the_public_call_is_held(name: str) -> None:
    # `store.restock(3)` -> `self._apply(n)` -> `with self.guard:`: the `self` chain is
    # followed out to the module-level `store`.
    report, inferred = analyse_loaded(name)
    lock = lock_of(report, "store.guard")
    assert lock.kind == "rlock"
    (main,) = [t for t in report.snapshot.threads() if any(
        f.function.endswith("restock") for f in t.frames)]
    assert lock.owners == [main.id]
    (auditor,) = [t for t in report.snapshot.threads() if any(
        f.function.endswith("audit") for f in t.frames)]
    assert auditor.waits is not None and auditor.waits.resource == lock.id
    assert "`self` is `store`" in inferred[lock.id]  # read from the source: at most probable
    assert all(f.confidence != "certain" for f in report.findings)


def test_without_a_module_level_receiver_no_holder_is_claimed(tmp_path: Path) -> None:
    # The same program, with the store made where the call is (`Store().restock(3)`): the
    # source no longer says which object `self` is, so the two `self.guard` stay apart.
    lines = read("inventory.py").split("\n")
    assert lines[35] == "store.restock(3)"
    lines[35] = "Store().restock(3)"
    (tmp_path / "inventory.py").write_text("\n".join(lines), encoding="utf-8")
    report = analyse_beside("inventory-pyspy.txt", tmp_path)
    assert not [r for r in report.snapshot.resources
                if r.label.startswith("store.guard") and r.owners]
    assert not any(r.owners for r in report.snapshot.resources if r.kind in ("rlock", "mutex"))
