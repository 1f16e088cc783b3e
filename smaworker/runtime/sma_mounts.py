"""The mounts of a forked warm host's namespace (runtime/sma_zygote.py's init, B): what
bubblewrap's command line makes for a cold job (smaworker/sandbox.py `command`), made with
mount(2) by B as root, and unmade and made again for the next host of an init that takes
more than one (`unmount`, `remake`).
"""

import ctypes
import os
import stat

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p)
libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2


def check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    check(libc.mount(source and os.fsencode(source), os.fsencode(target),
                       fstype and fstype.encode(), flags, data and data.encode()),
           f"mount {target}")


def _bind(source: str, target: str, flags: int = 0) -> None:
    """A bind mount as bubblewrap makes one: nosuid, nodev (and `flags`: MS_RDONLY...)."""
    _mount(source, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | flags)


def make(spec: dict) -> dict:
    """What `bwrap --dev-bind / / --proc /proc --bind TMP /tmp [--bind KEPT KEPT...]
    --tmpfs RUN --bind WORKDIR WORKDIR [--ro-bind-data PASSWD /etc/passwd]` makes. Returns
    what a later host of this init needs to make them again for its own folder (`remake`):
    the real run/ folder and the kept paths, held open."""
    run = spec["run"]
    if os.path.dirname(spec["workdir"]) != run:
        raise ValueError(f"a host folder {spec['workdir']} not in {run}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing made here reaches the host
    # what /tmp and run/ will cover, held open to be bound back from /proc/self/fd
    kept = [os.open(path, os.O_PATH) for path in spec["kept"]]
    run_fd = os.open(run, os.O_PATH | os.O_DIRECTORY)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in ("sys", "sysrq-trigger", "irq", "bus"):  # what bwrap's --proc covers:
        path = f"/proc/{name}"  # made read-only where it is writable
        if os.access(path, os.W_OK):
            _bind(path, path, MS_RDONLY | MS_NOEXEC)
    held = {"run": run_fd, "kept": kept}
    _tmp(spec, held)
    _mount("tmpfs", run, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    _folder(spec, held)
    return held


def _tmp(spec: dict, held: dict) -> None:
    """The host's /tmp: its folder's own, with the kept paths bound back."""
    name = os.path.basename(spec["workdir"])
    _bind(f"/proc/self/fd/{held['run']}/{name}/{spec['tmp']}", "/tmp")
    for path, fd in zip(spec["kept"], held["kept"], strict=True):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.makedirs(path, exist_ok=True)
        else:  # a file right in /tmp (a CA file): bound onto an empty one
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        _bind(f"/proc/self/fd/{fd}", path)


def _folder(spec: dict, held: dict) -> None:
    """The host's folder in the emptied run/, and its /etc/passwd."""
    workdir, run = spec["workdir"], spec["run"]
    if spec.get("passwd") is not None:
        staged = os.path.join(run, ".passwd")
        with open(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as fh:
            fh.write(spec["passwd"])
        _bind(staged, "/etc/passwd", MS_RDONLY)
        os.unlink(staged)
    name = os.path.basename(workdir)
    mountpoint = os.path.join(run, name)
    os.mkdir(mountpoint, 0o755)
    _bind(f"/proc/self/fd/{held['run']}/{name}", mountpoint)


def unmount(spec: dict) -> bool:
    """Unmount what `make` made for the host that ended (its /tmp with the kept paths
    under it, its folder, its /etc/passwd), so nothing of it is left to reach here: the
    next host gets its own (`remake`). False when that failed (this init then ends)."""
    try:
        _umount("/tmp")  # (the jobs' run/ is in /tmp, usually: its tmpfs goes with it)
        if os.path.ismount(spec["run"]):
            _umount(spec["run"])
        if spec.get("passwd") is not None:
            _umount("/etc/passwd")
    except OSError as exc:
        try:
            os.write(2, f"sma: a warm host's init could not unmount its host: {exc}\n"
                     .encode())
        except OSError:
            pass
        return False
    return True


def remake(spec: dict, held: dict) -> None:
    """The mounts of `make` made again for the next host of this init, after `unmount`:
    its own folder (a new one, the pool process's) in an empty run/, /tmp and /etc/passwd."""
    _tmp(spec, held)
    _mount("tmpfs", spec["run"], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    _folder(spec, held)


def _umount(target: str) -> None:
    check(libc.umount2(os.fsencode(target), MNT_DETACH), f"umount {target}")
