"""Format detection of a large text from its two ends (``stuck.dumps.detect_formats``): the
same answer as scanning the whole text, whenever another format sits anywhere but inside a
block of the dump with no blank line before it."""

from __future__ import annotations

import pytest

from stuck import dumps
from stuck.dumps import DETECT_WINDOW, _detect_all, detect_formats

GOROUTINE = ("goroutine {n} [chan receive, 2 minutes]:\n"
             "main.worker(0xc000300000, 0x{n:x})\n\t/app/pool.go:23 +0x85\n"
             "created by main.main\n\t/app/main.go:30 +0x1d2\n\n")
GDB = ('Thread 2 (Thread 0x7f0000000002 (LWP 1002) "worker"):\n'
       "#0  ___pthread_mutex_lock (mutex=0x5600 <lock_a>) at ./nptl/pthread_mutex_lock.c:93\n"
       "#1  0x000055555555a2a6 in work () at store.cc:210\n\n")
PYSPY = ('Thread 7 (idle): "MainThread"\n    wait (threading.py:320)\n\n')


def go_dump(size: int) -> str:
    parts = ["SIGQUIT: quit\nPC=0x46b1c1 m=0 sigcode=0\n\n"]
    n, total = 1, 0
    while total < size:
        parts.append(GOROUTINE.format(n=n))
        total += len(parts[-1])
        n += 1
    return "".join(parts)


BIG = go_dump(4 * DETECT_WINDOW)
MIDDLE = BIG.find("goroutine ", len(BIG) // 2)


@pytest.mark.parametrize("text", [
    BIG,
    BIG + "rax    0x0\nrbx    0x1\n",  # the register block a SIGQUIT dump ends with
    GDB + BIG,
    BIG + GDB,
    BIG[:MIDDLE] + GDB + BIG[MIDDLE:],  # another dump in the middle, after a blank line
    BIG[:MIDDLE] + PYSPY + BIG[MIDDLE:],
    BIG[:MIDDLE] + "Some prose about the hang.\n\n" + GDB + BIG[MIDDLE:],
], ids=["go", "go+registers", "gdb+go", "go+gdb", "gdb-in-middle", "pyspy-in-middle",
        "prose-and-gdb-in-middle"])
def test_windowed_detection_agrees_with_a_full_scan(text: str) -> None:
    assert len(text) > 3 * DETECT_WINDOW
    assert detect_formats(text) == _detect_all(text)


def test_a_large_go_dump_is_detected_from_its_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The middle of a pure Go dump is not scanned by any detector (only counted)."""
    seen: list[int] = []
    real = dumps._detect_all

    def spy(text: str) -> list[str]:
        seen.append(len(text))
        return real(text)

    monkeypatch.setattr(dumps, "_detect_all", spy)
    assert detect_formats(BIG) == ["go"]
    assert seen and max(seen) < 2 * DETECT_WINDOW


def test_another_format_in_the_middle_makes_a_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = dumps._detect_all

    def spy(text: str) -> list[str]:
        seen.append(len(text))
        return real(text)

    monkeypatch.setattr(dumps, "_detect_all", spy)
    text = BIG[:MIDDLE] + GDB + BIG[MIDDLE:]
    assert detect_formats(text) == ["gdb", "go"]
    assert max(seen) == len(text)


def _gdb_dump(size: int) -> str:
    parts, n, total = ["[Thread debugging using libthread_db enabled]\n\n"], 1, 0
    while total < size:
        parts.append(GDB.replace("Thread 2 (", f"Thread {n} (").replace("LWP 1002", f"LWP {n}"))
        total += len(parts[-1])
        n += 1
    return "".join(parts)


BIG_GDB = _gdb_dump(4 * DETECT_WINDOW)
GDB_MIDDLE = BIG_GDB.find("\n\n", len(BIG_GDB) // 2) + 2


@pytest.mark.parametrize(("text", "formats"), [
    (BIG_GDB, ["gdb"]),
    (BIG_GDB[:GDB_MIDDLE] + GOROUTINE.format(n=1) + BIG_GDB[GDB_MIDDLE:], ["gdb", "go"]),
], ids=["gdb", "go-in-gdb"])
def test_gdb_dumps_too(text: str, formats: list[str]) -> None:
    assert detect_formats(text) == _detect_all(text) == formats
