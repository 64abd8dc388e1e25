"""Replay tokens: a failing schedule as a short, versioned string, and the strategy replaying it.

A token records the scheduling *decisions* (the creation index of the thread chosen at each
point where more than one thread could run), nothing about bytecode or OS threads, so it survives
Python upgrades and small edits that keep the program's synchronization order. Layout::

    "s2:" + base64url( varint(verdict code), varint(n), then n x (varint(thread), varint(run)),
                       then a 2-byte checksum of everything before it )

where the pairs run-length encode the decision list. The checksum tells a token damaged in
copying (a character lost or changed) from a program that changed since the token was made;
``s1`` tokens (the same without the checksum) are still read. A decision that names a thread which is not
runnable marks the point where the program now behaves differently: replay reports it as a
divergence and continues without preemption, so it still ends.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from stuck.errors import StuckError
from stuck.explore.strategy import BaseStrategy, non_preemptive

VERSION = "s2"
LEGACY_VERSIONS = ("s1",)  # read, never written
CHECKSUM_BYTES = 2
VERDICT_CODES = ("pass", "deadlock", "stall", "hang", "exception")


class TokenError(StuckError, ValueError):
    """Not a replay token this version of stuck can read."""


def _varint(n: int, out: bytearray) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _read_varints(data: bytes) -> list[int]:
    values: list[int] = []
    n = shift = 0
    for b in data:
        n |= (b & 0x7F) << shift
        if b & 0x80:
            shift += 7
            if shift > 63:
                raise TokenError("replay token: number too large")
        else:
            values.append(n)
            n = shift = 0
    if shift:
        raise TokenError("replay token: truncated")
    return values


def encode(choices: Sequence[int], verdict: str = "pass") -> str:
    out = bytearray()
    _varint(VERDICT_CODES.index(verdict) if verdict in VERDICT_CODES else 0, out)
    runs: list[tuple[int, int]] = []
    for c in choices:
        if runs and runs[-1][0] == c:
            runs[-1] = (c, runs[-1][1] + 1)
        else:
            runs.append((c, 1))
    _varint(len(runs), out)
    for c, k in runs:
        _varint(c, out)
        _varint(k, out)
    out += _checksum(bytes(out))
    return f"{VERSION}:" + base64.urlsafe_b64encode(bytes(out)).decode("ascii").rstrip("=")


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=CHECKSUM_BYTES).digest()


@dataclass
class Token:
    choices: list[int]
    verdict: str


def decode(token: str) -> Token:
    token = token.strip()
    version, sep, body = token.partition(":")
    if not sep:
        raise TokenError(f"not a replay token: {token[:40]!r} (expected '{VERSION}:...')")
    if version != VERSION and version not in LEGACY_VERSIONS:
        raise TokenError(f"replay token version {version!r} is not supported (this stuck "
                         f"reads {VERSION!r}); re-run the exploration to get a new token")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, TypeError) as exc:
        raise TokenError(f"replay token is damaged: {exc}") from None
    if base64.urlsafe_b64encode(data).decode("ascii").rstrip("=") != body:
        # The last character of a token carries unused bits: one changed there decodes to the
        # same bytes, and would pass as the token it is not.
        raise TokenError("replay token is damaged: it is not a token stuck wrote (its last "
                         "characters were changed in copying); copy the whole token again")
    if version == VERSION:
        data, check = data[:-CHECKSUM_BYTES], data[-CHECKSUM_BYTES:]
        if len(check) != CHECKSUM_BYTES or _checksum(data) != check:
            raise TokenError("replay token is damaged: its checksum does not match (part of it "
                             "was lost or changed in copying); copy the whole token again")
    values = _read_varints(data)
    if len(values) < 2:
        raise TokenError("replay token is damaged: too short")
    code, nruns = values[0], values[1]
    if code >= len(VERDICT_CODES) or len(values) != 2 + 2 * nruns:
        raise TokenError("replay token is damaged: inconsistent length")
    choices: list[int] = []
    for i in range(nruns):
        c, k = values[2 + 2 * i], values[3 + 2 * i]
        if k > 10_000_000:
            raise TokenError("replay token is damaged: run too long")
        choices.extend([c] * k)
    return Token(choices, VERDICT_CODES[code])


@dataclass
class Divergence:
    decision: int
    step: int
    wanted: int
    runnable: tuple[int, ...]

    def describe(self) -> str:
        if self.wanted < 0:
            return (f"the schedule diverged: the run ended after {self.decision} of the token's "
                    "decisions -- the program now runs differently from when the token was made "
                    "(its code or its input changed)")
        return (f"the schedule diverged at decision {self.decision} (step {self.step}): it "
                f"wants T{self.wanted}, but only {', '.join(f'T{i}' for i in self.runnable)} "
                "can run -- the program now runs differently from when the token was made "
                "(its code or its input changed)")


class Replay(BaseStrategy):
    """Follow recorded decisions; afterwards (or on divergence) never preempt."""

    name = "replay"

    def __init__(self, choices: Sequence[int]) -> None:
        self.choices = list(choices)
        self.pos = 0
        self.divergence: Divergence | None = None
        self.log: list[tuple[tuple[int, ...], int, int]] = []  # (runnable, current, chosen)

    def begin(self, execution: int) -> None:
        self.pos = 0
        self.divergence = None
        self.log = []

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        chosen = -1
        if self.pos < len(self.choices):
            wanted = self.choices[self.pos]
            if wanted in runnable:
                chosen = wanted
            elif self.divergence is None:
                self.divergence = Divergence(self.pos, step, wanted, tuple(runnable))
        self.pos += 1
        if chosen < 0:
            chosen = non_preemptive(runnable, current)
        self.log.append((tuple(runnable), current, chosen))
        return chosen

    def preemptions(self) -> int:
        return sum(1 for r, cur, ch in self.log if cur in r and ch != cur)

    def unconsumed(self) -> int:
        return max(0, len(self.choices) - self.pos)
