"""A waiter on an event whose only setter died of an exception.

A ``ticker`` thread sets the ``tick`` event once per round; a ``follower`` waits for each tick,
clears it and does its round of work. On its fourth round the ticker fails (a bad reading
raises ``ZeroDivisionError``), its thread ends, and the follower waits for a tick that will
never come. Nothing is locked, nothing cycles: the wait is simply one nobody left alive can end.

``stuck run examples/event_setter_died.py`` reports a stall naming the follower, the event and
the dead ticker. The program gives up by itself after a few seconds.
"""

from __future__ import annotations

import sys
import threading
import time

READINGS = [4, 2, 1, 0, 8]  # the 0 makes the ticker fail


def main(give_up_after: float | None) -> int:
    """``give_up_after`` None: wait for the follower as long as it takes (as ``stuck explore``
    runs it)."""
    tick = threading.Event()
    rounds: list[float] = []

    def ticker() -> None:
        for reading in READINGS:
            rounds.append(1 / reading)  # ZeroDivisionError on the fourth reading
            tick.set()
            time.sleep(0.05)

    def follower() -> None:
        while True:
            tick.wait()  # the only thread that ever set it is gone
            tick.clear()

    threading.excepthook = lambda args: print(
        f"event_setter_died: {args.thread.name if args.thread else '?'} died: "
        f"{args.exc_type.__name__}")
    threading.Thread(target=ticker, name="ticker").start()
    waiter = threading.Thread(target=follower, name="follower", daemon=True)
    waiter.start()
    waiter.join(timeout=give_up_after)  # timed: the main thread itself is not stuck
    print(f"event_setter_died: the follower still waits after {give_up_after:g} s "
          f"({len(rounds)} ticks)")
    return 1


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0))
