"""Ctrl-C while ``stuck run`` starts: the process ends by SIGINT, as ``python`` would.

Under ``python``, a SIGINT that arrives before the program's first line ends the process by
the signal (a parent sees returncode -2): either the default action kills it, or the
interpreter's own handler raises KeyboardInterrupt and the interpreter, finding it uncaught,
kills itself by SIGINT. ``stuck run`` has much more to do first, in Python code: a
KeyboardInterrupt raised there would be caught by click (``Aborted!``, exit status 1) or
escape as a traceback from inside stuck's imports. So from the entry point until the
program's own code starts, SIGINT has its default action (the kernel ends the process at once;
stuck holds nothing that needs cleaning up at that point), and then the handler Python
installed is given back, so the program sees ``signal.getsignal(SIGINT)`` as under ``python``.

A SIGINT that the parent made ignored (``SIG_IGN``: a background job of a shell, ``nohup``)
stays ignored, as under ``python``. The C module ``_signal`` is used, not ``signal``, which
imports ``enum`` (tens of milliseconds during which Ctrl-C would still raise).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]

_held: list[object] = []  # the handler to give back to the program (at most one)


def end_by_sigint_while_starting() -> None:
    """From now until ``hand_sigint_to_program``, SIGINT ends the process. Main thread only."""
    sigint = getattr(_signal, "SIGINT", None)
    if sigint is None or _held:
        return
    handler = _signal.getsignal(sigint)
    if handler is _signal.default_int_handler:
        _signal.signal(sigint, _signal.SIG_DFL)
        _held.append(handler)


def hand_sigint_to_program() -> None:
    """Give SIGINT back its Python handler, just before the program's own code runs. A no-op
    when ``end_by_sigint_while_starting`` changed nothing (stuck run invoked in-process)."""
    if _held:
        _signal.signal(_signal.SIGINT, _held.pop())
