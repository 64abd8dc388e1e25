"""A cycle found when its last thread blocks and the same cycle found later by the watchdog
are one finding of the rules (``stuck.rules.cycle``): the same steps in the same order,
confidence, explanation and what the source does not show. Only what each look knows differs: the block-time report
names the thread that closed the cycle, the watchdog's says it saw the waits unchanged twice."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

# A child whose main thread waits with timeouts (able to run, never part of a finding): two
# threads form the cycle under policy report, then the watchdog's check judges the same state.
CHILD = """
import io, json, os, queue, sys, threading, time
import stuck
from stuck.runtime import policy, registry
from stuck.runtime.stall import LiveChecker

stuck.install(policy="report", report_stream=io.StringIO(), signal=None, stalls=False)
shape = sys.argv[1]
if shape == "rlocks":
    a, b = threading.RLock(), threading.RLock()
    gate = threading.Barrier(2)

    def worker(first, second):
        with first:
            gate.wait()
            with second:
                pass

    args = [(a, b), (b, a)]
else:  # two full queues: each thread puts to the queue only the other takes from
    requests, responses = queue.Queue(maxsize=1), queue.Queue(maxsize=1)
    warm = threading.Barrier(2)

    def worker(mine, theirs):
        theirs.put(0)
        warm.wait()
        mine.get()  # both are now known takers of their own queue
        warm.wait()
        for i in range(3):  # more than the two queues hold together
            theirs.put(i)

    args = [(requests, responses), (responses, requests)]
threads = [threading.Thread(target=worker, args=a, name=f"t{i}", daemon=True)
           for i, a in enumerate(args)]
for t in threads:
    t.start()
deadline = time.monotonic() + 20
while not policy.findings_seen and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.6)  # the waits settle
_, found = LiveChecker().check(settle=0.5)


def as_dict(f):
    return {"kind": f.kind, "confidence": f.confidence, "summary": f.summary,
            "explanation": f.explanation, "missing": f.missing_evidence,
            "threads": f.threads, "details": {k: v for k, v in f.details.items()
                                              if isinstance(v, str)}}


print(json.dumps({"block": [as_dict(f) for r in policy.findings_seen for f in r.findings],
                  "watchdog": [as_dict(f) for f in found]}))
sys.stdout.flush()
os._exit(0)
"""


def _run(shape: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CHILD, shape], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _steps(summary: str) -> set[str]:
    """The steps of a cycle's summary."""
    return set(summary.split(": ", 1)[1].split("; "))


@pytest.mark.parametrize(("shape", "confidence", "step"), [
    ("rlocks", "certain", "held by"),
    ("queues", "probable", "puts on full queue"),
])
def test_block_time_and_watchdog_word_a_cycle_alike(shape: str, confidence: str,
                                                    step: str) -> None:
    result = _run(shape)
    [block] = result["block"]
    [later] = [f for f in result["watchdog"] if f["kind"] == "deadlock"]
    assert block["confidence"] == later["confidence"] == confidence
    assert sorted(block["threads"]) == sorted(later["threads"])
    # Told from the thread that closed it: the watchdog knows it as the last to start waiting.
    assert block["summary"] == later["summary"]
    assert all(step in s for s in _steps(block["summary"]))
    assert block["missing"] == later["missing"]
    assert bool(block["missing"]) == (confidence != "certain")
    # The same account of the cycle, then what each look adds.
    first, _, policy_words = block["explanation"].partition("\n")
    common = "Each thread waits, without a timeout, for what the next one holds or would " \
             "signal; none of them can go on."
    assert first.startswith(common) and later["explanation"].startswith(common)
    closer = {"t0", "t1"} & set(block["summary"].split(": ", 1)[1].split(" ", 1)[:1])
    assert closer and first.endswith(f"{closer.pop()} closed the cycle by starting to wait.")
    assert "seen unchanged twice" not in block["explanation"]
    assert "seen unchanged twice" in later["explanation"]
    assert policy_words == "The threads keep waiting; stuck reports it and does not act."
    assert block["details"]["policy"] == "report"


# An RLock cycle under ``stuck run`` (policy report): daemon threads, and a main thread that
# reads a line and then exits, so the run ends once the test has seen what it waits for.
REPORTED_TWICE = """
import sys, threading
a, b = threading.RLock(), threading.RLock()
gate = threading.Barrier(2)

def worker(first, second):
    with first:
        gate.wait()
        with second:
            pass

for i, pair in enumerate([(a, b), (b, a)]):
    threading.Thread(target=worker, args=pair, name=f"t{i}", daemon=True).start()
sys.stdin.readline()
print("done", flush=True)
"""


def test_the_watchdog_does_not_print_a_cycle_the_block_time_report_printed_again(
        tmp_path: Path) -> None:
    program = tmp_path / "cycle.py"
    program.write_text(REPORTED_TWICE)
    # The program ends when told to: once the watchdog has confirmed the cycle (its line is on
    # stderr), or after a deadline that only a watchdog that never confirms it reaches. (It
    # used to sleep 4 s, and the confirmation had to come by then, which load decides.)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", str(program)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True, cwd=str(tmp_path))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            err.seek(0)
            if "stuck: the deadlock reported above" in err.read():
                break
            time.sleep(0.05)
        try:
            stdout, _ = proc.communicate("\n", timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, err.read())
    assert out.returncode == 0, out.stderr
    assert out.stdout == "done\n"
    # In full once, when the cycle closed; then one line when the watchdog confirms it, with
    # what it adds (the waits seen unchanged twice), not the same report a second time.
    assert out.stderr.count("DEADLOCK (certain): 2 threads wait for each other") == 1, out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.startswith("stuck: the deadlock reported")]
    assert line.startswith("stuck: the deadlock reported above (certain) still holds: "
                           "2 threads wait for each other: ")
    assert "were seen unchanged twice" in out.stderr.split(line, 1)[1]
