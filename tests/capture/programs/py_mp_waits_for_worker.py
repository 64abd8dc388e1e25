"""The parent waits on a multiprocessing Queue for a result its worker never puts."""

import multiprocessing as mp
import time


def work(q):
    time.sleep(3600)


if __name__ == "__main__":
    mp.set_start_method("fork")
    q = mp.Queue()
    p = mp.Process(target=work, args=(q,))
    p.start()
    print("child", p.pid, flush=True)
    print(q.get())
