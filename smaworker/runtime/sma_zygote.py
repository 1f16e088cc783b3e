"""The warm Python engine's zygote: forks warm hosts instead of starting them.

smaworker/zygote.py starts one per worker pool process, as root, with a clean environment:
this interpreter, sma's host and helpers and the common standard modules imported once. For
each host its pool process asks for (a SOCK_SEQPACKET message: the host's folder,
environment, umask and namespaces; its spec, stdout, stderr and report pipes as SCM_RIGHTS
descriptors) it clones:

- B, the pool process's own child (CLONE_PARENT: the pool process supervises, signals and
  reaps it as it does a cold job's bwrap) and process 1 of new PID and mount namespaces,
  is what bubblewrap's init is for a cold job: a session of its own, the parent-death
  signal, the host's cgroup where there is one, then the same mounts as the cold job's
  bwrap command line (smaworker/sandbox.py `command`): a fresh /proc, the host's own /tmp
  with what it must reach there bound back, the jobs' run/ folder hidden under an empty
  tmpfs with only the host's folder bound back, and its own /etc/passwd; no_new_privs set,
  as bubblewrap sets it. It forks the host (C), reaps every process of the namespace, and
  exits as bwrap's init does when C ends (with C's exit status, 128 + N for a death by
  signal N): the kernel then ends whatever the job left in the namespace. Before it exits
  it writes that status and the job's usage on its report pipe (`_report`). Where it could
  not make the namespace it says why on the host's stderr and exits INIT_FAILED. Given a
  control socket (a fifth descriptor), B does not exit when C ended and left no process in
  the namespace: after its report it unmounts C's folder, /tmp and /etc/passwd, says so on
  that socket ({"free": true}), and waits there for the next host's request (its pipes, a
  new folder), mounts those and forks the next C (`_next_host`); EOF on the socket, or
  anything left running, ends it;
- C takes its pipes as descriptors 0-4 and closes every other, its folder, umask and
  environment, sets its limits and becomes the job user (sma_python_host.py), clones D, a
  process that holds its memory and runs nothing (`_hold_memory`: so that C's exit does not
  free that memory before B can report), and then waits for its job exactly as a host
  started with `--warm` does. B ends D once it has reported C's end.

A fork of this process holds nothing of the worker's: it was started by exec with a clean
environment, nothing secret passes through it (a job's token and parameters go from the
pool process to its host over the host's own pipe), and its socket to the pool process is
closed in every fork. It takes one request at a time; EOF on its socket ends it, and it
dies with its pool process (its parent-death signal).
"""

import ctypes
import fcntl
import gc
import marshal
import mmap
import os
import select
import signal
import socket
import sys

_RUNTIME = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _RUNTIME)  # -I leaves it out; a host adds it again (`_warm`)
sys.dont_write_bytecode = True  # root writes nothing in the runtime's folder
import sma_mounts as mounts  # noqa: E402
import sma_python_host as host  # noqa: E402
from sma_mounts import check as _check  # noqa: E402

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong)
# libc's syscall() and the interpreter's fork hooks, called holding the GIL (as os.fork does)
_python = ctypes.PyDLL(None, use_errno=True)
_python.syscall.restype = ctypes.c_long
_python.syscall.argtypes = (ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p,
                            ctypes.c_void_p, ctypes.c_void_p)
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)

CLONE_VM = 0x00000100
CLONE_NEWNS = 0x00020000
CLONE_PARENT = 0x00008000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG, PR_SET_NAME, PR_SET_NO_NEW_PRIVS = 1, 15, 38
PIPES = 4  # the descriptors a request carries: spec (read end), stdout, stderr, report (write)
# (and, for an init that may run more than one host, a fifth: its control socket)
HOLD_FD = 5  # in C: its end of the pipe on which it tells B its memory holder's pid


# Every page a fork writes to is copied first, at about 5 us a page fault on this machine
# (a host touched some 600 before its runbook's first line): what a fork needs is made once,
# here, so that its own work touches as little as it can.
_names: dict[bytes, ctypes.Array] = {}


def _name(name: bytes) -> None:
    """The process's name (`comm`, what ps and /proc/PID/comm show)."""
    buffer = _names.get(name)
    if buffer is None:
        buffer = _names[name] = ctypes.create_string_buffer(name)
    _libc.prctl(PR_SET_NAME, ctypes.addressof(buffer), 0, 0, 0)


# the names its forks take (C's last, a cold job's: the interpreter's)
_EXECUTABLE = os.path.basename(sys.executable).encode()[:15]
for _known in (b"sma-init", b"sma-host", b"sma-memory", _EXECUTABLE):
    _names[_known] = ctypes.create_string_buffer(_known)


