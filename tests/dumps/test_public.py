"""Dumps from public bug reports (tests/fixtures/public/): text nobody working on stuck wrote,
each judged by the dump zoo's scorer against the maintainers' diagnosis.

Every case must get the right verdict naming every stuck thread the text holds, with no
bystander in a finding, no false wait-for edge and no `certain` without the evidence for it.
Cases still wrong are strict xfails with the reason (a case that becomes right fails the run
until it is moved out). The tests after those check each parser and rule change the public
dumps called for on a second dump of the same shape, made here from a real capture of the
corpus or the zoo (the shape of the text changes, the dump's meaning does not).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.dumps.helpers import CORPUS, analyse_text, dump_text
from tests.dumps.loading import load_script

from stuck.model import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PUBLIC = FIXTURES / "public"
ZOO = FIXTURES / "dumpzoo" / "cases"


def _score_module() -> ModuleType:
    return load_script("public_dumps_score", PUBLIC / "score.py")


score = _score_module()
CASES: list[dict[str, Any]] = score.load_cases()

UNPROVEN_FROM_EXCERPT = (
    "one thread's backtrace, without the owner print or the other threads: the text cannot "
    "show who holds the mutex, so a possible hang that says to print the owner is what it "
    "supports (right for the text; the maintainers' verdict needs what the paste left out)")
KNOWN_WRONG: dict[str, str] = {
    "c/gdb-cxx-async-3-self-wake-relock": UNPROVEN_FROM_EXCERPT,
    "c/gdb-ddtrace-11762-child-after-fork": UNPROVEN_FROM_EXCERPT,
    "c/gdb-lighthouse-6200-rwlock-reader-writer": (
        "two threads in a parking_lot RwLock (a reader behind a queued writer, the writer "
        "waiting for readers): nothing in the text says the reader already holds a read "
        "lock, so a possible stall of both, not the deadlock"),
    "c/gdb-ceph-27639-gil-vs-mutex-py27": (
        "one thread waiting for the GIL, the other side of the cycle not in the excerpt: a "
        "possible stall of Thread 11, which says to capture every thread"),
    # second round (cases with "round": 2): still wrong after the parser fixes
    "go/go-netbox-ssot-535-all-asleep-waitgroup-go124": (
        "every goroutine is read, and the runtime's all-asleep is reported (senders: deadlock, "
        "main: stall, both certain), but syncVMs (goroutine 9), which waits on a WaitGroup for "
        "the stuck senders it started, is named only as blocked behind them, not as a party"),
    "go/go-syncthing-389-go12-writer-among-sleepers": (
        "Go 1.2 prints no wait duration: one goroutine waiting for a write lock beside runnable "
        "and sleeping goroutines is not, in one snapshot, evidence of a hang; nothing is said"),
    "java/java-cryostat-135-jdk17-jstack-l-e-healthy": (
        "a healthy CLI's main thread waiting for the child process it started is reported as a "
        "possible hang (nothing in the dump shows the child); one dump cannot tell a child "
        "that is working from one that hangs"),
    "java/java-omnios-3575-jdk21-thread-line-process-wait": (
        "JDK 21's thread line is read; main, parked on a Condition under "
        "ForkJoinPool.managedBlock with no other thread in the excerpt, gets a possible stall "
        "(no notifier shown), where the truth written before the run says hang (the port never "
        "reports the child's exit; the frames that name the process wait are cut off)"),
    "python/python-tqdm-1751-pyspy-monitor-join": (
        "read now, but the two monitor threads stop in tqdm's own acquire() (std.py:117), a "
        "Python frame whose call (lock.acquire) py-spy without --native does not show and whose "
        "source is not here: a lock wait cannot be told from a sleep, so nothing is claimed "
        "(noted, with the command that shows it); main's join waits for one of them"),
    "python/python-runtimes-94-child-flush-after-fork": (
        "a forked child's frames alone, its wait (the stream's lock, taken in C) no Python "
        "frame: read as one thread of an unknown process stopped in a call the dump does not "
        "show, which is noted with what shows it (py-spy --native, pystack), not claimed"),
}


def _param(case: dict[str, Any]) -> Any:
    if case["id"] in KNOWN_WRONG:
        return pytest.param(case, id=case["id"], marks=pytest.mark.xfail(
            strict=True, reason=KNOWN_WRONG[case["id"]]))
    return pytest.param(case, id=case["id"])


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_public_dump_gets_the_maintainers_verdict(case: dict[str, Any]) -> None:
    out = score.outcome(case)
    assert out.parsed, out.error
    assert out.right, f"missing {out.missing}; said {out.findings or 'nothing'}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_public_dump_claims_nothing_false(case: dict[str, Any]) -> None:
    """Right or not, no finding names a bystander, claims a wait the diagnosis denies, or is
    `certain` without the evidence (or the runtime's own word) for it."""
    out = score.outcome(case)
    assert not out.bystanders, out.findings
    assert not out.false_edges, out.false_edges
    assert not out.unjustified_certain, out.unjustified_certain


# -- the changes, each on a second dump ----------------------------------------------------------

def _said(report: Report) -> list[tuple[str, str, list[str]]]:
    names = {t.id: t.name or t.id for p in report.snapshot.processes for t in p.threads}
    return [(f.kind, f.confidence, sorted(names.get(t, t) for t in f.threads))
            for f in report.findings]


def _public(name: str) -> str:
    return dump_text(PUBLIC / "cases" / name)


def _kernel_dmesg_T(text: str) -> str:
    """The kernel log with `dmesg -T`'s wall-clock stamps in place of seconds since boot."""
    return re.sub(r"^\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])?", "[Sat Dec  5 11:02:33 2026]", text,
                  flags=re.MULTILINE)


@pytest.mark.parametrize("name", ["14-syzkaller-436-hung-task-rtnl-lock.txt",
                                  "23-syzkaller-440-hung-rtnl-owner-in-synchronize-rcu.txt"])
def test_dmesg_T_timestamps_read_like_seconds_since_boot(name: str) -> None:
    # logrotate-232 (public) is the first dump; these corpus reports are the second and third
    text = dump_text(CORPUS / name)
    plain = _said(analyse_text(text))
    assert plain
    assert _said(analyse_text(_kernel_dmesg_T(text))) == plain
    assert _said(analyse_text("".join(f"> {line}\n" for line in
                                      _kernel_dmesg_T(text).splitlines()))) == plain


def test_a_trace_of_question_marked_frames_is_the_tasks_stack() -> None:
    """A kernel without frame-pointer unwinding prints every frame with "?": when a trace has
    nothing else, those frames are the wait (ddnet-401 is the first dump; a corpus report
    with every frame marked so is the second)."""
    text = dump_text(CORPUS / "14-syzkaller-436-hung-task-rtnl-lock.txt")
    plain = _said(analyse_text(text))
    guessed = re.sub(r"^(\[[^\]]*\](?:\[[^\]]*\])?\s+)(?!\? )(\w[\w.$]*\+0x)", r"\1? \2", text,
                     flags=re.MULTILINE)
    assert guessed != text
    assert _said(analyse_text(guessed)) == plain
    ddnet = analyse_text(_public("linux-ddnet-401-hung-in-path-walk.txt"))
    assert _said(ddnet) == [("hang", "possible", ["DDRace64-Server"])]
    waits = [r.label for r in ddnet.snapshot.resources]
    assert waits == ["(unnamed mutex, in walk_component)"]


HUNG_IO = """\
[ 3073.899638] INFO: task FwgThread:15341 blocked for more than 120 seconds.
[ 3073.910063]       Tainted: G           OE    --------- -  - 4.18.0-240.el8.x86_64 #1
[ 3073.921003] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[ 3073.932070] FwgThread       D    0 15341  15184 0x000040a0
[ 3073.940814] Call Trace:
[ 3073.946483]  __schedule+0x2a6/0x700
[ 3073.953150]  ? __wake_up_common_lock+0x89/0xc0
[ 3073.960766]  schedule+0x38/0xa0
[ 3073.967040]  jbd2_log_wait_commit+0xac/0x120 [jbd2]
[ 3073.975087]  ? finish_wait+0x80/0x80
[ 3073.982591]  jbd2_log_do_checkpoint+0x392/0x400 [jbd2]
[ 3073.990938]  __jbd2_log_wait_for_space+0x69/0x1a0 [jbd2]
[ 3073.999433]  add_transaction_credits+0x27d/0x290 [jbd2]
[ 3074.014468]  start_this_handle+0x10a/0x510 [jbd2]
[ 3074.028988]  jbd2__journal_start+0xea/0x1f0 [jbd2]
"""


def test_a_hung_task_in_a_wait_without_a_name_is_a_possible_hang() -> None:
    """The hung-task detector reports only tasks asleep in "D" for its whole interval: a trace
    topped by the scheduler in a kernel wait stuck has no name for is still off the CPU, a
    possible hang naming the call it sleeps in, never "nothing found" (logrotate-232 is the
    first dump; the second is a journal wait of the same report's kind)."""
    for text, task, where in ((HUNG_IO, "FwgThread", "jbd2_log_wait_commit"),
                              (_public("linux-logrotate-232-quoted-dmesg-T.txt"), "logrotate",
                               "jbd2_log_wait_commit")):
        report = analyse_text(text)
        assert _said(report) == [("hang", "possible", [task])]
        assert [r.label for r in report.snapshot.resources] == [
            f"(unnamed kernel wait, in {where})"]


def test_a_running_task_in_a_kernel_report_is_no_hang() -> None:
    """The rule is for tasks the detector or the state letter says sleep: an NMI backtrace of
    a running task (the holder in corpus 14) stays running."""
    report = analyse_text(dump_text(CORPUS / "14-syzkaller-436-hung-task-rtnl-lock.txt"))
    running = [t for p in report.snapshot.processes for t in p.threads if t.state == "running"]
    assert running and all(t.waits is None for t in running)


def _zoo(program: str, style: str) -> str:
    return (ZOO / "java" / program / f"{style}.txt").read_text()


@pytest.mark.parametrize("program", ["MonitorCycle", "MonitorRing"])
def test_html_pre_without_its_closing_tag(program: str) -> None:
    """A dump copied from a web page inside <pre> (traccar-1428 is the first dump, its closing
    tag cut off): the tags are not the dump's first line."""
    text = _zoo(program, "jstack")
    plain = _said(analyse_text(text))
    assert plain and plain[0][0] == "deadlock"
    assert _said(analyse_text(f'<pre class="notranslate"><code>{text}')) == plain
    assert _said(analyse_text(f"<PRE>{text}</PRE>\n")) == plain


@pytest.mark.parametrize("program", ["MonitorCycle", "MonitorRing"])
def test_markdown_fences_and_headings_around_a_deadlock_section(program: str) -> None:
    """An issue's Markdown: "# Found one Java-level deadlock:" made a heading, each block in
    ``` fences (threaddump-analyzer-12 is the first dump)."""
    text = _zoo(program, "jstack")
    plain = _said(analyse_text(text))
    start = text.index("Found one Java-level deadlock")
    stacks = text.index("Java stack information", start)
    markdown = (text[:start] + "# Found one Java-level deadlock:\n\n```\n"
                + text[start:stacks].split("\n", 2)[2] + "```\n## Java stack information for "
                "the threads listed above:\n\n```text\n" + text[stacks:].split("\n", 2)[2]
                + "```\n")
    assert _said(analyse_text(markdown)) == plain


def test_gdb_frames_and_shell_prompts_keep_their_hash() -> None:
    """Only a Markdown heading loses its '#': "#0  0x..." is a gdb frame, and nothing is
    stripped from a text without Markdown fences."""
    from stuck.dumps.paste import clean
    text = "```\n#0  0x00007f in __lll_lock_wait () from /lib64/libpthread.so.0\n```\n"
    assert clean(text) == "#0  0x00007f in __lll_lock_wait () from /lib64/libpthread.so.0\n"
    assert clean("# kill -QUIT 4242\n#0  main ()\n") == "# kill -QUIT 4242\n#0  main ()\n"


def _headerless_bts(program: str, names: list[str]) -> str:
    """The named threads of a zoo gdb capture, each pasted as a `(gdb) bt` without its
    "Thread N (...)" line, one after the other."""
    text = (ZOO / "c" / program / "bt-O0.txt").read_text()
    out = []
    for block in text.split("\n\nThread ")[1:]:
        header, _, frames = block.partition("\n")
        if any(f'"{n}"' in header for n in names):
            out.append("(gdb) bt\n" + frames.split("\n\n")[0].rstrip("\n") + "\n")
    assert len(out) == len(names)
    return "\n".join(out)


@pytest.mark.parametrize("program,names", [("ab_ba", ["worker-a", "worker-b"]),
                                           ("cycle3", ["ring-1", "ring-2", "ring-3"])])
def test_several_bt_outputs_are_several_threads_of_an_unknown_process(
        program: str, names: list[str]) -> None:
    """Each `(gdb) bt` pasted one after the other is a thread (the frame numbers start again
    at #0), and `bt` shows one thread, not the process: nothing claims what the threads left
    out could have done (lighthouse-6200 is the first dump)."""
    report = analyse_text(_headerless_bts(program, names))
    (proc,) = report.snapshot.processes
    assert proc.complete is False
    assert len(proc.threads) == len(names)
    assert all(t.state == "blocked" and t.frames[0].function == "futex_wait"
               for t in proc.threads)
    assert all(f.confidence == "possible" for f in report.findings)
    lighthouse = analyse_text(_public("gdb-lighthouse-6200-rwlock-reader-writer.txt"))
    assert [[f.function for f in t.frames][1] for p in lighthouse.snapshot.processes
            for t in p.threads] == ["parking_lot::raw_rwlock::RawRwLock::lock_shared_slow",
                                    "parking_lot::raw_rwlock::RawRwLock::wait_for_readers"]


def test_the_same_bt_printed_twice_is_one_thread() -> None:
    once = _headerless_bts("ab_ba", ["worker-a"])
    report = analyse_text(once + "\n" + once)
    assert [len(p.threads) for p in report.snapshot.processes] == [1]


def _journald_wrapped(text: str, width: int = 96) -> str:
    """A goroutine dump as journald shows it: the unit's prefix before each line, leading
    blanks gone, and each line longer than ``width`` split into records of ``width``."""
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        for start in range(0, max(len(line), 1), width):
            out.append(f"Dec 05 11:02:33 build-host app[4242]: {line[start:start + width]}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("program", ["abba", "rw_inversion", "wg_never_done"])
def test_goroutine_dump_through_journald_keeps_its_frames(program: str) -> None:
    """Location lines without their tab and lines a log wrapped are put back: the same
    frames, waits and findings as the dump itself (revdial-12816 is the first dump, where
    every goroutine had read as waiting 'in ?')."""
    text = (ZOO / "go" / program / "sigquit-all.txt").read_text()
    plain = analyse_text(text)
    logged = analyse_text(_journald_wrapped(text))

    def stacks(report: Report) -> list[list[tuple[str, int | None]]]:
        return [[(f.function, f.line) for f in t.frames]
                for p in report.snapshot.processes for t in p.threads]
    assert stacks(logged) == stacks(plain)
    assert _said(logged) == _said(plain)
    revdial = analyse_text(_public("go-revdial-12816-journald-wrapped.txt"))
    (waiter,) = [t for p in revdial.snapshot.processes for t in p.threads]
    assert waiter.waits is not None and waiter.waits.at is not None
    assert (waiter.waits.at.function, waiter.waits.at.line) == (
        "golang.org/x/build/revdial.(*conn).Write", 304)


@pytest.mark.parametrize("program", ["barrier_short", "join_holding"])
def test_faulthandler_frames_without_their_thread_line(program: str) -> None:
    """A paste of one thread's faulthandler frames without the "Thread 0x... (most recent
    call first):" line is that thread, of a process not shown whole (runtimes-94 is the first
    dump; the first thread of zoo captures pasted so is the second)."""
    text = (ZOO / "python" / program / "faulthandler.txt").read_text()
    first = text.split("\n\n")[0].split("\n", 1)[1]
    whole = analyse_text(text)
    frames = [(f.function, f.line) for f in whole.snapshot.processes[0].threads[0].frames]
    for paste in (first, f"```\n{first}\n```\n"):
        report = analyse_text(paste)
        (proc,) = report.snapshot.processes
        assert proc.complete is False
        (thread,) = proc.threads
        assert [(f.function, f.line) for f in thread.frames] == frames
        assert all(f.confidence == "possible" for f in report.findings)
    runtimes = analyse_text(_public("python-runtimes-94-child-flush-after-fork.txt"))
    assert [t.frames[0].function for p in runtimes.snapshot.processes
            for t in p.threads] == ["_flush_std_streams"]


def test_a_python_exception_traceback_is_not_a_thread_dump() -> None:
    from click.testing import CliRunner

    from stuck.analyze import analyze_command
    text = ('Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n'
            '    main()\nValueError: bad\n')
    result = CliRunner().invoke(analyze_command, ["-"], input=text)
    assert result.exit_code == 2


@pytest.mark.parametrize("program,waiter", [("cond_no_notifier", "waiter"),
                                            ("barrier_short", "party-1"),
                                            ("write_stall", "writer")])
def test_a_stall_from_a_text_not_known_whole_is_at_most_possible(program: str,
                                                                 waiter: str) -> None:
    """"No thread that could wake it is left" needs every thread. One gdb thread pasted with
    its "Thread N (...)" line, N > 1, does not say the process has no other (ceph-27639's
    Thread 11 is the first dump; a zoo waiter pasted alone is the second): no claim above
    possible, and the finding says to capture every thread."""
    text = (ZOO / "c" / program / "bt-O0.txt").read_text()
    (block,) = [b for b in text.split("\n\nThread ")[1:] if f'"{waiter}"' in b.split("\n")[0]]
    for paste in ("Thread " + block.split("\n\n")[0] + "\n",
                  _public("gdb-ceph-27639-gil-vs-mutex-py27.txt")):
        report = analyse_text(paste)
        assert [f.kind for f in report.findings] == ["stall"]
        (stall,) = report.findings
        assert stall.confidence == "possible"
        assert any("thread apply all bt" in m for m in stall.missing_evidence)
