"""The `sma` command.

Management commands (runbook, job, variable, ..., schedule, webhook) speak HTTP through
smacli.client. Server-side commands (`sma up`, `sma worker`, `sma db upgrade`, `sma keys`,
`sma token create` on a new install) import the server packages lazily, so the management
commands stay free of them.
"""

from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line saying what to fix (exit code 2), not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"sma: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from smacli.cli import admin, assets, runbooks, schedules

    parser = _Parser(
        prog="sma", description="Service Management Automation: runbooks, jobs, workers. "
        "Log in once with `sma login URL`; every command takes --output json.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    admin.register_login(sub)
    runbooks.register(sub)
    assets.register(sub)
    schedules.register(sub)

    up = sub.add_parser("up", help="run the web service, a worker and beat on this machine")
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    up.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    up.add_argument("--data-dir", help="data folder (SMA_DATA_DIR, ~/.local/share/sma)")
    up.add_argument("--workers", type=int, default=None,
                    help="jobs the worker runs at once (default: number of CPUs, at least 2)")
    up.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    up.add_argument("--tls-key", help="the certificate's private key (PEM)")
    up.set_defaults(server="up")

    worker = sub.add_parser("worker", help="run a runbook worker (a Celery worker); "
                                           "`sma worker list` shows the registered ones")
    worker.add_argument("--group", help="worker group to serve (SMA_WORKER_GROUP, default)")
    worker.add_argument("--concurrency", type=int, help="jobs run at once")
    worker.set_defaults(server="worker")
    wsub = worker.add_subparsers(dest="action", metavar="ACTION")

    token = sub.add_parser("token", help="API tokens")
    tsub = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    tcreate = tsub.add_parser("create", help="create a token and print its secret once "
                                             "(through the API; in the database with "
                                             "--database, or when not logged in)")
    tcreate.add_argument("--name", required=True)
    tcreate.add_argument("--role", required=True,
                         choices=("reader", "operator", "author", "admin"))
    tcreate.add_argument("--expires-in-days", type=int, default=None)
    tcreate.add_argument("--database", action="store_true",
                         help="make it straight in the database (the first admin)")
    tcreate.add_argument("-o", "--output", choices=("table", "json"), default="table")
    tcreate.add_argument("--url")
    tcreate.add_argument("--no-color", action="store_true")
    tcreate.set_defaults(server="token_create")
    admin.register_api(wsub, tsub, sub)

    keys = sub.add_parser("keys", help="encryption keys of the secrets")
    ksub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    ksub.add_parser("rotate", help="re-encrypt every secret under the first key of "
                                   "SMA_ENCRYPTION_KEYS").set_defaults(server="keys_rotate")

    dbp = sub.add_parser("db", help="database maintenance")
    dbsub = dbp.add_subparsers(dest="action", metavar="ACTION", required=True)
    dbsub.add_parser("upgrade", help="apply the schema migrations").set_defaults(
        server="db_upgrade")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is not None:
        from smacli.cli.common import run_command

        return run_command(args.func, args)
    server = getattr(args, "server", None)
    if server == "token_create":
        from smacli.cli.admin import api_configured, token_create_api
        from smacli.cli.common import run_command

        if not args.database and api_configured(args):
            return run_command(token_create_api, args)
    if server is None:
        parser.print_help(sys.stderr if args.command else sys.stdout)
        return 2 if args.command else 0
    return _server(server, args)


def _server(name: str, args: argparse.Namespace) -> int:
    from smacommon.errors import SmaError

    try:
        from smacli import server

        return getattr(server, name)(args)
    except SmaError as exc:
        print(f"sma: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
