"""The text report people scan: the count in words, who holds what even inside a group of
identical stacks, the small-cycle diagram, and which file a finding came from."""

from __future__ import annotations

from stuck.groups import group_threads
from stuck.model import (
    Edge,
    Finding,
    Frame,
    Process,
    Report,
    Resource,
    Snapshot,
    Source,
    Thread,
    Wait,
)
from stuck.report import text as text_report

SAME_STACK = [Frame("acquire", "threading.py", 10), Frame("transfer", "bank.py", 23)]


def three_lock_ring() -> Report:
    """Three threads on one line of code, each holding one lock and wanting the next."""
    names = ["transfer", "reconcile", "audit"]
    locks = ["accounts_lock", "ledger_lock", "audit_lock"]
    threads = [Thread(id=f"0x{i}", name=names[i], state="blocked", frames=list(SAME_STACK),
                      holds=[f"r{i}"], waits=Wait(f"r{(i + 1) % 3}")) for i in range(3)]
    snap = Snapshot(source=Source(kind="live", format="python"),
                    processes=[Process(pid=1, threads=threads)],
                    resources=[Resource(f"r{i}", "mutex", locks[i], owners=[f"0x{i}"])
                               for i in range(3)])
    f = Finding("deadlock", "certain", "ring", threads=[t.id for t in threads],
                cycle=[Edge(f"0x{i}", f"r{(i + 1) % 3}", f"0x{(i + 1) % 3}") for i in range(3)])
    return Report(snapshot=snap, findings=[f], groups=group_threads(snap))


def test_a_group_says_what_each_member_holds() -> None:
    out = text_report.render(three_lock_ring())
    group = out[out.index("3 threads · blocked"):]
    assert "transfer: waiting for mutex ledger_lock; holding mutex accounts_lock" in group
    assert "reconcile: waiting for mutex audit_lock; holding mutex ledger_lock" in group
    assert "audit: waiting for mutex accounts_lock; holding mutex audit_lock" in group


def test_a_group_whose_members_agree_says_it_once() -> None:
    threads = [Thread(id=f"T{i}", state="blocked", frames=list(SAME_STACK), waits=Wait("r0"))
               for i in range(5)]
    snap = Snapshot(source=Source(kind="dump", format="go"),
                    processes=[Process(threads=threads)],
                    resources=[Resource("r0", "mutex", "cache.mu")])
    out = text_report.render(Report(snapshot=snap, groups=group_threads(snap)))
    assert "\n    waiting for mutex cache.mu\n" in out
    assert "T0: waiting" not in out


def test_counts_are_words_with_plurals() -> None:
    snap = Snapshot(source=Source(kind="dump", format="go"))
    hangs = [Finding("hang", "possible", "x"), Finding("hang", "possible", "y")]
    lock_order = [Finding("lock-order", "certain", "z")]
    assert text_report.counted(hangs) == "2 hangs found"
    assert text_report.counted([*hangs[:1], *lock_order]) == "1 lock-order problem, 1 hang found"
    assert text_report.counted([]) == "nothing found"
    assert text_report.render(Report(snapshot=snap, findings=hangs)).startswith(
        "stuck: 2 hangs found in dump (go)")


def test_a_small_cycle_is_drawn_and_closes_on_its_first_thread() -> None:
    report = three_lock_ring()
    lines = text_report.cycle_diagram(report.findings[0], report.snapshot.thread_map(),
                                      report.snapshot.resource_map())
    assert lines[0] == "  ┌─▶ transfer"
    assert lines[-1] == "  └──── waits for mutex accounts_lock, held by transfer"
    assert len(lines) == 6
    assert all(line.startswith(("  ┌", "  │", "  └")) for line in lines)


def test_a_finding_names_its_file_when_there_are_several() -> None:
    report = three_lock_ring()
    report.snapshot.processes[0].file = "a.txt"
    report.snapshot.processes.append(Process(file="b.txt", threads=[Thread(id="other")]))
    assert "\n  from a.txt\n" not in text_report.render(report)  # one file: nothing to tell
    report.snapshot.source.files = ["a.txt", "b.txt"]
    assert "\n  from a.txt\n" in text_report.render(report)


def test_the_terminal_colours_the_verdict_and_keeps_markup_as_text() -> None:
    from rich.console import Console
    from rich.text import Text

    from stuck.analyze import styled_line

    console = Console(force_terminal=True, color_system="standard", width=200)
    with console.capture() as cap:
        console.print(styled_line("DEADLOCK (certain): [bold]x[/bold] waits", Text))
        console.print(styled_line("  ┌─▶ transfer", Text))
        console.print(styled_line("  plain line", Text))
    out = cap.get()
    lines = out.splitlines()
    assert "\x1b[1;31mDEADLOCK\x1b[0m" in lines[0] and "[bold]x[/bold]" in lines[0]
    assert lines[1].startswith("\x1b[31m")
    assert "\x1b[" not in lines[2]


def test_thread_names_replace_raw_idents_but_keep_telling_ids() -> None:
    assert Thread(id="0x7ff837ea36c0", name="writer").label() == "writer"
    assert Thread(id="0x7ff837ea36c0").label() == "0x7ff837ea36c0"
    assert Thread(id="LWP 7357", name="writer").label() == "writer (LWP 7357)"
    assert Thread(id="goroutine 7", name="goroutine 7").label() == "goroutine 7"
