"""Who is at the other end: pipes, unix sockets and loopback TCP between processes.

A pipe is one kernel object (an inode) whose read end and write end may sit in different
processes; ``/proc/PID/fd`` links name the inode and ``fdinfo`` says which end a fd is (its open
mode). A connected unix socket is two inodes, each the other's peer: the kernel says which with
sock_diag (``UNIX_DIAG_PEER``), and how many bytes wait at each end (``UNIX_DIAG_RQLEN``).
A loopback TCP connection is two sockets whose local and remote addresses mirror each other in
``/proc/net/tcp``, which also shows the bytes queued.

A connection not yet accepted has a server end that no process holds: it sits in the accept
queue of the listening socket it came to. ``/proc/net/tcp`` shows that end as a row with no
inode whose addresses mirror the client's, and the LISTEN row on its address counts the queue
(``rx_queue``); sock_diag lists the client sockets queued on a listening unix socket
(``UNIX_DIAG_ICONS``). A thread reading such a client socket waits for whoever holds the
listening socket to accept (``accept_queue``).

A thread blocked writing a full pipe waits for the holders of the read end; reading an empty
pipe, for the holders of the write end. On a socket, both directions wait for whoever holds the
peer socket.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from dataclasses import dataclass, field

from stuck.capture.evidence import Evidence, SocketEvidence, ThreadEvidence

# netlink / sock_diag constants (linux/netlink.h, linux/sock_diag.h, linux/unix_diag.h)
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_DONE = 3
NLMSG_ERROR = 2
UDIAG_SHOW_NAME = 0x1
UDIAG_SHOW_VFS = 0x2
UDIAG_SHOW_PEER = 0x4
UDIAG_SHOW_ICONS = 0x8
UDIAG_SHOW_RQLEN = 0x10
UNIX_DIAG_NAME = 0
UNIX_DIAG_VFS = 1
UNIX_DIAG_PEER = 2
UNIX_DIAG_ICONS = 3
UNIX_DIAG_RQLEN = 4
TCP_ESTABLISHED = 1
TCP_SYN_RECV = 3
TCP_LISTEN = 10
MAX_SOCKETS = 1_000_000
MAX_PENDING = 4096  # pending connections kept per listening socket


def unix_sockets(wanted: set[int] | None = None) -> list[SocketEvidence]:
    """Every unix socket the kernel reports (or only ``wanted`` inodes), with peer and queues.
    Returns [] when sock_diag is not available (a missing module, a sandbox)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except OSError:
        return []
    out: list[SocketEvidence] = []
    with sock:
        sock.settimeout(2.0)
        req = struct.pack("=BBHIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0,
                          UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_NAME
                          | UDIAG_SHOW_ICONS | UDIAG_SHOW_VFS, 0) + b"\0" * 4
        hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                          NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        try:
            sock.send(hdr + req)
            while len(out) < MAX_SOCKETS:
                data = sock.recv(1 << 16)
                if not data or not _parse_unix(data, out, wanted):
                    break
        except OSError:
            return out
    return out


def _parse_unix(data: bytes, out: list[SocketEvidence], wanted: set[int] | None) -> bool:
    """Append the sockets of one netlink datagram; False when the dump is complete."""
    off = 0
    while off + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            return False
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return False
        body = off + 16
        if body + 16 <= off + length:
            _family, _stype, state, _pad, ino = struct.unpack_from("=BBBBI", data, body)
            se = SocketEvidence(inode=ino, listening=state == TCP_LISTEN)
            attr = body + 16
            end = off + length
            while attr + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, attr)
                if alen < 4:
                    break
                payload = data[attr + 4:attr + alen]
                if atype == UNIX_DIAG_PEER and len(payload) >= 4:
                    se.peer = struct.unpack_from("=I", payload)[0] or None
                elif atype == UNIX_DIAG_RQLEN and len(payload) >= 8:
                    se.rqueue, se.wqueue = struct.unpack_from("=II", payload)
                elif atype == UNIX_DIAG_VFS and len(payload) >= 8:
                    vino, vdev = struct.unpack_from("=II", payload)
                    se.vfs = f"{vdev >> 20}:{vdev & 0xFFFFF}:{vino}"  # the kernel's dev_t
                elif atype == UNIX_DIAG_ICONS:  # the client inodes in its accept queue
                    whole = len(payload) - len(payload) % 4
                    se.pending = [i for (i,) in struct.iter_unpack("=I", payload[:whole])
                                  if i][:MAX_PENDING]
                elif atype == UNIX_DIAG_NAME:
                    se.path = payload.rstrip(b"\0").decode("utf-8", "replace").replace("\0", "@")
                attr += (alen + 3) & ~3
            if wanted is None or ino in wanted:
                out.append(se)
        off += (length + 3) & ~3
    return True


def read_tcp() -> str:
    text = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name, encoding="ascii", errors="replace") as f:
            text.append(f.read(16 << 20))
    return "".join(text)


@dataclass(slots=True)
class TcpSocket:
    inode: int  # 0: no process holds it (a connection not accepted yet, or one closed)
    local: str
    remote: str
    listening: bool
    tx_queue: int
    rx_queue: int  # a LISTEN row: the connections in its accept queue
    state: int = 0


