"""Correct programs with connections in an accept queue or waiting on a server: none is stuck.

    py_accept_correct.py slow-acceptor   one thread accepts a connection every 0.5 s and answers
                                         it; 4 client threads connect again and again and
                                         wait for their answers (a backlog that drains)
    py_accept_correct.py slow-unix-acceptor   the same on a unix socket with a backlog of 0:
                                         the clients beyond the first sleep in connect
    py_accept_correct.py busy-server     the server thread computes (runs) for 60 s before its
                                         first accept; a client waits in its accept queue
    py_accept_correct.py selector        one thread in a selector (epoll) with no timeout,
                                         watching the listener and the connections it accepted;
                                         it answers the first client when the second writes,
                                         which a thread asleep for 60 s will do
"""

import os
import selectors
import socket
import sys
import tempfile
import threading
import time

mode = sys.argv[1]
family = socket.AF_INET
if mode == "slow-unix-acceptor":
    family = socket.AF_UNIX
    address: object = os.path.join(tempfile.mkdtemp(), "server.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(0)
else:
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    address = listener.getsockname()


def client(name: str, delay: float = 0.0, send: bytes = b"ping") -> None:
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.connect(address)
        time.sleep(delay)
        conn.sendall(send)
        conn.recv(100)


if mode in ("slow-acceptor", "slow-unix-acceptor"):
    def acceptor() -> None:
        while True:
            time.sleep(0.5)  # busy elsewhere between accepts: the queue fills meanwhile
            conn, _ = listener.accept()
            conn.recv(100)
            conn.sendall(b"pong")
            conn.close()

    def clients() -> None:
        while True:
            client("c")

    threading.Thread(target=acceptor, name="acceptor", daemon=True).start()
    for i in range(4):
        threading.Thread(target=clients, name=f"client{i}", daemon=True).start()
    print("ready", flush=True)
    time.sleep(120)
elif mode == "busy-server":
    def server() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pass
        conn, _ = listener.accept()
        conn.recv(100)
        conn.sendall(b"pong")

    threading.Thread(target=server, name="server", daemon=True).start()
    threading.Thread(target=client, args=("waiting",), name="client", daemon=True).start()
    print("ready", flush=True)
    time.sleep(120)
else:
    def serve() -> None:
        sel = selectors.DefaultSelector()
        listener.setblocking(False)
        sel.register(listener, selectors.EVENT_READ)
        waiting: list[socket.socket] = []
        while True:
            for key, _ in sel.select():
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                conn = key.fileobj  # type: ignore[assignment]
                data = conn.recv(100)
                if not data:
                    sel.unregister(conn)
                    continue
                waiting.append(conn)
                if data == b"release":
                    for c in waiting:
                        c.sendall(b"pong")
                    waiting.clear()

    threading.Thread(target=serve, name="selector", daemon=True).start()
    threading.Thread(target=client, args=("first",), name="first", daemon=True).start()
    threading.Thread(target=client, args=("second", 60.0, b"release"), name="second",
                     daemon=True).start()
    print("ready", flush=True)
    time.sleep(120)
