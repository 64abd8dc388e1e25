# A thread of the program's own (no asyncio) waits in select() for a reply on a socket pair;
# the thread that should answer read the request and died before writing. Main joins the
# reactor. With argv[1] "input" the responder answers once a line comes on stdin (from
# outside the process, whenever it comes): nothing is stuck.
import selectors
import socket
import sys
import threading

ours, theirs = socket.socketpair()


def responder() -> None:
    req = theirs.recv(100)
    if sys.argv[1:] == ["input"]:
        theirs.sendall(sys.stdin.readline().encode() + req)
        return
    raise SystemExit(f"cannot parse {req!r}")  # never sends, never closes


def reactor() -> None:
    sel = selectors.DefaultSelector()
    sel.register(ours, selectors.EVENT_READ)
    ours.sendall(b"GET /status")
    print("ready", flush=True)
    while True:
        for _key, _ in sel.select():
            print("reply", ours.recv(100))
            return


threading.Thread(target=responder, name="responder").start()
r = threading.Thread(target=reactor, name="reactor")
r.start()
r.join()
