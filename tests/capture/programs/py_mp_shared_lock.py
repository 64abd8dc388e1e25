"""A worker process waits for a multiprocessing.Lock (a semaphore in shared memory) the parent
holds. With "sleep", the parent sleeps holding it (it may release it when it wakes); with
"join", the parent joins the worker while holding it."""

import multiprocessing as mp
import sys
import time


def work(lock):
    with lock:
        pass


if __name__ == "__main__":
    mp.set_start_method("fork")
    lock = mp.Lock()
    lock.acquire()
    p = mp.Process(target=work, args=(lock,))
    p.start()
    if sys.argv[1] == "join":
        p.join()
    while True:
        time.sleep(0.2)
