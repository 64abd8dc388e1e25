# An event bus holds its RLock while it waits for its dispatcher to deliver; the callback,
# on the dispatcher thread, takes the same RLock to unsubscribe: each waits for the other.
import threading
from concurrent.futures import ThreadPoolExecutor


class Bus:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.subs = []
        self.dispatch = ThreadPoolExecutor(1, thread_name_prefix="dispatch")

    def unsubscribe(self, fn) -> None:
        with self.lock:
            self.subs.remove(fn)

    def publish(self, msg: str) -> None:
        with self.lock:
            futs = [self.dispatch.submit(fn, msg) for fn in list(self.subs)]
            for f in futs:
                f.result()


bus = Bus()


def once(msg: str) -> None:
    print("ready", flush=True)
    bus.unsubscribe(once)


bus.subs.append(once)
bus.publish("hello")
