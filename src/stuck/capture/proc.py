"""Reading one live process from Linux ``/proc``: its threads and its open files.

Everything here only reads: no signal is sent and nothing is attached. Each thread is read twice
(``resample``) so that a wait can be told from a passing moment: a thread in the same system
call, with the same arguments and no context switch in between, was waiting all along.

A process can end while it is read, and some files need privileges (``stack`` needs root;
``syscall``, ``fd`` and ``mem`` need the right to trace the process). Every gap is written into
``ProcessEvidence.missing`` in words a user can act on, never raised.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import termios

from stuck.capture import shared, syscalls
from stuck.capture.evidence import FdEvidence, ProcessEvidence, ThreadEvidence

PROC = "/proc"
F_GETPIPE_SZ = 1032
PF_KTHREAD = 0x00200000  # stat's flags (field 9): a kernel thread
MAX_THREADS = 100_000  # a process with more is read up to this many threads
MAX_FDS = 100_000


def _read(path: str, limit: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _gone(pid: int) -> bool:
    """Has ``pid`` exited (gone, or a zombie waiting to be collected)?"""
    try:
        fields = stat_fields(_read(f"{PROC}/{pid}/stat"))
    except OSError:
        return True
    return bool(fields) and fields[0] in ("Z", "X")


YAMA = "/proc/sys/kernel/yama/ptrace_scope"


CAP_SYS_PTRACE = 19  # the capability's bit in /proc/self/status CapEff


def _has_capability(bit: int, status_path: str = "/proc/self/status") -> bool | None:
    """Does this process hold capability ``bit`` (None: cannot tell)?"""
    with contextlib.suppress(OSError, ValueError), open(status_path, encoding="ascii") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return None


def ptrace_hint(path: str = YAMA, euid: int | None = None,
                status_path: str = "/proc/self/status") -> str:
    """What stands between this user and reading another process, in words: for root, what is
    really missing (a capability, or a policy above it), never "run as root"."""
    scope = None
    with contextlib.suppress(OSError, ValueError), open(path, encoding="ascii") as f:
        scope = int(f.read().strip())
    if scope == 3:
        return "kernel.yama.ptrace_scope is 3: no process may attach, not even root"
    if (os.geteuid() if euid is None else euid) == 0:
        if _has_capability(CAP_SYS_PTRACE, status_path) is False:
            return ("stuck runs as root but without CAP_SYS_PTRACE, as in a container started "
                    "without it: start it with that capability (docker run "
                    "--cap-add=SYS_PTRACE)")
        return ("stuck runs as root, yet the kernel refused: a security policy (AppArmor, "
                "SELinux, seccomp, a sandbox) forbids reading that process, or it belongs to "
                "another user namespace (outside this container); run stuck where the process "
                "was started")
    if scope is None or scope == 0:
        return "run as root, or as the process's own user"
    if scope == 1:
        return ("kernel.yama.ptrace_scope is 1: only a parent process may attach; run as root "
                "(or set it to 0: sysctl kernel.yama.ptrace_scope=0)")
    if scope == 2:
        return "kernel.yama.ptrace_scope is 2: only root (CAP_SYS_PTRACE) may attach"
    return "kernel.yama.ptrace_scope is 3: no process may attach, not even root"


def _why(exc: OSError, what: str, pid: int) -> str:
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return f"{what} of pid {pid}: permission denied ({ptrace_hint()})"
    if isinstance(exc, FileNotFoundError) or exc.errno in (errno.ENOENT, errno.ESRCH):
        return f"pid {pid} exited while its {what} was read"
    return f"{what} of pid {pid} could not be read: {exc.strerror or exc}"


def stat_fields(stat: str) -> list[str]:
    """The fields of a ``stat`` line after the command name (which may hold spaces and ')').
    Index 0 is the state letter, 1 the parent pid."""
    close = stat.rfind(")")
    return stat[close + 2:].split() if close >= 0 else []


def _switches(status: str) -> int | None:
    total = 0
    seen = False
    for line in status.splitlines():
        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
            with contextlib.suppress(ValueError):
                total += int(line.split(":", 1)[1])
                seen = True
    return total if seen else None


def _read_thread(pid: int, tid: int, missing: set[str]) -> ThreadEvidence | None:
    base = f"{PROC}/{pid}/task/{tid}"
    try:
        stat = _read(f"{base}/stat")
        status = _read(f"{base}/status")
    except OSError:
        return None  # the thread ended between listing and reading: it is not there
    te = ThreadEvidence(tid=tid, stat=stat, switches=_switches(status))
    with contextlib.suppress(OSError):
        te.comm = _read(f"{base}/comm").rstrip("\n")
    for name in ("syscall", "wchan"):
        try:
            setattr(te, name, _read(f"{base}/{name}").strip())
        except OSError as exc:
            missing.add(_why(exc, f"/proc {name}", pid))
    try:
        te.stack = _read(f"{base}/stack")
    except OSError as exc:
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
            missing.add(f"kernel stacks of pid {pid}: permission denied (they need root)")
        te.stack = None
    return te


MAX_POLLED = 1024  # fds of one poll or select read at most (select's FD_SETSIZE)


def polled_fds(pid: int, call: syscalls.Call | None, missing: set[str]) -> list[int] | None:
    """The fds a poll, ppoll, select or pselect6 wait with no timeout watches, read from its
    arguments in the process's memory: poll's ``struct pollfd`` array (negative fds are
    ignored by the kernel), select's three ``fd_set`` bitmaps. The kernel writes the results
    back only when the call returns, so while it sleeps the memory holds what it watches.
    None for any other wait, or when the memory cannot be read (said in ``missing``)."""
    if call is None or not call.polls_forever() or call.epoll_fd() is not None \
            or call.name not in ("poll", "ppoll", "select", "pselect6"):
        return None
    polls = call.name in ("poll", "ppoll")
    count = call.args[1] if polls else call.args[0]
    if count > MAX_POLLED:
        return None
    try:
        with open(f"{PROC}/{pid}/mem", "rb", buffering=0) as mem:
            if polls:
                raw = os.pread(mem.fileno(), 8 * count, call.args[0])
                if len(raw) != 8 * count:
                    return None
                return sorted({fd for fd, _, _ in struct.iter_unpack("=ihh", raw) if fd >= 0})
            words = (count + 63) // 64  # fd_set: unsigned longs, fd i at bit i % 64 of word i / 64
            out: set[int] = set()
            for ptr in call.args[1:4]:
                if ptr == 0:
                    continue
                raw = os.pread(mem.fileno(), 8 * words, ptr)
                if len(raw) != 8 * words:
                    return None
                for w, (bits,) in enumerate(struct.iter_unpack("=Q", raw)):
                    out.update(64 * w + b for b in range(64) if bits >> b & 1)
            return sorted(fd for fd in out if fd < count)
    except OSError as exc:
        missing.add(_why(exc, "memory (the fds a poll or select waits on)", pid))
        return None
    except (ValueError, OverflowError):
        return None


AF_UNIX = 1
SOCKADDR_UN_SIZE = 110


def connect_target(pid: int, te: ThreadEvidence, call: syscalls.Call | None,
                   fds: list[FdEvidence], missing: set[str]) -> None:
    """For a thread asleep in ``connect`` on a socket: the unix address it connects to, read
    from the call's arguments in the process's memory (a unix connect sleeps while the
    listener's accept queue is full), and the file a path names (``connect_file``), found
    from the process's own root and working directory."""
    if call is None or call.meaning != "connect" or len(call.args) < 3:
        return
    target = next((f.target for f in fds if f.fd == call.args[0]), "")
    size = call.args[2]
    if not target.startswith("socket:") or not 2 < size <= SOCKADDR_UN_SIZE:
        return
    try:
        with open(f"{PROC}/{pid}/mem", "rb", buffering=0) as mem:
            raw = os.pread(mem.fileno(), size, call.args[1])
    except OSError as exc:
        missing.add(_why(exc, "memory (the address a connect waits on)", pid))
        return
    except (ValueError, OverflowError):
        return
    if len(raw) != size or struct.unpack_from("=H", raw)[0] != AF_UNIX:
        return
    if raw[2:3] == b"\0":  # an abstract name: as sock_diag shows a bound one
        te.connect_to = raw[2:].rstrip(b"\0").decode("utf-8", "replace").replace("\0", "@")
        return
    path = os.fsdecode(raw[2:].split(b"\0", 1)[0])
    te.connect_to = path
    where = f"{PROC}/{pid}/root{path}" if path.startswith("/") else f"{PROC}/{pid}/cwd/{path}"
    with contextlib.suppress(OSError, ValueError):
        st = os.stat(where)
        te.connect_file = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}:{st.st_ino}"


