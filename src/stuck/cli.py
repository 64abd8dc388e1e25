"""The ``stuck`` command's entry point: as little as possible before SIGINT is dealt with.

``stuck run`` starts the way ``python`` does, as seen from a shell or a parent process:
Ctrl-C before the program starts ends the process by SIGINT (returncode -2), with no message
and no traceback from stuck's imports. Start-up (importing click and the runtime, parsing the
options, installing) takes a few hundred milliseconds on a loaded machine, so this matters
(see ``stuck.interrupt``). Everything else is imported after that: the command group lives in
``stuck.commands``.
"""

from __future__ import annotations

import sys

from stuck.interrupt import end_by_sigint_while_starting  # small, stdlib C module only


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        end_by_sigint_while_starting()
    from stuck.commands import group
    group()
