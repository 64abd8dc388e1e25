"""The Go parser shares stacks, header meanings and waited resources between goroutines; what
it gives each goroutine must be what that goroutine's own text says, as if read alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stuck.dumps import go
from stuck.model import Thread

from .helpers import CORPUS, GENERATED, dump_text

GO_FIXTURES = sorted([*GENERATED.glob("go-*.txt"), *CORPUS.glob("07-*.txt"),
                      *CORPUS.glob("21-*.txt")])


def _goroutine_blocks(text: str) -> list[str]:
    """Each goroutine's header and body, cut at blank lines."""
    return [block for block in re.split(r"\n\s*\n", text)
            if block.startswith("goroutine ") and " [" in block.split("\n", 1)[0]]


def _facts(t: Thread) -> tuple[object, ...]:
    return (t.id, t.state, t.detail, [(f.function, f.file, f.line) for f in t.frames],
            None if t.waits is None else (t.waits.duration, t.waits.durable,
                                          t.waits.resource.split(":", 1)[1]))


def _threads(text: str) -> list[Thread]:
    return [t for p in go.parse(text).processes for t in p.threads]


@pytest.mark.parametrize("path", GO_FIXTURES, ids=lambda p: Path(p).name)
def test_each_goroutine_reads_as_if_parsed_alone(path: Path) -> None:
    text = dump_text(path)
    together = {t.id: t for t in _threads(text)}
    blocks = _goroutine_blocks(text)
    assert blocks and len(together) >= len(blocks)
    for block in blocks:
        alone = _threads(block)
        assert len(alone) == 1
        assert _facts(together[alone[0].id]) == _facts(alone[0])


def test_same_locations_with_other_functions_are_not_mistaken_for_a_known_stack() -> None:
    frame = "{fn}(0xc000{i:06x})\n\t/app/main.go:10 +0x1\n"
    text = "".join(f"goroutine {i} [chan receive]:\n"
                   + frame.format(fn="main.worker" if i % 2 else "main.other", i=i)
                   + "created by main.main\n\t/app/main.go:3 +0x2\n\n" for i in range(1, 7))
    functions = {t.id: t.frames[0].function for t in _threads(text)}
    assert functions == {f"goroutine {i}": "main.worker" if i % 2 else "main.other"
                         for i in range(1, 7)}


def test_waiters_on_one_mutex_share_its_resource_and_others_get_their_own() -> None:
    def goroutine(i: int, addr: int) -> str:
        return (f"goroutine {i} [sync.Mutex.Lock]:\n"
                f"sync.(*Mutex).Lock(0xc000{addr:06x})\n\t/go/src/sync/mutex.go:81 +0x47\n"
                f"main.job(0xc000{i:06x})\n\t/app/main.go:20 +0x1\n\n")

    text = "".join(goroutine(i, 0x100 if i <= 3 else 0x200 + i) for i in range(1, 7))
    result = go.parse(text)
    waits = {t.id: t.waits.resource for t in result.processes[0].threads if t.waits}
    assert len(waits) == 6
    assert len({waits[f"goroutine {i}"] for i in (1, 2, 3)}) == 1
    assert len(set(waits.values())) == 4
    addresses = {r.id: r.address for r in result.resources}
    assert addresses[waits["goroutine 1"]] == "0xc000000100"
    assert addresses[waits["goroutine 5"]] == "0xc000000205"


def test_a_goroutine_cut_short_by_the_fatal_line_keeps_the_frames_before_it() -> None:
    text = ("goroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:5 +0x1\n"
            "fatal error: all goroutines are asleep - deadlock!\n\n"
            "goroutine 1 [chan receive]:\nmain.main()\n\t/app/main.go:5 +0x1\n")
    result = go.parse(text)
    assert [len(p.threads) for p in result.processes] == [1, 1]
    assert [f.function for p in result.processes for t in p.threads for f in t.frames] == [
        "main.main", "main.main"]
