"""Go source beside a goroutine dump: what a goroutine's own code can reach.

A Go dump shows where each goroutine is, not what it will do when it runs again. When a
goroutine that may run again (a ticker loop, a sleeper) could end another goroutine's wait, a
rule has to assume it might: it could unlock the mutex, serve the channel. The source says
more when the goroutine runs a function literal started by a ``go func() { ... }()`` statement
(the ``created by`` line of the dump names that statement's file and line): the literal's body
is all the code the goroutine runs, unless it calls code of the program. A body that

- calls nothing but functions of standard-library packages it imports (``time.NewTicker``)
  and Go's builtins, and
- names none of the identifiers on the line another goroutine waits at (``jobs <- i``,
  ``mu.Lock()``),

cannot end that wait: Go code reaches a mutex or a channel only through a name for it (a
captured variable, an argument, a field), or through a call that reaches it. Anything else (a
named function, a method call, a file that cannot be read or is not a ``.go`` file) says
nothing, and the rule keeps assuming the worst. The source on disk may differ from the code
that ran, which the finding says. A file is read at the path the dump prints, or, with
``--source DIR`` (``stuck analyze`` and ``stuck capture``), under DIR
(``stuck.stacks.sourcepath``): a binary records the paths it was built from, which may be on
another machine. Files are read only if they are small; their text is never executed.
"""

from __future__ import annotations

import os
import re

from stuck.stacks import sourcepath

MAX_SOURCE = 1 << 20  # bytes: a larger file is not read
MAX_FILES = 1024
MAX_BODY = 20_000  # characters of a function literal read

_files: dict[tuple[str, tuple[str, ...]], tuple[list[str], set[str]] | None] = {}
_bodies: dict[tuple[str, int, tuple[str, ...]], tuple[str, set[str]] | None] = {}
MAX_BODIES = 4096

_KEYWORDS = frozenset({
    "break", "case", "chan", "const", "continue", "default", "defer", "else", "fallthrough",
    "for", "func", "go", "goto", "if", "import", "interface", "map", "package", "range",
    "return", "select", "struct", "switch", "type", "var", "nil", "true", "false", "iota",
    "_"})
