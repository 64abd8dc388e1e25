"""A parent and a forked child connected by multiprocessing.Pipe() (a unix socket pair), each
sending a large message before receiving the other's: both socket buffers fill."""

import multiprocessing as mp
import os

if __name__ == "__main__":
    mine, theirs = mp.Pipe()
    pid = os.fork()
    if pid == 0:
        theirs.send_bytes(b"c" * (16 << 20))
        theirs.recv_bytes()
        os._exit(0)
    print(pid, flush=True)
    mine.send_bytes(b"p" * (16 << 20))
    mine.recv_bytes()
