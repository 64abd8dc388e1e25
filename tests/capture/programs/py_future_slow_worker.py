# Correct: the main thread holds a lock and waits for a future its pool's worker is still
# computing (it sleeps); the worker never needs the lock. Nothing is stuck, only slow.
import threading
import time
from concurrent.futures import ThreadPoolExecutor

lock = threading.RLock()
pool = ThreadPoolExecutor(1, thread_name_prefix="worker")


def compute() -> int:
    print("ready", flush=True)
    time.sleep(60)
    return 1


with lock:
    pool.submit(compute).result()