def _warm_up() -> None:
    """What every host would import or set up itself, done once here for all of them."""
    import importlib

    exec(compile(b"pass\n", "<warm>", "exec", dont_inherit=True), {})
    for name in host._WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # what is here now stays: the collector leaves it alone, so a fork's collections do not
    # write to (and copy) every page of it
    gc.freeze()
    # a host starts as an exec'd one does: its folder and sma's runtime are put first on
    # its path by `_warm`, and it may write bytecode
    sys.path.remove(_RUNTIME)
    sys.dont_write_bytecode = False


def serve(sock: socket.socket) -> None:
    pool = os.pidfd_open(os.getppid())  # B's way to tell whether the pool process is gone
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 20, PIPES + 1)
        except OSError:
            return
        if not message:
            return  # the pool process let go of it
        try:
            if len(fds) not in (PIPES, PIPES + 1):
                raise ValueError(f"a request with {len(fds)} descriptors, not {PIPES} "
                                 f"(or {PIPES + 1}, with a reusable init's control socket)")
            reply = {"pid": _fork_host(marshal.loads(message), fds, sock, pool)}
        except Exception as exc:  # noqa: BLE001 - said to the pool process, which runs cold
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(marshal.dumps(reply))


def _fork_host(spec: dict, fds: list, sock: socket.socket, pool: int) -> int:
    """Clone B, the host's init: the pool process's child (CLONE_PARENT), in new PID and
    mount namespaces. A raw clone(), wrapped as os.fork() wraps fork() (the interpreter's
    before-fork and after-fork hooks), because os.fork() cannot ask for either."""
    flags = CLONE_PARENT | signal.SIGCHLD
    if spec["namespaces"]:
        flags |= CLONE_NEWPID | CLONE_NEWNS
    workdir = spec["workdir"]  # (a request without it is refused before any clone)
    if SYS_CLONE is None:
        raise OSError(f"no clone system call number known for {os.uname().machine}")
    _python.PyOS_BeforeFork()
    pid = _python.syscall(SYS_CLONE, flags, None, None, None, None)
    errno = ctypes.get_errno() if pid < 0 else 0
    if pid == 0:
        _python.PyOS_AfterFork_Child()
        sock.close()
        _init(spec, fds, pool)  # never returns
    _python.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(errno, f"clone for a host in {workdir}: {os.strerror(errno)}")
    return pid


INIT_FAILED = 125  # B could not make the namespace (smaworker/zygote.py falls back to exec)


def _init(spec: dict, fds: list, pool: int) -> None:
    """B: process 1 of the host's namespace (see the module's docstring)."""
    code = INIT_FAILED
    control = socket.socket(fileno=fds[PIPES]) if len(fds) > PIPES else None
    try:
        os.setsid()
        _name(b"sma-init")
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # its parent: the pool process
        if select.select([pool], [], [], 0)[0]:
            os._exit(0)  # the pool process ended before the signal was set
        os.close(pool)
        if spec.get("cgroup_procs"):
            with open(spec["cgroup_procs"], "w") as fh:
                fh.write("0")
        held = mounts.make(spec) if spec["namespaces"] else None
        # as bubblewrap sets it: no exec of the job's gains privileges (set-user-ID
        # programs, file capabilities)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        # process 1 gets only the signals it handles: SIGINT would be Python's own (each
        # host sets Python's again)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(fds[2], f"sma: the warm host's namespace could not be made: {exc}\n"
                     .encode())
        except OSError:
            pass
        os._exit(code)
    try:
        while True:
            hold_r, hold_w = os.pipe()
            c = os.fork()
            if c == 0:
                os.close(hold_r)
                _host(spec, fds[:3], hold_w)  # never returns
            os.close(hold_w)
            for fd in fds[:3]:
                os.close(fd)
            holder = _holder(hold_r)
            code, usage, holder = _reap(c, holder)
            _report(fds[PIPES - 1], code, usage)  # at once: the job's end waits for no more
            os.close(fds[PIPES - 1])
            _let_go(holder)  # C's memory is freed now, after the report
            # another host may come when nothing of this job runs on, its folders unmounted:
            # said on the control socket, so the pool process removes them only then
            if not (control is not None and held is not None and _alone()
                    and mounts.unmount(spec)):
                break  # its exit ends whatever the job left in the namespace
            _answer(control, {"free": True})
            try:
                spec, fds = _next_host(control, spec, held)
            except Exception as exc:  # noqa: BLE001 - said to the pool process, which lets it go
                _answer(control, {"error": f"{type(exc).__name__}: {exc}"})
                break
            if spec is None:
                code = 0
                break  # the pool process let it go
            _answer(control, {"pid": os.getpid()})
    except BaseException:  # noqa: BLE001 - (a fork that failed): its exit ends it all
        pass
    os._exit(code)


