"""Python source lines the lock reading must understand: two statements on one line
(``a = Lock(); b = Lock()``) and a ``with`` whose body shares its line (``with b: pass``)."""

from __future__ import annotations

from pathlib import Path

from stuck.analysis import analyze
from stuck.dumps import load_dump

# Written the way people write short scripts; the dump below is py-spy 0.3's output for it.
SOURCE = """\
import threading, time
posted = threading.Lock(); checked = threading.Lock()
def tick():
    while True:
        time.sleep(0.3)
threading.Thread(target=tick, name="tick", daemon=True).start()
def post():
    with posted:
        time.sleep(0.2)
        with checked: pass
def check():
    with checked:
        time.sleep(0.2)
        with posted: pass
ts = [threading.Thread(target=post, name="poster"), threading.Thread(target=check, name="checker")]
for t in ts: t.start()
for t in ts: t.join()
"""

DUMP = """\
Process 30984: python3 short.py
Python v3.11.7 (/usr/bin/python3.11)

Thread 30984 (idle): "MainThread"
    Thread._wait_for_tstate_lock (threading.py:1139)
    Thread.join (threading.py:1119)
    <module> (short.py:17)
Thread 30997 (idle): "tick"
    tick (short.py:5)
    Thread.run (threading.py:982)
    Thread._bootstrap_inner (threading.py:1045)
    Thread._bootstrap (threading.py:1002)
Thread 30998 (idle): "poster"
    post (short.py:10)
    Thread.run (threading.py:982)
    Thread._bootstrap_inner (threading.py:1045)
    Thread._bootstrap (threading.py:1002)
Thread 30999 (idle): "checker"
    check (short.py:14)
    Thread.run (threading.py:982)
    Thread._bootstrap_inner (threading.py:1045)
    Thread._bootstrap (threading.py:1002)
"""


def test_semicolon_globals_and_one_line_with_bodies_close_the_lock_cycle(tmp_path: Path) -> None:
    (tmp_path / "short.py").write_text(SOURCE)
    loaded = load_dump(DUMP, "auto", "short.txt", sources=[str(tmp_path)])
    rep = analyze(loaded.snapshot, loaded.stated, loaded.inferred)
    [d] = [f for f in rep.findings if f.kind == "deadlock"]
    assert d.confidence in ("possible", "probable")  # owners read from the source
    names = {t.id: t.name for t in rep.snapshot.threads()}
    assert {names[t] for t in d.threads} == {"poster", "checker"}
    labels = {rep.snapshot.resource_map()[e.waits_for].label.split()[0] for e in d.cycle}
    assert labels == {"posted", "checked"}


def test_without_the_source_no_cycle_is_claimed() -> None:
    loaded = load_dump(DUMP, "auto", "short.txt")
    rep = analyze(loaded.snapshot, loaded.stated, loaded.inferred)
    assert not [f for f in rep.findings if f.kind == "deadlock"]
