"""The JDK's own thread dump in text form (JDK 21+): ``jcmd PID Thread.dump_to_file -format=text
FILE``, the one dump that shows virtual threads.

jstack shows platform threads only: a virtual thread parked in a wait is unmounted from its
carrier and appears nowhere, so a deadlock between virtual threads is invisible to it (main's
join on one of them is all that shows). This dump lists every thread, virtual ones marked
``virtual``, each with its state and stack, in a layout close to jstack's:

    #23 "post" virtual WAITING 2026-12-05T11:16:14.375288979Z
        at java.base/java.lang.VirtualThread.park(VirtualThread.java:742)
        - parking to wait for <java.util.concurrent.locks.ReentrantLock$NonfairSync@1f0d34d>

It is read by writing each thread in jstack's form (a header with the state line, frames
without the module prefix, lock lines with the object's identity hash standing for its
address) and handing that to the jstack reader, so both formats get one set of semantics. It
prints no lock owners (no ``Locked ownable synchronizers``) and no thread ids.
"""

from __future__ import annotations

import re

from stuck.dumps import ParseResult, jstack
from stuck.dumps._text import has_any_line

NAME = "jdkdump"

_HEADER = re.compile(
    r'^#(\d{1,19}) "(.*)"( virtual)? (NEW|RUNNABLE|BLOCKED|WAITING|TIMED_WAITING|TERMINATED)'
    r"(?: \S+)?\s*$")
_DETECT_LINE = re.compile(
    r'#\d{1,19} ".*"(?: virtual)? (?:NEW|RUNNABLE|BLOCKED|WAITING|TIMED_WAITING|TERMINATED)'
    r"(?: \d{4}-\d\d-\d\dT\S+)?\s*$")
_DETECT = (('" ', _DETECT_LINE),)
# "- parking to wait for <java.util.concurrent.locks.ReentrantLock$NonfairSync@1f0d34d>"
_LOCK = re.compile(r"^- ([a-z][a-z ()-]{2,40}?) <([^<>@\s]{1,400})@([0-9a-f]{1,16})>$")
# "at java.base/java.lang.Thread.join(Thread.java:1870)": the module before the class
_FRAME = re.compile(r"^at (?:([\w.$-]{1,200})/)?([^\s(]{1,1000})\((.{0,400})\)$")
_VERSION = re.compile(r"^\d{1,4}(?:\.\d{1,4})*(?:[+-][\w.+-]{0,40})?$")


def detect(text: str) -> bool:
    return has_any_line(text, _DETECT)


def _state_words(state: str, lines: list[str]) -> tuple[str, str]:
    """(jstack's header words, its state line's qualifier) for a thread's state and stack."""
    parks = any(s.startswith("- parking to wait for") for s in lines)
    waits = any(s.startswith("- waiting on") for s in lines)
    sleeps = any("java.lang.Thread.sleep" in s for s in lines[:4])
    if state == "BLOCKED":
        return "waiting for monitor entry", " (on object monitor)"
    if state in ("WAITING", "TIMED_WAITING"):
        if parks:
            return "waiting on condition", " (parking)"
        if waits:
            return "in Object.wait()", " (on object monitor)"
        if sleeps:
            return "waiting on condition", " (sleeping)"
        return "waiting on condition", ""
    return "runnable", ""


def to_jstack(text: str) -> str:
    """The dump in jstack's layout: one header and state line per thread, frames and lock
    lines as jstack prints them; everything else is dropped."""
    out: list[str] = []
    version = None
    block: list[str] = []
    head: re.Match[str] | None = None

    def flush() -> None:
        if head is None:
            return
        number, name, virtual, state = head.group(1), head.group(2), head.group(3), head.group(4)
        if not name:  # virtual threads are unnamed unless the program names them
            name = f"{'virtual ' if virtual else ''}thread #{number}"
        words, qualifier = _state_words(state, block)
        out.append(f'"{name}" #{number}{" virtual" if virtual else ""} prio=5 os_prio=0 '
                   f"tid=0x0 nid=0x{int(number):x} {words}")
        out.append(f"   java.lang.Thread.State: {state}{qualifier}")
        for s in block:
            fm = _FRAME.match(s)
            if fm:
                module, function, where = fm.group(1), fm.group(2), fm.group(3)
                if module and where != "Native Method":
                    where = f"{module}/{where}"
                out.append(f"\tat {function}({where})")
                continue
            lm = _LOCK.match(s)
            if lm:
                out.append(f"\t- {lm.group(1)} <0x{lm.group(3)}> (a {lm.group(2)})")
        out.append("")

    for raw in text.split("\n"):  # only LF ends a line: a CR or U+2028 may be in a name
        s = raw.strip()
        m = _HEADER.match(s)
        if m:
            if head is None:
                out.append(f"Full thread dump (JDK thread dump{', ' + version if version else ''}):")
                out.append("")
            flush()
            head, block = m, []
            continue
        if s in ("...", "…", "[...]"):  # threads left out of a paste: an excerpt
            flush()
            head, block = None, []
            out.append("...")
            continue
        if head is None:
            if version is None and _VERSION.match(s) and ("." in s or "+" in s):
                version = s[:60]
            continue
        if s:
            block.append(s)
    flush()
    if out:
        # The dump lists every thread, as jstack's ends with this line after the last one.
        out.append("JNI global refs: (not printed by a JDK thread dump)")
    return "\n".join(out) + "\n"


def parse(text: str) -> ParseResult:
    result = jstack.parse(to_jstack(text), virtual_threads_shown=True)
    result.notes.append("a JDK thread dump (Thread.dump_to_file): it shows virtual threads, "
                        "but no lock owners; `jstack -l PID` prints the owners of the "
                        "platform threads' locks")
    return result