def _alone() -> bool:
    """After its host ended: whether nothing else is left in the namespace (what a job left
    running makes its init end instead of taking another host)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True  # no process but this one
        if not pid:
            return False  # one still runs


def _answer(control: socket.socket, reply: dict) -> None:
    try:
        control.send(marshal.dumps(reply))
    except OSError:
        pass


def _next_host(control: socket.socket, previous: dict, held: dict
               ) -> tuple[dict | None, list]:
    """Wait for the pool process's next request on `control` (a SOCK_SEQPACKET socket):
    the next host's spec and pipes; (None, []) when it let this init go. The next host
    gets fresh folders: its own (made by the pool process, bound in place of the last
    one's), its /tmp and its /etc/passwd."""
    try:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, PIPES)
    except OSError:
        message, fds = b"", []
    if not message:
        for fd in fds:
            os.close(fd)
        return None, []
    try:
        if len(fds) != PIPES:
            raise ValueError(f"a request with {len(fds)} descriptors, not {PIPES}")
        spec = marshal.loads(message)
        if spec["kept"] != previous["kept"] or spec["run"] != previous["run"]:
            raise ValueError("a host that must reach other paths than the last one")
        mounts.remake(spec, held)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return spec, fds


def _report(fd: int, code: int, usage: tuple[float, float, int]) -> None:
    """Tell the pool process how the host ended, at once: this process's own exit waits
    for the namespace to be torn down (milliseconds), and the job's end need not. Its exit
    status and the usage of the job's processes this process reaped (CPU time, the largest
    peak memory), as the pool process would read them from this process's end."""
    try:
        os.write(fd, marshal.dumps((code, *usage)))
    except OSError:  # the pool process is gone, or no longer asks
        pass


def _reap(main: int, holder: int) -> tuple[int, tuple[float, float, int], int]:
    """Reap the namespace's processes until `main` ends: its status as bwrap's init gives
    it, the usage of the processes reaped meanwhile (this host's: user and system CPU
    seconds, the largest peak memory in KiB), and `holder` (0 once it was reaped too)."""
    utime = stime = 0.0
    maxrss = 0
    while True:
        try:
            pid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:  # (cannot be: `main` is this process's child)
            return INIT_FAILED, (utime, stime, maxrss), 0
        utime += usage.ru_utime
        stime += usage.ru_stime
        maxrss = max(maxrss, usage.ru_maxrss)
        if pid == holder:  # (the job ended it: its memory goes with the host's end)
            holder = 0
        if pid == main:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status), (utime, stime, maxrss), holder
            return os.waitstatus_to_exitcode(status), (utime, stime, maxrss), holder


# --- the host's memory holder -------------------------------------------------------------
#
# The last process to let go of an address space frees it, page by page: for a host, a fork
# of this process's 20-odd MB, about a millisecond of the kernel's time in its exit, before
# its init can reap it, so before the job's end is known. So each host C clones D first, a
# process that shares C's memory (CLONE_VM) and does nothing: C's exit then only drops its
# hold, B reaps C and reports at once, and D, ended after the report, frees the memory off
# the job's way. D is B's child (CLONE_PARENT: the runbook has no child it did not start,
# and its waits never see D), runs as the job's user (cloned after C became it), and sleeps
# in sigsuspend with every signal blocked: it runs no code of its own, and only SIGKILL
# ends it, from B, or from the job's user itself (then C's exit frees the memory, as
# before). It counts as one of that user's processes (RLIMIT_NPROC), as C does.

_SIGSET_ALL = ctypes.create_string_buffer(b"\xff" * 128)  # a sigset_t with every signal
_SIGSET_WAS = ctypes.create_string_buffer(128)  # C's mask while D is cloned
_libc.clone.restype = ctypes.c_int
_libc.clone.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
_libc.pthread_sigmask.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_SIGSUSPEND = ctypes.cast(_libc.sigsuspend, ctypes.c_void_p)
_HOLDER_STACK = 16384  # sigsuspend's few frames
_held: list = []  # D's stack: C never frees it


def _hold_memory(fd: int) -> None:
    """In C, once it is the job's user: clone D (see above) and tell B its pid on `fd`
    (0: none; C then frees its memory in its own exit, as a host without one did)."""
    pid = _put_aside(_clone_holder)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)


# the job's pipes (stdout, stderr, the record channel, the spec) and B's pipe for the
# holder's pid: B's read must see its end when C ends
_ASIDE = (1, 2, 3, 4, HOLD_FD)


