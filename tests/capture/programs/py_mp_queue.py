"""The multiprocessing pitfall the docs warn about: a worker puts a large result on a Queue and
the parent joins the worker before taking the result. The worker cannot exit until its
queue's feeder thread has written everything into the pipe, which is full; the parent waits
for the worker to exit before it reads the pipe."""

import multiprocessing as mp


def work(q):
    q.put(b"r" * (4 << 20))


if __name__ == "__main__":
    mp.set_start_method("fork")
    q = mp.Queue()
    p = mp.Process(target=work, args=(q,), name="worker")
    p.start()
    print(p.pid, flush=True)
    p.join()  # deadlock: the result is still in the pipe
    print(len(q.get()))