def resample(pe: ProcessEvidence) -> None:
    """The second reading of each thread (state, system call, context switches)."""
    ended = 0
    for te in pe.threads:
        base = f"{PROC}/{pe.pid}/task/{te.tid}"
        try:
            te.stat2 = _read(f"{base}/stat")
            te.switches2 = _switches(_read(f"{base}/status"))
            te.syscall2 = _read(f"{base}/syscall").strip()
        except FileNotFoundError:
            ended += 1  # the thread ended since the first reading
        except OSError:
            pass
    if pe.threads and _gone(pe.pid):
        pe.missing.append(f"pid {pe.pid} exited during the capture: its threads are shown as "
                          "first read")
    elif ended:
        pe.missing.append(f"{ended} thread(s) of pid {pe.pid} ended during the capture")


def _runtime(pid: int, exe: str | None, maps: str) -> str:
    name = os.path.basename(exe or "")
    if "libjvm.so" in maps:
        return "jvm"
    if name.startswith("python") or "libpython" in maps:
        return "python"
    if exe:
        with contextlib.suppress(OSError), open(f"{PROC}/{pid}/exe", "rb") as f:
            head = f.read(4 << 20)
            if b"\xff Go buildinf:" in head or b"runtime.gopanic" in head:
                return "go"
    return "native"