def _put_aside(clone) -> int:
    """`clone()` with the job's pipes out of this process's descriptors, then put back: a
    clone gets a copy of them (a D holding a pipe's end would keep the pool process from
    seeing its end until D ended). Meanwhile they wait in a socket's queue. 0 without a
    clone where they cannot be put aside; C cannot go on where they do not come back."""
    try:
        keep, aside = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:
        return 0
    with keep:
        with aside:
            try:
                socket.send_fds(aside, [b"."], list(_ASIDE))
            except OSError:
                return 0
        for target in _ASIDE:
            os.close(target)
        try:
            return clone()
        finally:
            _, back, _, _ = socket.recv_fds(keep, 1, len(_ASIDE))
            if len(back) != len(_ASIDE):
                raise OSError("the job's pipes did not come back")
            moved = [fcntl.fcntl(got, fcntl.F_DUPFD, 10) for got in back]
            for got in back:
                os.close(got)
            for got, target in zip(moved, _ASIDE, strict=True):
                os.dup2(got, target)
                os.close(got)


def _clone_holder() -> int:
    """D's pid (see above), 0 when it could not be cloned."""
    try:
        stack = mmap.mmap(-1, _HOLDER_STACK)
        base = ctypes.c_char.from_buffer(stack)
    except (OSError, ValueError):
        return 0
    _held.append((stack, base))
    top = (ctypes.addressof(base) + _HOLDER_STACK - 64) & ~15
    # D starts with every signal blocked, so none reaches this interpreter's handlers in D
    # before sigsuspend blocks them for good (glibc's clone: D calls fn(arg) and shares C's
    # thread-local storage, which sigsuspend in a single-threaded process does not touch)
    # (libc's pthread_sigmask with the sets made in the zygote: signal's own builds a set
    # of every signal's enum member, a few hundred microseconds of page faults in C)
    if _libc.pthread_sigmask(signal.SIG_BLOCK, _SIGSET_ALL, _SIGSET_WAS):
        return 0
    try:
        _name(b"sma-memory")
        pid = _libc.clone(_SIGSUSPEND, top, CLONE_VM | CLONE_PARENT | signal.SIGCHLD,
                          ctypes.addressof(_SIGSET_ALL))
    finally:
        _name(b"sma-host")
        if _libc.pthread_sigmask(signal.SIG_SETMASK, _SIGSET_WAS, None):
            raise OSError("the host's signal mask could not be put back")  # C ends
    return max(pid, 0)


def _holder(fd: int) -> int:
    """In B: the pid of C's memory holder, as C said it on `fd` (0: none, or C ended before
    it could say)."""
    try:
        data = os.read(fd, 32)
    finally:
        os.close(fd)
    try:
        return int(data or 0)
    except ValueError:
        return 0


def _let_go(holder: int) -> None:
    """In B, after its report: end C's memory holder, and reap it (its end frees C's
    memory: what a job left running is not yet alone with its init until then)."""
    if holder:
        try:
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)
        except OSError:  # (reaped already: it cannot be, `_reap` says so)
            pass


def _host(spec: dict, fds: list, hold: int) -> None:
    """C: the warm host itself (see the module's docstring); `hold`: where it tells B its
    memory holder's pid."""
    code = INIT_FAILED  # (it could not become the host: see smaworker/zygote.py)
    try:
        _name(b"sma-host")
        signal.signal(signal.SIGINT, signal.default_int_handler)  # its init ignores it
        # out of the way of 0-5, whatever numbers they came with
        spec_r, out_w, err_w, hold = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
                                      for fd in (*fds, hold))
        null = os.open("/dev/null", os.O_RDWR)
        for fd, target in ((null, 0), (out_w, 1), (err_w, 2), (out_w, 3), (spec_r, 4),
                           (hold, HOLD_FD)):
            os.dup2(fd, target)
        os.closerange(HOLD_FD + 1, os.sysconf("SC_OPEN_MAX"))
        os.umask(spec["umask"])
        os.chdir(spec["workdir"])
        os.environ.clear()
        os.environ.update(spec["env"])
        import tempfile

        tempfile.tempdir = None  # TMPDIR is read at its first use, the job's
        host._set_limits()
        host._drop_root()
        _hold_memory(HOLD_FD)
        script, job = host._warm(4)
        _name(_EXECUTABLE)  # as a cold job's process
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(2, f"sma: the warm host could not start: {exc}\n".encode())
        finally:
            os._exit(code)
    host.run_and_exit(script, job)


if __name__ == "__main__":
    _name(b"sma-zygote")
    _warm_up()
    serve(socket.socket(fileno=int(sys.argv[1])))
