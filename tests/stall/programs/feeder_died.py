import queue, threading  # noqa: E401, I001 (the division stays on line 5)
jobs = queue.Queue()
def feeder():
    for n in (2, 1, 0):
        jobs.put(6 // n)  # dies on the third
    jobs.put(None)
def eater():
    while jobs.get() is not None:
        pass
e = threading.Thread(target=eater, name="eater")
f = threading.Thread(target=feeder, name="feeder")
e.start()
f.start()
f.join()
e.join()
