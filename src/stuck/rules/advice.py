"""What to capture next: the exact command that shows what a dump lacks, for its source.

A finding from a dump says what it could not see (``missing_evidence``); these say how to see
it: every thread again (an excerpt), or who holds a lock whose owner the dump does not print.
"""

from __future__ import annotations

from stuck.model import Resource, Snapshot
from stuck.rules.reading import res_name


def capture_command(snap: Snapshot) -> str:
    """The exact command that captures every thread again, for this dump's source."""
    return capture_command_for((snap.source.format or "").split("+", 1)[0])


def capture_command_for(fmt: str) -> str:
    """The exact command that captures every thread again, for a dump in format ``fmt``."""
    return {"gdb": "gdb -p PID -batch -ex 'thread apply all bt'",
            "go": "GOTRACEBACK=all and kill -QUIT PID (every goroutine)",
            "jstack": "jstack -l PID",
            "jdkdump": "jcmd PID Thread.dump_to_file -format=text FILE",
            "proc": "stuck capture PID"}.get(fmt, "py-spy dump --pid PID")


def capture_all(snap: Snapshot) -> str:
    """What to capture when the text visibly lacks threads: the exact command."""
    return lacks_threads((snap.source.format or "").split("+", 1)[0])


def lacks_threads(fmt: str) -> str:
    """What to capture when a text in format ``fmt`` visibly lacks threads (goroutines, for a
    Go dump): the exact command, or ``stuck capture``."""
    if fmt == "go":
        return ("the text lacks goroutines of this program (an excerpt), and who holds or "
                "would end these waits may be among them: capture every goroutine "
                "(GOTRACEBACK=all and kill -QUIT PID), or run `stuck capture PID`")
    how = capture_command_for(fmt)
    return ("the text lacks threads of this process (an excerpt), and who holds or would "
            f"end these waits may be among them: capture every thread ({how}), or run "
            "`stuck capture PID`")


def owner_hint(snap: Snapshot, res: Resource) -> str:
    """What to capture to learn who holds ``res``: the exact command for its source."""
    name = res_name(res, res.id)
    if res.id.startswith("gdb") and res.kind in ("mutex", "rwlock"):
        if res.label.isidentifier():
            how = f"`print {res.label}`"
        elif res.address:
            how = (f"`print *(pthread_mutex_t *) {res.address}` (without symbols: "
                   f"`x/3dw {res.address}`, the third number)")
        else:
            how = "`print *mutex` in the waiting thread's pthread_mutex_lock frame"
        return (f"which thread holds {name} is not in the dump: in gdb, {how} shows "
                "`__owner`, the LWP that holds it")
    if res.id.startswith("go"):
        return (f"which goroutine holds {name} is not in the dump: Go does not record "
                "mutex owners; look for the goroutine that locked it and has not unlocked "
                "it (a method on the same object: its address as the first argument)")
    if res.id.startswith("linux"):
        return (f"which task holds {name} is not in the dump: lockdep's 'Showing all locks "
                "held' list (`echo d > /proc/sysrq-trigger`) names it")
    if "jstack" in (snap.source.format or ""):
        if res.kind == "rwlock":
            return (f"which threads hold {name} is not in the dump: `jstack -l PID` "
                    "prints a write lock's owner under 'Locked ownable synchronizers'; "
                    "no thread dump shows read-lock holders (a heap dump does: "
                    "`jcmd PID GC.heap_dump FILE`)")
        return f"which thread holds {name} is not in the dump: `jstack -l PID` prints it"
    if res.kind == "rlock":
        return (f"which thread holds {name} is not in the dump; take the dump with `py-spy "
                "dump --locals` (an RLock prints `owner=`) or run the program under `stuck "
                "run`, which tracks owners")
    # A threading.Lock records no owner: no Python dump can print one.
    return (f"which thread holds {name} is not in the dump (a threading.Lock records no "
            "owner, so no Python dump prints one): with the program's source beside the dump "
            "(`stuck analyze --source DIR`), the `with` and `acquire()` lines around each "
            "thread's frames say which locks it holds; or run the program under `stuck run`, "
            "which tracks owners")
