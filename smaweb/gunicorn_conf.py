"""gunicorn's settings for the web service, the same for `sma up` and the compose image:
`gunicorn -c python:smaweb.gunicorn_conf -w N -b HOST:PORT smaweb.wsgi:app` (command())."""

from __future__ import annotations

import sys

CONFIG = "python:smaweb.gunicorn_conf"

# heads read in the event loop under a deadline, connections per address capped
worker_class = "smaweb.gthread.GuardedThreadWorker"
threads = 16
# no gunicornc control socket: sma does not use it, it would sit in $HOME/.gunicorn (one path
# for every instance of a user), and a job running as that user could stop the server with it
control_socket_disable = True
# requests are logged by the app (sma.request, webhook tokens masked): no access log here


def command(bind: str, processes: int = 1, tls: tuple[str, str] | None = None,
            graceful_timeout: float | None = None) -> list[str]:
    """The gunicorn command line of the web service."""
    return [sys.executable, "-m", "gunicorn", "-c", CONFIG, "-w", str(processes), "-b", bind,
            *(["--graceful-timeout", f"{graceful_timeout:g}"] if graceful_timeout else []),
            *(["--certfile", tls[0], "--keyfile", tls[1]] if tls else []),
            "smaweb.wsgi:app"]
