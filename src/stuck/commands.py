"""The command group: ``stuck run``, ``stuck analyze``, ``stuck explore``, ``stuck capture``
(the entry point that runs it is ``stuck.cli.main``).

Each command lives beside the code it drives and is imported only when invoked, so
``stuck analyze`` never loads the runtime and ``stuck run`` never loads the dump parsers.
Exit codes: 0 nothing found, 1 findings, 2 bad usage or unreadable input.
"""

from __future__ import annotations

import importlib

import click

from stuck.__about__ import __version__

# command name -> ("module", "attribute", one-line help shown in `stuck --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("stuck.runner", "run_command",
            "Run a Python program with deadlock detection on."),
    "analyze": ("stuck.analyze", "analyze_command",
                "Read thread dumps and name why the program is stuck."),
    "explore": ("stuck.explore.cli", "explore_command",
                "Search a test's interleavings for one that deadlocks."),
    "capture": ("stuck.capture.cli", "capture_command",
                "Read live processes from outside and name why they are stuck."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attribute, _ = spec
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stuck")
def group() -> None:
    """Find out why concurrent software is stuck, and catch it before it gets stuck."""
