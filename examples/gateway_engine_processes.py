"""Seed 002 as two processes: a gateway and a single-threaded engine deadlocked through two pipes.

The gateway forwards requests to the engine through one pipe and reads the engine's
notifications from another, in one loop: it writes a whole batch of requests before reading
any notification. The engine answers each request with a large notification before reading the
next. With a big enough batch both pipes fill: the engine blocks writing notifications the
gateway is not reading, and the gateway blocks writing requests the engine is not reading.
Nothing in either process alone looks wrong; only the two together, from outside, show it.

    python3 examples/gateway_engine_processes.py --capture

starts the pair, waits until both block, runs ``stuck capture`` on the gateway (the engine is
found through the pipes), prints the report and ends the pair. Without ``--capture`` the pair
hangs until stopped (Ctrl-C), for running ``stuck capture PID`` yourself.
"""

import contextlib
import os
import subprocess
import sys
import time

NOTIFICATION = b"n" * 8192  # per request: the engine's answer
REQUEST = b"r" * 512
BATCH = 4096


def name_process(name: str) -> None:
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


def engine() -> None:
    """Single-threaded: read a request, write its notification, repeat."""
    name_process("engine")
    while True:
        request = sys.stdin.buffer.read(len(REQUEST))
        if not request:
            return
        sys.stdout.buffer.write(NOTIFICATION)
        sys.stdout.buffer.flush()


def gateway() -> None:
    name_process("gateway")
    child = subprocess.Popen([sys.executable, __file__, "--engine"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    print(f"gateway pid {os.getpid()}, engine pid {child.pid}", flush=True)
    for _ in range(BATCH):  # the whole batch first ...
        child.stdin.write(REQUEST)
    child.stdin.flush()
    child.stdin.close()
    while child.stdout.read(len(NOTIFICATION)):  # ... then the notifications
        pass


def blocked_in_write(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] in ("1", "64")  # write on x86_64, aarch64
    except (OSError, IndexError):
        return False


def capture() -> int:
    pair = subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True)
    pids = [pair.pid]
    try:
        assert pair.stdout is not None
        line = pair.stdout.readline()
        print(line, end="", flush=True)
        pids.append(int(line.split()[-1]))
        deadline = time.monotonic() + 30
        while not all(blocked_in_write(pid) for pid in pids):
            if time.monotonic() > deadline:
                print("the pair did not block within 30 s", file=sys.stderr)
                return 2
            time.sleep(0.1)
        time.sleep(0.5)
        print(f"$ stuck capture {pair.pid}", flush=True)
        return subprocess.run([sys.executable, "-m", "stuck", "capture", str(pair.pid)]).returncode
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        pair.wait()


if __name__ == "__main__":
    if "--engine" in sys.argv:
        engine()
    elif "--capture" in sys.argv:
        sys.exit(capture())
    else:
        gateway()
