"""A server whose handler calls the server itself, and waits for the answer before it returns
to its accept loop: the request it sent sits in the accept queue of its own listening socket.

    py_accept_self_call.py http         single-threaded http.server.HTTPServer (a main thread
                                        waits on /page, the serving thread fetches /fragment)
    py_accept_self_call.py tcp|unix     the same shape with plain sockets, on loopback TCP or a
                                        unix stream socket (one thread: it connects to its
                                        own listener between two accepts)
    py_accept_self_call.py threading    correct: ThreadingHTTPServer, whose every request has a
                                        thread of its own; /fragment takes 60 s to answer
"""

import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

mode = sys.argv[1]

if mode in ("http", "threading"):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/page":
                url = f"http://127.0.0.1:{server.server_port}/fragment"
                body = urllib.request.urlopen(url).read()
            else:
                if mode == "threading":
                    time.sleep(60)  # slow, but its own thread: nothing waits behind it
                body = b"fragment"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    kind = HTTPServer if mode == "http" else ThreadingHTTPServer
    server = kind(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="serving").start()
    print("ready", flush=True)
    print(urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/page").read())
    server.shutdown()
else:
    if mode == "tcp":
        listener = socket.create_server(("127.0.0.1", 0))
        address: object = listener.getsockname()
        family = socket.AF_INET
    else:
        path = os.path.join(tempfile.mkdtemp(), "server.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen()
        address, family = path, socket.AF_UNIX
    print("ready", flush=True)
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(address)
    client.sendall(b"GET /fragment\n")
    print(client.recv(100))  # the answer would come from the next accept, after this returns
