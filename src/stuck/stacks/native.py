"""What a native frame means: which call is a lock wait, a condition wait, I/O, a sleep, an
idle loop, read from the function names of a stack (innermost first).

Shared by every source that sees native stacks: gdb, pstack and the Linux and FreeBSD kernel
formats read by ``stuck.dumps``, and the analysis that classifies threads a parser left
unclassified. Names are data (``PRIMITIVES``): teaching a new primitive is one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stuck.knowledge import in_job
from stuck.model import Frame, ResourceKind, ThreadState

SCAN_FRAMES = 16  # innermost frames searched for the blocking primitive

# category -> (thread state, resource kind or None, durable wait)
CATEGORIES: dict[str, tuple[ThreadState, ResourceKind | None, bool]] = {
    "mutex": ("blocked", "mutex", True),
    "rwlock": ("blocked", "rwlock", True),
    "condition": ("blocked", "condition", True),
    "timed-condition": ("blocked", "condition", False),
    "semaphore": ("blocked", "semaphore", True),
    "timed-semaphore": ("blocked", "semaphore", False),
    "timed-mutex": ("blocked", "mutex", False),
    "timed-rwlock": ("blocked", "rwlock", False),
    "timed-join": ("blocked", "thread", False),
    "futex": ("blocked", "unknown", True),
    "join": ("blocked", "thread", True),
    "event": ("blocked", "event", True),
    "barrier": ("blocked", "barrier", True),
    "signal": ("blocked", "event", False),
    "sleep": ("sleeping", None, False),
    "io": ("io", None, False),
    # flock / fcntl(F_SETLKW) / lockf: the holder may be another process (a flock lock belongs
    # to an open file description, which a fork shares), and a thread dump does not say who
    "file-lock": ("io", None, False),
    "idle": ("idle", None, False),
    # another process must exit: ended from outside this process, so not durable
    "child": ("blocked", "process", False),
    "running": ("running", None, False),
}

# Innermost function names (after normalisation) that say what a thread waits on. Exact names
# first, then a few families matched by prefix. Data, not code: add a line to teach a new one.
PRIMITIVES: dict[str, str] = {
    # POSIX threads, glibc
    "pthread_mutex_lock": "mutex", "__pthread_mutex_lock": "mutex",
    "__GI___pthread_mutex_lock": "mutex", "__lll_lock_wait": "mutex",
    "__lll_lock_wait_private": "mutex", "_L_lock_": "mutex",
    # glibc's own locks (a malloc arena, a stdio FILE): __libc_lock_lock -> lll_lock
    "__GI___lll_lock_wait_private": "mutex",
    "pthread_mutex_timedlock": "timed-mutex", "__pthread_mutex_timedlock": "timed-mutex",
    "___pthread_mutex_timedlock64": "timed-mutex", "pthread_mutex_clocklock": "timed-mutex",
    "__pthread_mutex_clocklock_common": "timed-mutex",
    "pthread_rwlock_timedrdlock": "timed-rwlock", "pthread_rwlock_timedwrlock": "timed-rwlock",
    "pthread_rwlock_clockrdlock": "timed-rwlock", "pthread_rwlock_clockwrlock": "timed-rwlock",
    "___pthread_rwlock_timedrdlock64": "timed-rwlock",
    "___pthread_rwlock_timedwrlock64": "timed-rwlock",
    "pthread_timedjoin_np": "timed-join", "__pthread_timedjoin_np64": "timed-join",
    "___pthread_timedjoin_np64": "timed-join", "pthread_tryjoin_np": "timed-join",
    "__pthread_mutex_lock_full": "mutex", "lll_lock_wait": "mutex",
    "pthread_rwlock_rdlock": "rwlock", "pthread_rwlock_wrlock": "rwlock",
    "__pthread_rwlock_rdlock": "rwlock", "__pthread_rwlock_wrlock": "rwlock",
    "pthread_cond_wait": "condition", "__pthread_cond_wait": "condition",
    "___pthread_cond_wait": "condition", "__pthread_cond_wait_common": "condition",
    "pthread_cond_timedwait": "timed-condition", "__pthread_cond_timedwait": "timed-condition",
    "___pthread_cond_timedwait": "timed-condition", "pthread_cond_clockwait": "timed-condition",
    "sem_wait": "semaphore", "__new_sem_wait": "semaphore", "do_futex_wait": "futex",
    "__new_sem_wait_slow": "semaphore", "sem_timedwait": "timed-semaphore",
    "__new_sem_timedwait": "timed-semaphore", "___sem_timedwait64": "timed-semaphore",
    "pthread_join": "join",
    "pthread_clockjoin_np": "join",
    "__pthread_cond_wait_common64": "condition", "___pthread_cond_timedwait64": "timed-condition",
    "__pthread_cond_timedwait64": "timed-condition", "___pthread_cond_wait64": "condition",
    "lll_mutex_lock_optimized": "mutex", "__GI___lll_lock_wait": "mutex",
    "__GI___pthread_cond_wait": "condition", "__GI___futex_abstimed_wait_cancelable64": "futex",
    "__futex_abstimed_wait_cancelable64": "futex", "futex_wait_cancelable": "futex",
    "__new_sem_wait_slow64": "semaphore", "do_futex_wait.constprop.0": "futex",
    "__new_sem_wait_slow64.constprop.0": "semaphore", "sem_clockwait": "timed-semaphore",
    "__sem_clockwait": "timed-semaphore", "___sem_clockwait": "timed-semaphore",
    "__pthread_join": "join", "__pthread_clockjoin_ex": "join",
    "___pthread_join": "join", "pthread_barrier_wait": "barrier",
    "___pthread_barrier_wait": "barrier", "__pthread_barrier_wait": "barrier",
    "___pthread_rwlock_rdlock": "rwlock", "___pthread_rwlock_wrlock": "rwlock",
    "__pthread_rwlock_rdlock_full64": "rwlock", "__pthread_rwlock_wrlock_full64": "rwlock",
    "__pthread_rwlock_rdlock_full": "rwlock", "__pthread_rwlock_wrlock_full": "rwlock",
    "__futex_abstimed_wait_common64": "futex", "__futex_abstimed_wait_common": "futex",
    "futex_wait": "futex", "syscall": "futex",
    "nanosleep": "sleep", "__nanosleep": "sleep", "clock_nanosleep": "sleep",
    "__clock_nanosleep": "sleep", "usleep": "sleep", "sleep": "sleep", "__GI___nanosleep": "sleep",
    "__GI___clock_nanosleep": "sleep", "__libc_nanosleep": "sleep",
    "epoll_wait": "io", "__epoll_wait": "io", "epoll_pwait": "io", "poll": "io", "__poll": "io",
    "ppoll": "io", "select": "io", "__select": "io", "pselect": "io", "read": "io",
    "__read": "io", "__libc_read": "io", "__GI___libc_read": "io", "recv": "io",
    "__libc_recv": "io", "recvfrom": "io", "__libc_recvfrom": "io", "recvmsg": "io",
    "accept": "io", "accept4": "io", "__libc_accept": "io", "connect": "io", "write": "io",
    "__libc_write": "io", "__GI___libc_write": "io", "__write": "io", "writev": "io",
    "__writev": "io", "__GI___writev": "io", "send": "io", "__send": "io", "__libc_send": "io",
    "sendmsg": "io", "__libc_sendmsg": "io", "waitpid": "child", "__waitpid": "child", "wait4": "child", "__wait4": "child",
    "__GI___wait4": "child", "__GI___waitpid": "child", "waitid": "child", "__waitid": "child",
    "flock": "file-lock", "__flock": "file-lock", "__GI_flock": "file-lock",
    "__GI___flock": "file-lock", "lockf": "file-lock", "lockf64": "file-lock",
    "__lockf64": "file-lock", "__GI_lockf64": "file-lock", "fcntl": "file-lock",
    "fcntl64": "file-lock", "__libc_fcntl64": "file-lock", "__GI___libc_fcntl64": "file-lock",
    "__fcntl64_nocancel_adjusted": "file-lock",
    "sigsuspend": "signal", "__sigsuspend": "signal", "pause": "signal", "__libc_pause": "signal",
    "sigwait": "signal", "sigtimedwait": "signal", "sigwaitinfo": "signal",
    # Go runtime threads as gdb sees them: parked M's, the netpoller, sysmon, timers
    "runtime.futex": "idle", "runtime.futexsleep": "idle", "runtime.notesleep": "idle",
    "runtime.notetsleep": "idle", "runtime.notetsleepg": "idle", "runtime.stopm": "idle",
    "runtime.findrunnable": "idle", "runtime.epollwait": "idle", "runtime.netpoll": "idle",
    "runtime.usleep": "idle", "runtime.sysmon": "idle", "runtime.timerproc": "idle",
    "runtime.stoplockedm": "idle", "runtime.mPark": "idle", "runtime.semasleep": "idle",
    # Linux kernel
    "__mutex_lock": "mutex", "mutex_lock": "mutex", "mutex_lock_nested": "mutex",
    "mutex_lock_interruptible": "mutex", "mutex_lock_killable": "mutex",
    "__mutex_lock_slowpath": "mutex", "rtnl_lock": "mutex",
    "rwsem_down_read_slowpath": "rwlock", "rwsem_down_write_slowpath": "rwlock",
    "rwsem_down_read_failed": "rwlock", "rwsem_down_write_failed": "rwlock",
    "down_read": "rwlock", "down_write": "rwlock", "down": "semaphore",
    "wait_for_completion": "event", "wait_for_completion_killable": "event",
    "wait_for_completion_interruptible": "event", "wait_for_common": "event",
    "synchronize_rcu": "event", "synchronize_rcu_expedited": "event", "synchronize_net": "event",
    "synchronize_srcu": "event", "__synchronize_srcu": "event", "wait_rcu_gp": "event",
    "__wait_rcu_gp": "event", "flush_work": "event", "__flush_work": "event",
    "flush_workqueue": "event",
    "futex_wait_queue_me": "futex", "futex_wait_queue": "futex",
    "do_nanosleep": "sleep", "hrtimer_nanosleep": "sleep", "msleep": "sleep",
    "pipe_read": "io", "pipe_wait": "io", "pipe_write": "io", "do_select": "io",
    "do_sys_poll": "io", "ep_poll": "io", "sk_wait_data": "io", "unix_stream_read_generic": "io",
    "n_tty_read": "io", "wait_woken": "io", "do_wait": "io",
    "worker_thread": "idle", "rescuer_thread": "idle", "kthreadd": "idle",
    "smpboot_thread_fn": "idle", "do_idle": "idle", "cpu_startup_entry": "idle",
    # FreeBSD kernel
    "_sx_xlock_hard": "rwlock", "_sx_slock_hard": "rwlock", "_rw_wlock_hard": "rwlock",
    "__rw_rlock_hard": "rwlock", "__mtx_lock_sleep": "mutex", "_mtx_lock_sleep": "mutex",
    "turnstile_wait": "mutex", "_cv_wait": "condition", "_cv_wait_sig": "condition",
    "_cv_timedwait_sbt": "timed-condition", "_cv_timedwait_sig_sbt": "timed-condition",
    "umtxq_sleep": "futex", "do_lock_umutex": "mutex",
    "kern_nanosleep": "sleep", "kern_clock_nanosleep": "sleep", "sys_nanosleep": "sleep",
    "kern_sigsuspend": "signal", "sys_pause": "signal", "sys_sigsuspend": "signal",
    "kqueue_scan": "io", "kern_kevent": "io", "seltdwait": "io", "soreceive_generic": "io",
    "sbwait": "io", "kern_wait6": "child", "ast": "running", "critical_exit_preempt": "running",
    "fork_trampoline": "idle",
}

GENERIC = frozenset({"futex"})

# A wait and the same wait with a deadline, which ends by itself.
TIMED: dict[str, str] = {"condition": "timed-condition", "semaphore": "timed-semaphore",
                         "mutex": "timed-mutex", "rwlock": "timed-rwlock", "join": "timed-join"}

# Families matched by the start of the normalised name.
PRIMITIVE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("std::condition_variable::wait", "condition"),
    ("std::__condvar::wait", "condition"),
    ("std::mutex::lock", "mutex"), ("std::__mutex_base", "mutex"),
    ("std::this_thread::sleep", "sleep"),
    ("__lll_lock_wait", "mutex"),
    # libstdc++'s std::future::get / wait: a futex wait of its own for the shared state to
    # be made ready, a one-shot event any holder of the promise (or the async task) sets
    ("std::__atomic_futex_unsigned_base::_M_futex_wait_until_steady", "timed-condition"),
    ("std::__atomic_futex_unsigned_base::_M_futex_wait_until", "event"),
)

# Frames that only pass a wait through (wrappers around the primitive): the program's own
# frame, the one a report names as where the wait happens, is the first one outside these.
_WRAPPER = re.compile(
    r"(?:^|::|\.)(?:CondVar|InstrumentedCondVar|InstrumentedMutex|ConditionWait|Mutex|"
    r"condition_variable|__condvar|unique_lock|lock_guard|scoped_lock)\b"
    r"|^(?:std::|__gthread|__pthread|pthread_|___pthread|__GI_|_L_|__lll|lll_|futex_|"
    r"__futex|do_futex|syscall$|schedule|__schedule|io_schedule|mutex_lock|__mutex|"
    r"sleepq_|_sleep$|mi_switch|runtime\.|sync\.|internal/sync\.|\?\?$|__new_sem|sem_wait|"
    r"sem_clockwait|PyThread_|lll_|___pthread)"
)

# Frames that make a condition/futex/semaphore wait an idle worker's wait for work.
POOL_LOOP = re.compile(
    r"ThreadPool|BGThread|WaitForJob|WaitForWork|WorkerThread|WorkerLoop|worker_thread|"
    r"worker_loop|thread_pool|threadpool|TaskQueue|task_queue|EventLoop|event_loop|RunLoop|"
    r"run_loop|_worker\b|Worker::Run|Executor|GetTask|getTask|wait_for_work|idle|"
    r"\.worker\b|\.\(\*[Pp]ool\)|\.\(\*[Ww]orkerPool\)",
)



def base_name(function: str) -> str:
    """``pthread_cond_wait@@GLIBC_2.3.2`` -> ``pthread_cond_wait``; signature dropped."""
    name = function
    at = name.find("@@")
    if at > 0:
        name = name[:at]
    paren = name.find("(")
    while paren > 0 and name[paren - 1] == ".":  # Go: pkg.(*T).Method
        paren = name.find("(", paren + 1)
    if paren > 0:
        name = name[:paren]
    return name.strip()


def primitive(name: str) -> str | None:
    cat = PRIMITIVES.get(name)
    if cat is not None:
        return cat
    for prefix, c in PRIMITIVE_PREFIXES:
        if name.startswith(prefix):
            return c
    return None


@dataclass(slots=True)
class Classification:
    category: str
    state: ThreadState
    kind: ResourceKind | None
    durable: bool
    primitive: int | None  # index of the blocking frame
    at: Frame | None  # the program's own frame where the wait happens


def classify(frames: list[Frame]) -> Classification:
    """What a native stack (innermost first) is doing, from its frames' names."""
    if not frames:
        return Classification("unknown", "unknown", None, False, None, None)
    category: str | None = None
    index = None
    for i, f in enumerate(frames[:SCAN_FRAMES]):
        cat = primitive(base_name(f.function))
        if cat is not None:
            category, index = cat, i
            break
    if category in GENERIC and index is not None:
        # a raw futex wait: the next few frames usually say which primitive it serves
        for j in range(index + 1, min(index + 7, len(frames))):
            cat = primitive(base_name(frames[j].function))
            if cat is not None and cat not in GENERIC:
                category, index = cat, j
                break
    if category in TIMED and index is not None:
        # glibc's common bodies (__pthread_cond_wait_common, __new_sem_wait_slow64, ...) serve
        # the plain and the timed call alike: the caller says whether the wait has a deadline
        # (pthread_cond_timedwait, sem_timedwait, pthread_mutex_timedlock end by themselves).
        for j in range(index + 1, min(index + 3, len(frames))):
            if primitive(base_name(frames[j].function)) == TIMED[category]:
                category, index = TIMED[category], j
                break
    if category is None or index is None:
        known = any(f.function != "??" for f in frames[:2])
        cat_name = "running" if known else "unknown"
        state: ThreadState = "running" if known else "unknown"
        return Classification(cat_name, state, None, False, None, None)
    at = None
    for f in frames[index + 1:]:
        if f.function != "??" and not _WRAPPER.search(base_name(f.function)):
            at = f
            break
    if category in ("condition", "timed-condition", "futex", "semaphore", "timed-semaphore",
                    "event", "barrier"):
        window = frames[index: index + 12]
        loop = next((i for i, f in enumerate(window) if POOL_LOOP.search(f.function)), None)
        # Under the pool's loop, a known job (stuck.knowledge.JOB_FRAMES) means the worker is
        # inside a job that waits, not idle between jobs.
        if loop is not None and not in_job(window[:loop]):
            category = "idle"
    state, kind, durable = CATEGORIES[category]
    return Classification(category, state, kind, durable, index, at)



__all__ = ["CATEGORIES", "GENERIC", "POOL_LOOP", "PRIMITIVES", "PRIMITIVE_PREFIXES",
           "SCAN_FRAMES", "TIMED", "Classification", "base_name", "classify", "primitive"]
