"""What a thread's current system call means for a wait, by architecture.

``/proc/PID/task/TID/syscall`` gives the number and the six arguments of the call a sleeping
thread is in. The numbers differ by architecture, so saved evidence carries the machine name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Meaning = Literal["read", "write", "accept", "connect", "poll", "futex", "sleep", "wait-child",
                  "signal", "file-lock", "other"]

# name -> what waiting in it means; the fd is argument 0 for read/write/accept/connect.
MEANINGS: dict[str, Meaning] = {
    "read": "read", "readv": "read", "pread64": "read", "preadv": "read", "recvfrom": "read",
    "recvmsg": "read", "recvmmsg": "read",
    "write": "write", "writev": "write", "pwrite64": "write", "pwritev": "write",
    "sendto": "write", "sendmsg": "write", "sendmmsg": "write", "splice": "other",
    "accept": "accept", "accept4": "accept", "connect": "connect",
    "poll": "poll", "ppoll": "poll", "select": "poll", "pselect6": "poll", "epoll_wait": "poll",
    "epoll_pwait": "poll", "epoll_pwait2": "poll", "io_getevents": "poll",
    "io_uring_enter": "poll",
    "futex": "futex", "nanosleep": "sleep", "clock_nanosleep": "sleep",
    # The kernel resumes an interrupted wait through restart_syscall only when the wait has a
    # deadline (a sleep, a futex or poll wait with a timeout: the restart carries the time
    # left); waits without one are re-entered as themselves. A debugger attaching (gdb, so
    # any earlier capture) interrupts every sleeping thread, so later readings show this.
    "restart_syscall": "sleep",
    "wait4": "wait-child", "waitid": "wait-child",
    "pause": "signal", "rt_sigsuspend": "signal", "rt_sigtimedwait": "signal",
    # A file lock: flock(2) without LOCK_NB, fcntl(2) F_SETLKW / F_OFD_SETLKW (see Call.meaning).
    "flock": "file-lock", "fcntl": "file-lock",
}

NUMBERS: dict[str, dict[int, str]] = {
    "x86_64": {
        0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv",
        20: "writev", 23: "select", 34: "pause", 35: "nanosleep", 42: "connect", 43: "accept",
        44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 61: "wait4", 72: "fcntl",
        73: "flock",
        128: "rt_sigtimedwait", 130: "rt_sigsuspend", 202: "futex", 208: "io_getevents",
        219: "restart_syscall",
        230: "clock_nanosleep", 232: "epoll_wait", 247: "waitid", 270: "pselect6",
        271: "ppoll", 275: "splice", 281: "epoll_pwait", 288: "accept4", 295: "preadv",
        296: "pwritev", 299: "recvmmsg", 307: "sendmmsg", 426: "io_uring_enter",
        441: "epoll_pwait2",
    },
    "aarch64": {
        22: "epoll_pwait", 25: "fcntl", 32: "flock", 63: "read", 64: "write", 65: "readv",
        66: "writev", 67: "pread64",
        68: "pwrite64", 69: "preadv", 70: "pwritev", 72: "pselect6", 73: "ppoll",
        76: "splice", 95: "waitid", 98: "futex", 101: "nanosleep", 115: "clock_nanosleep",
        128: "restart_syscall",
        133: "rt_sigsuspend", 137: "rt_sigtimedwait", 202: "accept", 203: "connect",
        206: "sendto", 207: "recvfrom", 211: "sendmsg", 212: "recvmsg", 242: "accept4",
        243: "recvmmsg", 260: "wait4", 269: "sendmmsg", 426: "io_uring_enter",
        441: "epoll_pwait2",
    },
}

FUTEX_CMD_MASK = 0x7F  # without FUTEX_PRIVATE_FLAG / FUTEX_CLOCK_REALTIME
FUTEX_WAITS = {0, 9, 11}  # FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAIT_REQUEUE_PI
FUTEX_LOCK_PI = {6, 13}  # FUTEX_LOCK_PI, FUTEX_LOCK_PI2
FUTEX_PRIVATE_FLAG = 0x80
LOCK_NB = 4  # flock(2): do not block
F_SETLKW, F_OFD_SETLKW = 7, 38  # fcntl(2): the lock commands that wait


@dataclass(slots=True)
class Call:
    """A system call a thread sleeps in, as ``/proc/…/syscall`` shows it."""

    number: int
    name: str  # "syscall 345" when the number is not known here
    args: list[int]

    @property
    def meaning(self) -> Meaning:
        meaning = MEANINGS.get(self.name, "other")
        if meaning == "file-lock" and len(self.args) > 1 and (
                (self.name == "flock" and self.args[1] & LOCK_NB)
                or (self.name == "fcntl" and self.args[1] not in (F_SETLKW, F_OFD_SETLKW))):
            return "other"  # a call that does not wait for a lock
        return meaning

    def fd(self) -> int | None:
        return self.args[0] if self.args and self.meaning in (
            "read", "write", "accept", "connect", "file-lock") else None

    def futex_shared(self) -> bool:
        """A futex wait without FUTEX_PRIVATE_FLAG: the word may be in memory shared with other
        processes (a process-shared semaphore or mutex), which can wake it too."""
        if self.name != "futex" or len(self.args) < 2:
            return False
        cmd = self.args[1] & FUTEX_CMD_MASK
        return (cmd in FUTEX_WAITS or cmd in FUTEX_LOCK_PI) \
            and not self.args[1] & FUTEX_PRIVATE_FLAG

    def futex_timed(self) -> bool:
        """A futex wait with a timeout: it ends by itself."""
        if self.name != "futex" or len(self.args) < 4:
            return False
        cmd = self.args[1] & FUTEX_CMD_MASK
        return (cmd in FUTEX_WAITS or cmd in FUTEX_LOCK_PI) and self.args[3] != 0

    def polls_forever(self) -> bool:
        """An epoll, poll or select wait with no timeout: only what it watches (or a signal)
        ends it."""
        if self.name in ("epoll_wait", "epoll_pwait") and len(self.args) > 3:
            return _int_t(self.args[3]) < 0  # timeout in ms; -1: none
        if self.name == "poll" and len(self.args) > 2:
            return _int_t(self.args[2]) < 0
        if self.name in ("epoll_pwait2", "ppoll") and len(self.args) > 3:
            return self.args[3 if self.name == "epoll_pwait2" else 2] == 0  # no timespec
        if self.name in ("select", "pselect6") and len(self.args) > 4:
            return self.args[4] == 0  # no timeval / timespec
        return False

    def epoll_fd(self) -> int | None:
        """The epoll instance an epoll wait waits on."""
        return self.args[0] if self.name.startswith("epoll_") and self.args else None

    def child(self) -> int:
        """For wait4/waitid: the child waited for, or -1 for any child (or any of a group)."""
        if self.name == "wait4" and self.args:
            pid = _pid_t(self.args[0])
            return pid if pid > 0 else -1
        if self.name == "waitid" and len(self.args) > 1 and self.args[0] == 1:  # P_PID
            pid = _pid_t(self.args[1])
            return pid if pid > 0 else -1
        return -1

    def same(self, other: Call | None) -> bool:
        return other is not None and other.number == self.number and other.args == self.args


def _int_t(register: int) -> int:
    """An int argument as the callee reads it: the low 32 bits, signed."""
    low = register & 0xFFFFFFFF
    return low - (1 << 32) if low >= 1 << 31 else low


def _pid_t(register: int) -> int:
    """A pid_t argument as the callee reads it: the low 32 bits, signed. The kernel prints the
    whole register, whose upper half a caller may leave zero (``wait4(-1, ...)`` shows as
    ``0xffffffff``) or sign-extended (``0xffffffffffffffff``)."""
    low = register & 0xFFFFFFFF
    return low - (1 << 32) if low >= 1 << 31 else low


def parse(text: str, machine: str) -> Call | None:
    """``"202 0x55d0 0x80 0x2 0x0 0x0 0x0 0x7ffd 0x7f12"`` -> Call; None when the thread is
    running, not in a call, or the text is not readable."""
    parts = text.split(maxsplit=9)
    if len(parts) < 7 or len(parts[0]) > 6:
        return None
    try:
        number = int(parts[0])
        args = [int(a, 16) for a in parts[1:7] if len(a) <= 18]
    except ValueError:  # "running", or not the kernel's text
        return None
    if number < 0 or len(args) != 6:
        return None
    name = NUMBERS.get(machine, NUMBERS["x86_64"]).get(number, f"syscall {number}")
    return Call(number=number, name=name, args=args)
