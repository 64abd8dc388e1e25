"""A client and a server process on loopback TCP, each sending a large message before reading
the other's: both socket buffers fill and both block in send."""

import os
import socket

listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
pid = os.fork()
if pid == 0:
    listener.close()
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"c" * (64 << 20))
    conn.recv(1)
    os._exit(0)
conn, _ = listener.accept()
listener.close()
print(pid, flush=True)
conn.sendall(b"s" * (64 << 20))
conn.recv(1)