def tcp_rows(text: str) -> list[TcpSocket]:
    """Every row of ``/proc/net/tcp`` and ``tcp6`` text, those without an inode too."""
    out: list[TcpSocket] = []
    for line in text.splitlines():
        parts = line.split(maxsplit=10)
        if len(parts) < 10 or ":" not in parts[1]:
            continue
        try:
            tx, rx = (int(x, 16) for x in parts[4].split(":", 1))
            st = int(parts[3], 16)
            ino = int(parts[9])
        except ValueError:  # the header line, or not the kernel's text
            continue
        out.append(TcpSocket(ino, parts[1], parts[2], st == TCP_LISTEN, tx, rx, st))
    return out


def parse_tcp(text: str) -> dict[int, TcpSocket]:
    """The rows of sockets some process holds, by inode."""
    return {t.inode: t for t in tcp_rows(text) if t.inode}


def _endpoint(hexaddr: str) -> tuple[str, int] | None:
    """``0100007F:1388`` -> ``("127.0.0.1", 5000)``; an IPv4 address mapped into IPv6 (a
    dual-stack socket's view of an IPv4 peer) as the IPv4 address, so both tables meet."""
    host, _, port = hexaddr.partition(":")
    try:
        p = int(port, 16)
        if len(host) == 8:
            return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(host, 16))), p
        if len(host) != 32:
            return None
        raw6 = b"".join(struct.pack("<I", int(host[i:i + 8], 16)) for i in range(0, 32, 8))
        if raw6[:12] == b"\0" * 10 + b"\xff\xff":
            return socket.inet_ntop(socket.AF_INET, raw6[12:]), p
        return socket.inet_ntop(socket.AF_INET6, raw6), p
    except (ValueError, OSError, struct.error):
        return None


WILDCARDS = ("0.0.0.0", "::")


def accept_queue(unix: list[SocketEvidence], net_tcp: str) -> dict[int, list[int]]:
    """Client sockets whose connection waits in an accept queue -> the listening sockets it
    waits in (inodes). Unix: the listener's pending list (sock_diag). TCP: the client's row
    is mirrored by a row no process holds (the server end, made by the handshake and only
    given an inode by accept; ESTABLISHED, or SYN_RECV while the queue is full), and a LISTEN
    row is on the address the client connected to (or on the wildcard address of its port:
    several such listeners, as with SO_REUSEPORT, are all listed)."""
    out: dict[int, list[int]] = {}
    for u in unix:
        if u.listening:
            for client in u.pending:
                out.setdefault(client, []).append(u.inode)
    rows = tcp_rows(net_tcp)
    unheld: set[tuple[tuple[str, int], tuple[str, int]]] = set()
    listeners: dict[int, list[tuple[str, int]]] = {}
    for t in rows:
        local, remote = _endpoint(t.local), _endpoint(t.remote)
        if local is None or remote is None:
            continue
        if t.listening and t.inode:
            listeners.setdefault(local[1], []).append((local[0], t.inode))
        elif not t.inode and t.state in (TCP_ESTABLISHED, TCP_SYN_RECV):
            unheld.add((local, remote))
    if not unheld:
        return out
    for t in rows:
        if not t.inode or t.state != TCP_ESTABLISHED:
            continue
        local, remote = _endpoint(t.local), _endpoint(t.remote)
        if local is None or remote is None or (remote, local) not in unheld:
            continue
        on = [ino for host, ino in listeners.get(remote[1], [])
              if host == remote[0] or host in WILDCARDS]
        if on:
            out[t.inode] = on
    return out


def listener_for(unix: list[SocketEvidence], te: ThreadEvidence) -> SocketEvidence | None:
    """The listening unix socket a thread asleep in ``connect`` connects to: bound to the file
    its path names, or to its abstract name."""
    if te.connect_to is None:
        return None
    for u in unix:
        if u.listening and ((te.connect_file is not None and u.vfs == te.connect_file)
                            or (te.connect_to.startswith("@") and u.path == te.connect_to)):
            return u
    return None


def connect_keys(ev: Evidence) -> set[str]:
    """The listening sockets captured threads wait to connect to: whoever holds one is who
    would make room in its queue."""
    out = set()
    for pe in ev.processes:
        for te in pe.threads:
            u = listener_for(ev.unix, te)
            if u is not None:
                out.add(f"socket:[{u.inode}]")
    return out


def unheld_tcp_rows(text: str, kept: set[int]) -> str:
    """The ``/proc/net/tcp`` lines of sockets in ``kept`` (inodes), and those no process holds
    whose addresses mirror one of them (the server end of a connection still in an accept
    queue): what a capture saves of the table."""
    rows = tcp_rows(text)
    mirrors = {(t.remote, t.local) for t in rows if t.inode in kept}
    out = []
    for line in text.splitlines():
        parts = line.split(maxsplit=10)
        if len(parts) < 10 or not parts[9].isdigit():
            continue
        ino = int(parts[9])
        if ino in kept or (ino == 0 and (parts[1], parts[2]) in mirrors):
            out.append(line)
    return "\n".join(out)


