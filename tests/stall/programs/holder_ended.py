"""A thread takes the Lock ``gate`` and ends holding it; a later thread that was given the
ended holder's ident (the system reuses idents once a thread ends) then waits for ``gate``.
The main thread joins it: a stall behind a holder that ended, not a thread waiting on a lock
it holds itself."""

import threading

gate = threading.Lock()


def holder() -> None:
    gate.acquire()  # and returns without releasing it


def user(go: threading.Event) -> None:
    go.wait()
    with gate:
        pass


for _ in range(100):  # a new thread usually gets the ident of the one just joined
    h = threading.Thread(target=holder, name="holder")
    h.start()
    h.join()
    go = threading.Event()
    u = threading.Thread(target=user, args=(go,), name="user")
    u.start()
    if u.ident == h.ident:
        break
    gate.release()  # not reused: open the gate (any thread may release a Lock), try again
    go.set()
    u.join()
print("ident reused:", u.ident == h.ident, flush=True)
go.set()
u.join()
