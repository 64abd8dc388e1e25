"""A multiprocessing worker is running when two threads of the parent deadlock on two locks:
under `stuck run --policy abort` the parent ends with 86, and must not leave the worker behind."""

import multiprocessing as mp
import threading
import time


def work():
    time.sleep(3600)


if __name__ == "__main__":
    mp.set_start_method("fork")
    p = mp.Process(target=work)
    p.start()
    print("child", p.pid, flush=True)
    a, b = threading.Lock(), threading.Lock()
    both = threading.Barrier(2)

    def one():
        with a:
            both.wait()
            with b:
                pass

    def two():
        with b:
            both.wait()
            with a:
                pass

    threads = [threading.Thread(target=one), threading.Thread(target=two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
