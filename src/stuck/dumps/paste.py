"""A dump as users paste it, made plain before any parser reads it.

Dumps reach ``stuck analyze`` through terminals, log collectors, bug trackers and e-mail, and
each adds its own wrapping: gdb's colour codes, journald and syslog prefixes with timestamps,
Markdown and e-mail quoting (``> ``), HTML entities from a web page (``&lt;``), Windows line
ends. Parsers match lines from their start, so every such layer would hide the dump from
them; ``clean`` takes the layers off once, for every format.

Each step is gated by a cheap test on the text (a substring found at C speed), so a plain dump
costs a few scans and no copy. The line-prefix steps look for their prefix in the first lines
only: a log collector or a quoting mail client wraps every line the same way, and sampling
keeps a 100 MB dump from being matched line by line for a prefix it does not have.
"""

from __future__ import annotations

import html
import re

# CSI sequences (colour, cursor) and OSC sequences (hyperlinks, titles) a terminal would eat.
_ANSI = re.compile(r"\x1b(?:\[[0-9;:?<=>]{0,64}[ -/]{0,4}[@-~]|\][^\x07\x1b]{0,4096}"
                   r"(?:\x07|\x1b\\)|[@-Z\\-_])")
# Entities a web page or an issue tracker's HTML adds to '<', '>', '&' and quotes.
_ENTITY_MARKERS = ("&lt;", "&gt;", "&amp;", "&quot;", "&#")
# Markdown block quotes and e-mail quoting: "> ", "> > ", ">>".
_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+", re.MULTILINE)
# syslog (RFC 3164, and journalctl's default "short" output), journalctl -o short-iso /
# short-precise, and RFC 5424 / ISO timestamps as log collectors put them before each line:
#   "Dec  4 21:00:46 host prog[123]: ", "2026-12-04T21:00:46.123+0000 host kernel: ",
#   "<13>Dec  4 21:00:46 host prog: ", "2026-12-04T21:00:46.123456789Z " (kubectl --timestamps)
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_ISO = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
# The host name may be missing (a syslog file written without it, or taken out before a
# paste: "May 17 18:48:11 kernel: "), and a Markdown code block indents every line by four.
_LOG_PREFIX = re.compile(
    r"^(?:[ ]{4}|\t)?(?:<\d{1,3}>\d?\s?)?(?:"
    rf"(?:{_MONTH} [ \d]\d \d\d:\d\d:\d\d(?:\.\d{{1,9}})?|{_ISO}) "
    r"(?:[\w.-]{1,255} )?[\w./@-]{1,255}(?:\[\d{1,10}\])?: "
    rf"|{_ISO}[ \t]+)",
    re.MULTILINE)
# An editor's or `cat -n`'s line numbers in front of every line ("162 [  843.07] INFO ...",
# "    12\tgoroutine 1 [...]"), told from a dump's own leading numbers (FreeBSD's procstat rows
# start with a pid) by counting up by one from line to line. A number column is a number and
# one tab or one space (a table's columns are wider apart: gdb's "info threads" rows,
# "  2    Thread 0x...").
_LINE_NUMBER = re.compile(r"^[ \t]{0,8}(\d{1,9})(?:\t| |$)", re.MULTILINE)
_NUMBER_COLUMN = re.compile(r"[ \t]{0,8}(\d{1,9})(?:\t| (?! )|$)")
_LINE_NUMBER_RUN = 8  # consecutive numbered lines, each one more than the last
# The tags a web page or an issue's HTML wraps a dump in: <pre>, <code> (with attributes), and
# their closing tags, wherever a line has them (a copied excerpt may lack the closing one).
# Only these names: a dump's own "<init>", "<0x0000000765282180>" and "<module>" stay.
_HTML_TAG = re.compile(r"</?(?:pre|code|samp|tt)(?:\s[^<>\n]{0,200})?>", re.IGNORECASE)
# A Markdown heading ("# Found one Java-level deadlock:") in a paste that has Markdown fences:
# the text of the heading is the dump's line. "#0  0x..." (a gdb frame) has no space after '#'.
_MD_HEADING = re.compile(r"^#{1,6}[ \t]+(?=\S)", re.MULTILINE)
_MD_FENCE = re.compile(r"^[ \t]{0,3}```", re.MULTILINE)
# The fence lines themselves ("```", "```text", "~~~"): Markdown, never a line of any dump;
# left in, one ends a jstack deadlock summary or splits a stack where a paste put it. A fence
# with the dump's first line on it ("```(gdb) thread 14", "```[43008.66] INFO: task ...")
# loses only its backticks: an info string is one word.
_MD_FENCE_LINE = re.compile(r"^[ \t]{0,3}(?:`{3,}|~{3,})(?:[ \t]*[\w+#.-]{0,40}[ \t]*(?:\n|\Z))?",
                            re.MULTILINE)
SAMPLE_LINES = 400  # lines looked at to decide whether a line-prefix step applies


def _head(text: str, lines: int = SAMPLE_LINES) -> str:
    end = 0
    for _ in range(lines):
        end = text.find("\n", end) + 1
        if end == 0:
            return text
    return text[:end]


def _numbered(head: str) -> bool:
    """True when the sampled lines carry a line-number column: one run of lines numbered n,
    n+1, n+2, ... that is at least ``_LINE_NUMBER_RUN`` long and nine lines in ten of the
    sample (a paste may add a line of its own before or after it)."""
    previous: int | None = None
    run = best = 0
    lines = head.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    for line in lines:
        m = _NUMBER_COLUMN.match(line)
        if m is None:
            previous, run = None, 0
            continue
        n = int(m.group(1))
        run = run + 1 if previous is not None and n == previous + 1 else 1
        best = max(best, run)
        previous = n
    return best >= _LINE_NUMBER_RUN and best * 10 >= len(lines) * 9


def clean(text: str) -> str:
    """``text`` with terminal colour, log prefixes, quoting, HTML entities and tags, Markdown
    headings, line-number columns and CR line ends (CR LF, or CR alone in a text without LF)
    removed. Linear in the size of the text;
    returns ``text`` itself when there is nothing to remove."""
    if "\r" in text:
        # CR LF line ends; a lone CR ends a line only in a text that has no LF at all (old Mac
        # line ends). Inside an LF text it is a character of the line: a thread's name may hold
        # one, and splitting there would cut that thread's header in two and lose the thread.
        text = text.replace("\r\n", "\n")
        if "\n" not in text:
            text = text.replace("\r", "\n")
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "&" in text and any(m in text for m in _ENTITY_MARKERS):
        text = html.unescape(text)
    if "<" in text and _HTML_TAG.search(text):
        text = _HTML_TAG.sub("", text)
    if ("```" in text or "~~~" in text) and _MD_FENCE_LINE.search(text):
        if "#" in text and _MD_FENCE.search(text) and _MD_HEADING.search(text):
            text = _MD_HEADING.sub("", text)
        text = _MD_FENCE_LINE.sub("", text)
    head = _head(text)
    if (text.startswith((">", " >", "  >", "   >")) or "\n>" in head or "\n >" in head
            or "\n  >" in head or "\n   >" in head) and _QUOTE.search(head):
        text = _QUOTE.sub("", text)
        head = _head(text)
    if (head[:1].isspace() or head[:1].isdigit()) and _numbered(_head(text, 64)):
        text = _LINE_NUMBER.sub("", text)
        head = _head(text)
    if _LOG_PREFIX.search(head):
        text = _LOG_PREFIX.sub("", text)
    return text


__all__ = ["clean"]
