"""What a Python frame means: which call is a lock wait, I/O, a sleep, an idle worker.

One table for every source that sees Python stacks: the dump formats (faulthandler, py-spy,
pystack: frames as text, the file sometimes shortened) and the live watchdog (frames as
objects). Each reads its frames its own way and asks here what a frame's function means.
Standard library only: the runtime imports it inside the user's program.
"""

from __future__ import annotations

from typing import Literal

# What a thread is doing, judged from its stack alone.
Activity = Literal["running", "io", "blocked", "idle", "sleeping"]

# Names of calls that block outside the interpreter, seen at the call site of user code
# (``sock.recv(1024)``: the innermost Python frame is the caller, the callee is C).
CALL_ACTIVITY: dict[str, Activity] = {
    "sleep": "sleeping", "pause": "sleeping", "sigwait": "sleeping",
    "accept": "idle",
    "recv": "io", "recv_into": "io", "recvfrom": "io", "recvfrom_into": "io", "recvmsg": "io",
    "send": "io", "sendall": "io", "sendto": "io", "sendfile": "io", "connect": "io",
    "create_connection": "io", "getaddrinfo": "io", "gethostbyname": "io", "urlopen": "io",
    "read": "io", "readline": "io", "readlines": "io", "readinto": "io", "write": "io",
    "select": "io", "poll": "io", "epoll": "io", "kevent": "io", "control": "io",
    "communicate": "io", "waitpid": "io", "check_output": "io", "run": "io", "input": "io",
    "acquire": "blocked", "wait": "blocked", "join": "blocked", "get": "blocked",
    "put": "blocked", "result": "blocked", "exception": "blocked", "wait_for": "blocked",
}

# Innermost stdlib frames: (file name ending, function) -> activity.
STDLIB_ACTIVITY: dict[tuple[str, str], Activity] = {
    ("threading.py", "wait"): "blocked", ("threading.py", "acquire"): "blocked",
    ("threading.py", "join"): "blocked", ("threading.py", "_wait_for_tstate_lock"): "blocked",
    ("threading.py", "wait_for"): "blocked",
    ("queue.py", "get"): "blocked", ("queue.py", "put"): "blocked",
    ("_base.py", "result"): "blocked", ("_base.py", "exception"): "blocked",
    ("_base.py", "wait"): "blocked", ("_base.py", "as_completed"): "blocked",
    ("thread.py", "_worker"): "idle",  # concurrent.futures worker waiting for a work item
    ("socket.py", "accept"): "idle", ("socket.py", "readinto"): "io",
    ("socket.py", "create_connection"): "io", ("ssl.py", "read"): "io",
    ("ssl.py", "recv"): "io", ("ssl.py", "recv_into"): "io", ("ssl.py", "do_handshake"): "io",
    ("selectors.py", "select"): "io", ("subprocess.py", "wait"): "io",
    ("subprocess.py", "_wait"): "io", ("subprocess.py", "_try_wait"): "io",
    ("subprocess.py", "communicate"): "io", ("subprocess.py", "_communicate"): "io",
    ("socketserver.py", "serve_forever"): "idle",
}

# Innermost standard-library functions that wait on I/O (a socket, a pipe, a child process).
IO_FUNCTIONS = frozenset({
    "select", "poll", "epoll", "kqueue", "recv", "recv_into", "recvfrom", "recvmsg", "accept",
    "read", "readinto", "readline", "readlines", "_recv", "_read", "sock_recv", "connect",
    "create_connection", "getaddrinfo", "communicate", "_communicate", "_try_wait", "waitpid",
    "urlopen", "getresponse", "_read_status", "begin", "sendall", "send", "write",
})
# Waits on another process: the thread waits until a child exits.
PROCESS_WAITS = frozenset({"_try_wait", "waitpid", "wait4"})
# subprocess.Popen methods that wait for the child: wait() until it exits, communicate() until
# it closes its output pipes and exits (it reads them to the end first).
CHILD_WAITS = frozenset({"_try_wait", "_wait", "wait", "communicate", "_communicate"})
# Calls that wait for a signal, which only something outside the process sends (sigtimedwait
# has a timeout and ends by itself).
SIGNAL_WAITS = frozenset({"sigwait", "sigwaitinfo", "pause"})
# How py-spy (short file names) prints standard-library files a wait passes through.
STDLIB_SHORT = frozenset({
    "threading.py", "queue.py", "selectors.py", "socket.py", "ssl.py", "subprocess.py", "signal.py",
    "_base.py", "thread.py", "concurrent/futures/_base.py", "concurrent/futures/thread.py",
    "logging/__init__.py", "logging/handlers.py", "multiprocessing/queues.py",
    "importlib/_bootstrap.py", "<frozen importlib._bootstrap>",
})
# Native frames under a Python frame (py-spy --native, pystack --native) that say which C call
# the interpreter is inside.
NATIVE_IO = ("select", "poll", "epoll_wait", "recv", "accept", "read", "__libc_read",
             "__libc_recv", "kevent", "waitpid", "wait4", "connect")
NATIVE_SLEEP = ("clock_nanosleep", "nanosleep", "pysleep", "time_sleep")
NATIVE_LOCK: dict[str, Literal["mutex", "rlock"]] = {
    "lock_PyThread_acquire_lock": "mutex", "rlock_acquire": "rlock",
}


def short_file(path: str) -> str:
    """``/usr/lib/python3.11/concurrent/futures/thread.py`` -> ``concurrent/futures/thread.py``."""
    for marker in ("/concurrent/", "/asyncio/", "/multiprocessing/"):
        i = path.rfind(marker)
        if i >= 0:
            return path[i + 1:]
    return path.rsplit("/", 1)[-1]


def bare(function: str) -> str:
    """``Condition.wait`` (py-spy qualifies names) -> ``wait``."""
    return function.rsplit(".", 1)[-1]


def is_stdlib(path: str) -> bool:
    """True for a standard-library file as the dump tools print it (full or short path)."""
    return "/lib/python" in path or path in STDLIB_SHORT


# Thread.detail of a thread asleep in a ``while True:`` loop whose body calls nothing but the
# sleep (read from the source): it will never run other code, so it can wake or release nothing.
SLEEP_ONLY = "asleep in a loop that does nothing else"

__all__ = ["CALL_ACTIVITY", "CHILD_WAITS", "IO_FUNCTIONS", "NATIVE_IO", "NATIVE_LOCK", "NATIVE_SLEEP",
           "PROCESS_WAITS", "SIGNAL_WAITS", "SLEEP_ONLY", "STDLIB_ACTIVITY", "STDLIB_SHORT", "Activity", "bare",
           "is_stdlib", "short_file"]