def read_process(pid: int, why: str = "asked",
                 locked: set[str] | None = None) -> ProcessEvidence:
    """The first reading of ``pid``: identity, threads, open files; gaps in ``missing``.
    ``locked``: the files some lock is on (``shared.locked_files``); read here when None."""
    pe = ProcessEvidence(pid=pid, why_included=why)
    missing: set[str] = set()
    try:
        stat = _read(f"{PROC}/{pid}/stat")
    except OSError:
        pe.missing.append(f"pid {pid} does not exist (or exited before it could be read), or "
                          "is in another pid namespace: give the pid as this namespace sees it")
        pe.state = "gone"
        return pe
    fields = stat_fields(stat)
    pe.state = fields[0] if fields else "?"
    with contextlib.suppress(ValueError, IndexError):
        pe.ppid = int(fields[1])
    with contextlib.suppress(OSError):
        pe.comm = _read(f"{PROC}/{pid}/comm").rstrip("\n")
    with contextlib.suppress(OSError):
        pe.cmdline = [a for a in _read(f"{PROC}/{pid}/cmdline").split("\0") if a]
    with contextlib.suppress(ValueError, IndexError):
        if int(fields[6]) & PF_KTHREAD:
            pe.missing.append(f"pid {pid} ({pe.comm}) is a kernel thread: it has no user space "
                              "to read (its kernel stack, as root: cat /proc/"
                              f"{pid}/stack); give the pid of a user process")
            pe.state = "kernel"
            return pe
    if pe.state in ("Z", "X"):
        pe.missing.append(f"pid {pid} ({pe.comm}) is a zombie: it has exited and waits for its "
                          f"parent (pid {pe.ppid}) to collect its status; nothing else of it "
                          "can be read")
        return pe
    try:
        pe.exe = os.readlink(f"{PROC}/{pid}/exe")
    except OSError as exc:
        missing.add(_why(exc, "executable", pid))
    with contextlib.suppress(OSError):
        pe.cwd = os.readlink(f"{PROC}/{pid}/cwd")
    try:
        maps = _read(f"{PROC}/{pid}/maps", 8 << 20)
    except OSError:
        maps = ""
    pe.runtime = _runtime(pid, pe.exe, maps)
    pe.shared_maps = shared.shared_maps(maps)
    _namespace(pe)
    try:
        tids = sorted(int(t) for t in os.listdir(f"{PROC}/{pid}/task") if t.isdigit())
    except OSError as exc:
        missing.add(_why(exc, "thread list", pid))
        tids = []
    else:
        pe.threads_listed = len(tids)
    if len(tids) > MAX_THREADS:
        missing.add(f"pid {pid} has {len(tids)} threads; only the first {MAX_THREADS} were read")
        tids = tids[:MAX_THREADS]
    machine = os.uname().machine
    for tid in tids:
        te = _read_thread(pid, tid, missing)
        if te is not None:
            if pe.runtime == "python":  # an event loop's selector: what it watches
                te.polled = polled_fds(pid, syscalls.parse(te.syscall, machine), missing)
            pe.threads.append(te)
    if locked is None:
        locked = shared.locked_files(shared.lock_table())
    pe.fds = read_fds(pid, missing, locked, epoll=pe.runtime in ("go", "python"))
    for te in pe.threads:
        connect_target(pid, te, syscalls.parse(te.syscall, machine), pe.fds, missing)
    with contextlib.suppress(OSError):
        for line in _read(f"{PROC}/{pid}/status").splitlines():
            if line.startswith("SigCgt:"):
                pe.signals_caught = line.split(":", 1)[1].strip()[:32]
    if _gone(pid):
        missing.add(f"pid {pid} exited during the capture: what was read before is shown")
    pe.missing.extend(sorted(missing))
    return pe


def _namespace(pe: ProcessEvidence) -> None:
    try:
        mine = os.readlink(f"{PROC}/self/ns/pid")
        theirs = os.readlink(f"{PROC}/{pe.pid}/ns/pid")
    except OSError:
        return
    if mine != theirs:
        pe.missing.append(f"pid {pe.pid} runs in another pid namespace: the thread ids it sees "
                          "differ from these, and tools that attach by pid inside it (jcmd, "
                          "py-spy) may fail; run stuck inside its namespace for their view")


