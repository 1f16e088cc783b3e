"""gunicorn's settings for the web service, the same for `sma up` and the compose image:
`gunicorn -c python:smaweb.gunicorn_conf -w N -b HOST:PORT smaweb.wsgi:app` (command())."""

from __future__ import annotations

import sys

CONFIG = "python:smaweb.gunicorn_conf"

# a greenlet per connection (gevent): long-lived requests (live output, start?wait=) are
# cheap; heads read under a deadline, connections per address capped (smaweb/ggevent.py)
worker_class = "smaweb.ggevent.GuardedGeventWorker"
worker_connections = 4096  # per process; followers of live output hold one each
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