@dataclass(slots=True)
class End:
    """One process's fd on a pipe or socket."""

    pid: int
    fd: int
    mode: str  # "r", "w" or "rw"


@dataclass(slots=True)
class Channel:
    """A pipe or a socket seen among the captured processes."""

    key: str  # "pipe:[N]" or "socket:[N]"
    kind: str  # "pipe" or "socket"
    inode: int
    ends: list[End] = field(default_factory=list)
    queued: int | None = None  # bytes waiting to be read at this end (pipe: in the pipe)
    capacity: int | None = None
    peer: str | None = None  # sockets: the key of the other end
    listening: bool = False
    # A client socket whose connection is not accepted yet: the keys of the listening
    # sockets whose accept queue it waits in (``accept_queue``).
    accept_on: list[str] = field(default_factory=list)
    where: str = ""  # "unix", "tcp 127.0.0.1:5000", a path


def _mode(flags: int | None) -> str:
    if flags is None:
        return "rw"
    return {0: "r", 1: "w"}.get(flags & 3, "rw")


_LINK = re.compile(r"(pipe|socket):\[(\d{1,20})\]\Z")  # an fd link naming a pipe or socket


def _inode(key: str) -> int:
    m = _LINK.match(key)
    return int(m.group(2)) if m else 0


def channels(ev: Evidence) -> dict[str, Channel]:
    """Every pipe and socket the captured processes hold, linked to its peer."""
    out: dict[str, Channel] = {}
    for pe in ev.processes:
        for fe in pe.fds:
            link = _LINK.match(fe.target)
            if link is None:
                continue  # a file, a device, or (in saved evidence) anything else
            kind = link.group(1)
            ch = out.get(fe.target)
            if ch is None:
                ch = out[fe.target] = Channel(key=fe.target, kind=kind, inode=_inode(fe.target))
            ch.ends.append(End(pe.pid, fe.fd, _mode(fe.flags) if kind == "pipe" else "rw"))
            if fe.queued is not None:
                ch.queued = fe.queued
            if fe.capacity is not None:
                ch.capacity = fe.capacity
    unix = {s.inode: s for s in ev.unix}
    tcp = parse_tcp(ev.net_tcp)
    by_addr = {(t.local, t.remote): t for t in tcp.values() if not t.listening}
    queued = accept_queue(ev.unix, ev.net_tcp)
    for ch in out.values():
        if ch.kind != "socket":
            continue
        ch.accept_on = [f"socket:[{ino}]" for ino in queued.get(ch.inode, [])]
        u = unix.get(ch.inode)
        if u is not None:
            ch.where = "unix" + (f" {u.path}" if u.path else "")
            ch.listening = u.listening
            ch.queued = u.rqueue
            if u.peer:
                ch.peer = f"socket:[{u.peer}]"
            continue
        t = tcp.get(ch.inode)
        if t is not None:
            ch.where = f"tcp {_addr(t.local)}" + ("" if t.listening else f" <-> {_addr(t.remote)}")
            ch.listening = t.listening
            ch.queued = t.rx_queue
            other = by_addr.get((t.remote, t.local))
            if other is not None:
                ch.peer = f"socket:[{other.inode}]"
    return out


def _addr(hexaddr: str) -> str:
    """``0100007F:1388`` -> ``127.0.0.1:5000`` (IPv4 as /proc/net/tcp prints it)."""
    host, _, port = hexaddr.partition(":")
    try:
        p = int(port, 16)
        if len(host) == 8:
            raw = struct.pack("<I", int(host, 16))
            return f"{socket.inet_ntop(socket.AF_INET, raw)}:{p}"
        raw6 = b"".join(struct.pack("<I", int(host[i:i + 8], 16)) for i in range(0, 32, 8))
        return f"[{socket.inet_ntop(socket.AF_INET6, raw6)}]:{p}"
    except (ValueError, OSError, struct.error):
        return hexaddr


def peer_keys(ev: Evidence, keys: set[str]) -> set[str]:
    """Link targets of the other ends of the sockets in ``keys`` (pipes are their own)."""
    out = {k for k in keys if k.startswith("pipe:")}
    socks = {_inode(k) for k in keys if k.startswith("socket:")}
    unix = {s.inode: s for s in ev.unix}
    tcp = parse_tcp(ev.net_tcp)
    by_addr = {(t.local, t.remote): t for t in tcp.values()}
    queued = accept_queue(ev.unix, ev.net_tcp) if socks else {}
    for ino in socks:
        out.add(f"socket:[{ino}]")
        # Not accepted yet: whoever holds the listening socket would accept it.
        out.update(f"socket:[{listener}]" for listener in queued.get(ino, []))
        u = unix.get(ino)
        if u is not None and u.peer:
            out.add(f"socket:[{u.peer}]")
        t = tcp.get(ino)
        if t is not None:
            other = by_addr.get((t.remote, t.local))
            if other is not None:
                out.add(f"socket:[{other.inode}]")
    return out




