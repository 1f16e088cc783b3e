"""The `sma` command.

Management commands (runbook, job, variable, ..., schedule, webhook) speak HTTP through
smacli.client. Server-side commands (`sma up`, `sma worker`, `sma db upgrade`, `sma keys ...`,
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
    from smacli.cli import admin, assets, bindings, jobs, modules, runbooks, schedules
    from smacli.cli.common import command

    parser = _Parser(
        prog="sma", description="Service Management Automation: runbooks, jobs, workers. "
        "Log in once with `sma login URL`; every command takes --output json.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    admin.register_login(sub)
    runbooks.register(sub)
    jobs.register(sub)
    assets.register(sub)
    schedules.register(sub)
    modules.register(sub)
    bindings.register(sub)

    # server-side commands have no func: main() runs them by their `server` name
    up = command(sub, "up", "run the web service, a worker and beat on this machine", None,
                 server="up")
    up.add_argument("--host", help="address to listen on (SMA_HOST, 127.0.0.1)")
    up.add_argument("--port", help="port to listen on (SMA_PORT, 8080)")
    up.add_argument("--data-dir", help="data folder (SMA_DATA_DIR, ~/.local/share/sma)")
    up.add_argument("--workers", type=int, default=None,
                    help="jobs the worker runs at once (default: number of CPUs, at least 2)")
    up.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    up.add_argument("--tls-key", help="the certificate's private key (PEM)")

    worker = command(sub, "worker", "run a runbook worker (a Celery worker); "
                                    "`sma worker list` shows the registered ones", None,
                     server="worker")
    worker.add_argument("--group", help="worker group to serve (SMA_WORKER_GROUP, default)")
    worker.add_argument("--concurrency", type=int, help="jobs run at once")
    wsub = worker.add_subparsers(dest="action", metavar="ACTION")

    token = sub.add_parser("token", help="API tokens")
    tsub = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    tcreate = command(tsub, "create", "create a token and print its secret once (through "
                                      "the API; in the database with --database, or when "
                                      "not logged in)", None, server="token_create")
    tcreate.add_argument("--name", required=True)
    tcreate.add_argument("--role", required=True,
                         choices=("none", "reader", "operator", "author", "admin"),
                         help="none: only what its role bindings give (sma role-binding)")
    tcreate.add_argument("--expires-in-days", type=int, default=None)
    tcreate.add_argument("--database", action="store_true",
                         help="make it straight in the database (the first admin)")
    tcreate.add_argument("-o", "--output", choices=("table", "json"), default="table")
    tcreate.add_argument("--url")
    tcreate.add_argument("--no-color", action="store_true")
    admin.register_api(wsub, tsub, sub)

    keys = sub.add_parser("keys", help="encryption keys of the secrets, signing keys of "
                                       "job identity tokens")
    ksub = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(ksub, "rotate", "re-encrypt every secret under the first key of "
                            "SMA_ENCRYPTION_KEYS", None, server="keys_rotate")
    command(ksub, "rotate-signing", "make a new key to sign job identity tokens (the old "
                                    "one verifies its tokens until they expire)", None,
            server="keys_rotate_signing")

    dbp = sub.add_parser("db", help="database maintenance")
    dbsub = dbp.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(dbsub, "upgrade", "apply the schema migrations", None, server="db_upgrade")
    return parser


# the commands whose words after `--` are a runbook's positional arguments; they are split
# off before argparse, which cannot take them after an option (python/cpython#53584)
RUNBOOK_ARGUMENTS = {("runbook", "start"), ("schedule", "link"), ("webhook", "create"),
                     ("webhook", "update")}


def split_runbook_arguments(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`sma runbook start NAME -p x=1 -- -s web01 extra`: the words before `--`, and the
    runbook's arguments after it (None without `--`)."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if tuple(argv[:2]) in RUNBOOK_ARGUMENTS:
        argv, arguments = split_runbook_arguments(argv)
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}; the runbook's own "
                         f"arguments go after --, e.g. `sma {' '.join(argv[:2])} ... -- "
                         f"{' '.join(unknown)}`")
        args.arguments = arguments
    else:
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