def read_fds(pid: int, missing: set[str], locked: set[str] | None = None,
             epoll: bool = False) -> list[FdEvidence]:
    """``locked``: files some lock is on; a fd on one of them gets its file id and the locks
    held through it. ``epoll``: keep what each epoll instance watches (a Go or Python program's)."""
    out: list[FdEvidence] = []
    try:
        names = os.listdir(f"{PROC}/{pid}/fd")
    except OSError as exc:
        missing.add(_why(exc, "open files", pid))
        return out
    for name in sorted(names, key=lambda n: int(n) if n.isdigit() else -1)[:MAX_FDS]:
        if not name.isdigit():
            continue
        try:
            target = os.readlink(f"{PROC}/{pid}/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        fe = FdEvidence(fd=int(name), target=target)
        if target.startswith(("pipe:", "socket:")):
            try:
                for line in _read(f"{PROC}/{pid}/fdinfo/{name}").splitlines():
                    if line.startswith("flags:"):
                        fe.flags = int(line.split()[1], 8)
            except (OSError, ValueError, IndexError):
                pass
        if target.startswith("pipe:"):
            fe.queued, fe.capacity = pipe_fill(pid, int(name))
        elif epoll and target == "anon_inode:[eventpoll]":
            with contextlib.suppress(OSError):
                fe.epoll = [line for line in _read(f"{PROC}/{pid}/fdinfo/{name}").splitlines()
                            if line.startswith("tfd:")][:MAX_FDS]
        elif epoll and target == EVENTFD:
            fe.eventfd = eventfd_id(pid, int(name))
        elif locked and target.startswith("/"):
            fid = shared.file_id(f"{PROC}/{pid}/fd/{name}")
            if fid in locked:
                fe.file_id = fid
                fe.locks = shared.fd_locks(pid, int(name))
        out.append(fe)
    return out


EVENTFD = "anon_inode:[eventfd]"


def eventfd_id(pid: int, fd: int) -> int | None:
    """The id of the eventfd behind ``fd`` of ``pid`` (fdinfo ``eventfd-id``, Linux 5.13+:
    unique on the machine); None when not shown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in _read(f"{PROC}/{pid}/fdinfo/{fd}").splitlines():
            if line.startswith("eventfd-id:"):
                return int(line.split()[1])
    return None


def eventfd_holders(ids: set[int]) -> dict[int, list[int]]:
    """Which processes on the machine hold each eventfd of ``ids``. Processes whose fds are
    unreadable are skipped."""
    out: dict[int, list[int]] = {}
    if not ids:
        return out
    links = [(pid, fd) for pid, fd, target in shared.fd_links() if target == EVENTFD]
    for pid, fd in links:
        ident = eventfd_id(pid, fd)
        if ident in ids:
            pids = out.setdefault(ident, [])
            if pid not in pids:
                pids.append(pid)
    return out


def pipe_fill(pid: int, fd: int) -> tuple[int | None, int | None]:
    """Bytes queued in the pipe behind ``fd`` of ``pid``, and its capacity.

    Opening ``/proc/PID/fd/N`` opens the same pipe; a non-blocking read-only open never waits
    and never takes data (FIONREAD only counts it). It is closed at once.
    """
    try:
        own = os.open(f"{PROC}/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None, None
    try:
        queued = struct.unpack("i", fcntl.ioctl(own, termios.FIONREAD, b"\0\0\0\0"))[0]
        capacity = fcntl.fcntl(own, F_GETPIPE_SZ)
        return int(queued), int(capacity)
    except OSError:
        return None, None
    finally:
        os.close(own)


def children(pid: int, depth: int = 1 << 30) -> list[int]:
    """The descendants of ``pid`` (for ``--tree``; ``depth=1``: its children only), from each
    process's parent pid."""
    parent_of: dict[int, int] = {}
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            fields = stat_fields(_read(f"{PROC}/{name}/stat"))
            parent_of[int(name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    kids: dict[int, list[int]] = {}
    for child, parent in parent_of.items():
        kids.setdefault(parent, []).append(child)
    out: list[int] = []
    todo = [(pid, 0)]
    seen = {pid}
    while todo:
        parent, level = todo.pop()
        if level >= depth:
            continue
        for c in sorted(kids.get(parent, [])):
            if c not in seen:
                seen.add(c)
                out.append(c)
                todo.append((c, level + 1))
    return out


def holders(inodes: set[str]) -> dict[str, list[int]]:
    """Which processes on the machine hold an fd on each of ``inodes`` (``pipe:[N]`` or
    ``socket:[N]`` link targets). Processes whose fds are unreadable are skipped."""
    out: dict[str, list[int]] = {}
    if not inodes:
        return out
    for pid, _, target in shared.fd_links():
        if target in inodes:
            pids = out.setdefault(target, [])
            if pid not in pids:
                pids.append(pid)
    return out
