"""What `sma up` settles before it starts anything: where to listen (--host/--port, else
SMA_HOST/SMA_PORT), that the port is free, and how to reach the `sma` command afterwards."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import socket
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def listen_address(args: argparse.Namespace) -> tuple[str, int]:
    """The host and port of `sma up`: the flags, then SMA_HOST and SMA_PORT, then defaults."""
    host = args.host if args.host is not None else os.environ.get("SMA_HOST") or DEFAULT_HOST
    if args.port is not None:
        port, source = args.port, "--port"
    elif os.environ.get("SMA_PORT"):
        port, source = os.environ["SMA_PORT"].strip(), "SMA_PORT"
    else:
        return host, DEFAULT_PORT
    try:
        number = int(port)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise SystemExit(f"sma: {source} must be a port number from 1 to 65535, not {port!r}")
    return host, number


def check_port_free(host: str, port: int) -> None:
    """Exit with one line naming the flag to change when `host:port` cannot be listened on."""
    where = "--port (or SMA_PORT; `make run PORT=...`)"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise SystemExit(f"sma: cannot listen on {host!r}: {exc.strerror}; give an address "
                         "of this machine with --host (or SMA_HOST)") from None
    with socket.socket(family, kind, proto) as sock:
        # as gunicorn binds: connections closing on the port (TIME_WAIT) are no conflict
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = (f"port {port} on {host} is in use by another program; start on "
                           f"another with {where}")
            elif exc.errno == errno.EACCES:
                message = (f"port {port} needs more privileges than this user has (ports "
                           f"below 1024); choose another with {where}")
            elif exc.errno == errno.EADDRNOTAVAIL:
                message = (f"{host} is not an address of this machine; choose another with "
                           "--host (or SMA_HOST)")
            else:
                message = f"cannot listen on {host}:{port}: {exc.strerror}"
            raise SystemExit(f"sma: {message}") from None


def cli_hint(api_url: str) -> str | None:
    """How to call `sma` when it runs from a virtual environment whose `sma` is not the one
    on PATH (after `make run`: the project's .venv); None when `sma` already finds it."""
    if sys.prefix == sys.base_prefix:
        return None
    sma = Path(sys.prefix, "bin", "sma")
    if not sma.is_file():
        return None
    found = shutil.which("sma")
    if found and Path(found).resolve() == sma.resolve():
        return None
    shown = _shown(sma)
    activate = _shown(sma.parent / "activate")
    return (f"The sma command: run `. {activate}` in your shell first, or call it by its "
            f"path, e.g. `{shown} login {api_url}`")


def _shown(path: Path) -> Path:
    """`path` relative to the current folder when it is inside it (.venv/bin/sma)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
