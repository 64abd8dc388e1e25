"""One dump of a worker pool between batches (tests/fixtures/dumps/idle_pool/, captured by its
build.py with gdb, py-spy, SIGQUIT and jstack from programs made for it).

Workers waiting on a condition, a queue, a channel or a job semaphore beside a thread that
sleeps and will hand them the next batch when it wakes is the picture of every healthy pool
between batches; the same picture is a stall when that thread never will. One snapshot cannot
tell them apart: no finding, exit 0, and a note that says so and how to tell
(``stuck.rules.between``). Where the dump shows that no thread can be the producer (each other
thread waits itself, or the source shows the sleeper's loop does nothing but sleep), the stall
is claimed as before; so is a lone waiter beside a sleeper, which is no pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from stuck.analyze import analyze_command

HERE = Path(__file__).resolve().parent.parent / "fixtures" / "dumps" / "idle_pool"
SOURCE = HERE / "programs"


def _analyze(name: str, *extra: str) -> tuple[int, dict[str, object], str]:
    path = str(HERE / name)
    runner = CliRunner()
    as_json = runner.invoke(analyze_command, ["--json", "-", *extra, path])
    text = runner.invoke(analyze_command, [*extra, path])
    assert as_json.exit_code == text.exit_code, (as_json.output, text.output)
    return text.exit_code, json.loads(as_json.stdout), text.output


@pytest.mark.parametrize("source", [False, True], ids=["dump", "dump+source"])
@pytest.mark.parametrize(("name", "workers", "dispatcher"), [
    # the shapes a user reported: four workers in pthread_cond_wait, main in usleep
    ("gdb-pool_cond_sleep.txt", 4, "LWP"),
    # three workers in Queue.get, MainThread at its time.sleep line (py-spy shows no frame
    # for the C call: without the source it is a call the dump does not name)
    ("pyspy-pool_queue_sleep.txt", 3, "MainThread"),
])
def test_a_pool_between_batches_is_no_stall(name: str, workers: int, dispatcher: str,
                                            source: bool) -> None:
    code, report, text = _analyze(name, *(["--source", str(SOURCE)] if source else []))
    assert code == 0, text
    assert report["findings"] == []
    assert text.startswith("stuck: nothing found")
    [note] = [n for n in report["notes"] if "a pool waiting for work" in n]
    assert note.count(", ") >= workers - 1 and dispatcher in note.split(" while ", 1)[1]
    assert "one snapshot cannot tell them apart" in note
    assert "take a second dump a while later" in note and "stuck capture PID" in note


@pytest.mark.parametrize("name", ["go-pool_chan_sleep.txt", "jstack-l-PoolTakeSleep.txt"])
def test_a_pool_between_batches_in_go_and_java_is_no_stall(name: str) -> None:
    # Go: three goroutines receiving from the jobs channel, main in time.Sleep; Java: a fixed
    # pool's three workers in LinkedBlockingQueue.take, main in Thread.sleep.
    code, report, text = _analyze(name)
    assert code == 0, text
    assert report["findings"] == []


@pytest.mark.parametrize("name", ["gdb-pool_dispatcher_gone.txt",
                                  "pyspy-pool_dispatcher_gone.txt"])
def test_a_pool_whose_dispatcher_is_gone_is_a_stall(name: str) -> None:
    # The same pool, but the dispatcher returned after one batch and main joins a worker:
    # no thread sleeps or runs, so none could be the producer. (Python: main's join names no
    # thread without --locals, but every thread it could join is a worker: it waits behind.)
    code, report, text = _analyze(name)
    assert code == 1, text
    [f] = report["findings"]
    assert isinstance(f, dict)
    assert (f["kind"], f["confidence"]) == ("stall", "probable")
    workers = 4 if name.startswith("gdb") else 3
    assert len(f["threads"]) + len(f["blocked_behind"]) == workers + 1  # and main
    assert len(f["threads"]) >= workers
    assert not any("a pool waiting for work" in n for n in report.get("notes", []))


def test_a_pool_beside_a_sleeper_the_source_shows_only_sleeps_is_a_stall() -> None:
    # The dispatcher is gone; a heartbeat sleeps in `while True: time.sleep(0.1)`. Without the
    # source, py-spy shows the heartbeat in a call it does not name: it may be the producer.
    # With it, the loop does nothing but sleep, so it cannot be: the stall stands.
    code, report, _ = _analyze("pyspy-pool_heartbeat_only.txt")
    assert code == 0 and report["findings"] == []
    assert any("a pool waiting for work" in n and "heartbeat" in n for n in report["notes"])
    code, report, text = _analyze("pyspy-pool_heartbeat_only.txt", "--source", str(SOURCE))
    assert code == 1, text
    [f] = report["findings"]
    assert isinstance(f, dict)
    assert f["kind"] == "stall" and {"w0", "w1", "w2"} <= {
        t["name"] for p in report["processes"] for t in p["threads"]  # type: ignore[index]
        if t["id"] in f["threads"]}
    assert not any("a pool waiting for work" in n for n in report.get("notes", []))