_BUILTINS = frozenset({
    "append", "cap", "clear", "close", "complex", "copy", "delete", "imag", "len", "make",
    "max", "min", "new", "panic", "print", "println", "real", "recover", "int", "int8",
    "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "uintptr",
    "float32", "float64", "string", "byte", "rune", "bool", "error", "any"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a call: an identifier, or a selector pkg.F, followed by "(" (a conversion looks the same)
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)(?:\s*\.\s*([A-Za-z_]\w*))?\s*\(")
_IMPORTS = re.compile(r'^import\s*(\([^)]{0,10000}\)|[^\n]{0,300})', re.M)
_IMPORT_SPEC = re.compile(r'(?:([A-Za-z_]\w*|\.)\s+)?"([^"\s]{1,200})"')
# Strings, runes and comments, replaced by spaces (newlines kept) before reading code.
_NOISE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|`[^`]*`|\'(?:[^\'\\\n]|\\.)*\'',
                    re.S)


def forget() -> None:
    """Drop what was read (the files may have changed since)."""
    _files.clear()
    _bodies.clear()


def _blank(m: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", m.group(0))


def source_lines(path: str | None, dirs: tuple[str, ...] = ()) -> list[str] | None:
    """The lines of a Go file the dump names (comments and literals blanked), None when it
    cannot be read. ``dirs``: where else to look (``--source DIR``, ``stuck.stacks.sourcepath``)."""
    read = _read(path, dirs)
    return read[0] if read is not None else None


def _read(path: str | None, dirs: tuple[str, ...] = ()) -> tuple[list[str], set[str]] | None:
    """(code lines, standard packages imported) of a Go file, read once. The path as the dump
    prints it counts only when absolute (a Go binary records absolute paths; a relative one
    would be read from wherever stuck runs); under ``dirs``, its suffixes."""
    if not path or not path.endswith(".go"):
        return None
    key = (path, dirs)
    if key in _files:
        return _files[key]
    out: tuple[list[str], set[str]] | None = None
    for cand in sourcepath.candidates(path, dirs)[0 if os.path.isabs(path) else 1:]:
        try:
            if not os.path.isfile(cand) or os.path.getsize(cand) > MAX_SOURCE:
                continue
            with open(cand, encoding="utf-8", errors="replace") as f:
                raw = f.read()
        except OSError:
            continue
        out = (_NOISE.sub(_blank, raw).split("\n"), _std_packages(raw))
        break
    if len(_files) < MAX_FILES:
        _files[key] = out
    return out


def names_at(path: str | None, line: int | None,
             dirs: tuple[str, ...] = ()) -> frozenset[str] | None:
    """The identifiers on a source line (a waiter's ``jobs <- i``: ``jobs``, ``i``), keywords
    and builtins left out; None when the line cannot be read or names nothing."""
    lines = source_lines(path, dirs)
    if lines is None or not line or line > len(lines):
        return None
    names = frozenset(n for n in _IDENT.findall(lines[line - 1])
                      if n not in _KEYWORDS and n not in _BUILTINS)
    return names or None


def _std_packages(raw: str) -> set[str]:
    """Names of the standard-library packages a file imports (an import path whose first
    element has no dot: ``time``, ``sync/atomic``), from its import declarations."""
    out: set[str] = set()
    for decl in _IMPORTS.finditer(raw[:20_000]):
        for alias, path in _IMPORT_SPEC.findall(decl.group(1)):
            if "." not in path.split("/", 1)[0] and alias not in (".", "_"):
                out.add(alias or path.rsplit("/", 1)[-1])
    return out


def literal_body(path: str | None, line: int | None,
                 dirs: tuple[str, ...] = ()) -> tuple[str, set[str]] | None:
    """Like ``_literal_body``, read once for each place (many goroutines share a go statement)."""
    key = (path or "", line or 0, dirs)
    if key in _bodies:
        return _bodies[key]
    body = _literal_body(path, line, dirs)
    if len(_bodies) < MAX_BODIES:
        _bodies[key] = body
    return body


def _literal_body(path: str | None, line: int | None,
                  dirs: tuple[str, ...] = ()) -> tuple[str, set[str]] | None:
    """The body of the function literal a ``go func(...) { ... }(...)`` statement at ``line``
    starts, and the standard packages its file imports; None when that line holds no such
    statement or the file cannot be read."""
    read = _read(path, dirs)
    if read is None or not line or line > len(read[0]):
        return None
    lines, std = read
    text = "\n".join(lines[line - 1:line - 1 + 400])
    m = re.search(r"\bgo\s+func\s*\(", text[:len(lines[line - 1]) + 1])
    if m is None:
        return None
    depth = 0
    start = -1
    paren = 0
    i = m.end() - 1
    end = min(len(text), i + MAX_BODY)
    while i < end:
        c = text[i]
        if start < 0:
            if c == "(":
                paren += 1
            elif c == ")":
                paren -= 1
            elif c == "{" and paren == 0:
                start = i + 1
                depth = 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                # the literal's own parameters and the go statement's arguments too
                tail = text[i + 1:text.find("\n", i + 1) if "\n" in text[i + 1:] else len(text)]
                return text[m.start():i + 1] + tail, std
        i += 1
    return None


def cannot_reach(body: tuple[str, set[str]], names: frozenset[str]) -> bool:
    """True when a literal body (``literal_body``) names none of ``names`` and calls nothing
    but standard-library functions and builtins: it cannot end a wait on them."""
    code, std = body
    found = set(_IDENT.findall(code))
    if found & names:
        return False
    for m in _CALL.finditer(code):
        first, second = m.group(1), m.group(2)
        if second is None:
            if first in _BUILTINS or first == "func":
                continue
            return False  # a function of the program (or a conversion we cannot tell apart)
        if first not in std:
            return False  # a method call, or another package's function: it may reach it
    return True
