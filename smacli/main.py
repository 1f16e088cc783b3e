"""The `sma` command.

Server-side commands (`sma up`, `sma worker`, `sma db upgrade`) import the server
packages lazily, so the management commands that speak HTTP stay free of them.
"""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sma", description="Service Management Automation: runbooks, jobs, workers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser("up", help="run the web service, a worker and beat on this machine")
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    up.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    up.add_argument("--data-dir", help="data folder (SMA_DATA_DIR, ~/.local/share/sma)")
    up.add_argument("--workers", type=int, default=None,
                    help="jobs the worker runs at once (default: number of CPUs, at least 2)")
    up.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    up.add_argument("--tls-key", help="the certificate's private key (PEM)")

    worker = sub.add_parser("worker", help="run a runbook worker (a Celery worker)")
    worker.add_argument("--group", help="worker group to serve (SMA_WORKER_GROUP, default)")
    worker.add_argument("--concurrency", type=int, help="jobs run at once")

    token = sub.add_parser("token", help="API tokens, made in the database (first admin)")
    tsub = token.add_subparsers(dest="token_command", metavar="TOKEN_COMMAND")
    tcreate = tsub.add_parser("create", help="create a token and print its secret once")
    tcreate.add_argument("--name", required=True)
    tcreate.add_argument("--role", required=True,
                         choices=("reader", "operator", "author", "admin"))
    tcreate.add_argument("--expires-in-days", type=int, default=None)

    keys = sub.add_parser("keys", help="encryption keys of the secrets")
    ksub = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND")
    ksub.add_parser("rotate", help="re-encrypt every secret under the first key of "
                                   "SMA_ENCRYPTION_KEYS")

    dbp = sub.add_parser("db", help="database maintenance")
    dbsub = dbp.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    dbsub.add_parser("upgrade", help="apply the schema migrations")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from smacommon.errors import SmaError

    try:
        if args.command == "up":
            from smacli.server import up

            return up(args)
        if args.command == "worker":
            from smacli.server import worker

            return worker(args)
        if args.command == "token" and args.token_command == "create":
            from smacli.server import token_create

            return token_create(args)
        if args.command == "keys" and args.keys_command == "rotate":
            from smacli.server import keys_rotate

            return keys_rotate(args)
        if args.command == "db" and args.db_command == "upgrade":
            from smacli.server import db_upgrade

            return db_upgrade(args)
    except SmaError as exc:
        print(f"sma: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    parser.print_help(sys.stderr if args.command else sys.stdout)
    return 2 if args.command else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
