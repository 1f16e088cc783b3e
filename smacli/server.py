"""Server-side commands: `sma up` (everything on one machine), `sma worker`, `sma db upgrade`."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time

from smacommon.settings import Settings, load_settings


def db_upgrade(args: argparse.Namespace) -> int:
    from smacommon.migrate import upgrade

    settings = load_settings()
    upgrade(settings.effective_database_url)
    print(f"Database is up to date: {safe_url(settings.effective_database_url)}")
    return 0


def token_create(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from smacommon.db import get_engine
    from smacommon.migrate import upgrade
    from smacommon.services.audit import act_as
    from smacommon.services.tokens import create_token

    settings = load_settings()
    upgrade(settings.effective_database_url)
    if args.expires_in_days is not None and args.expires_in_days < 1:
        print("sma: --expires-in-days must be 1 or more", file=sys.stderr)
        return 2
    with Session(get_engine(settings.effective_database_url)) as s, s.begin():
        token, secret = create_token(act_as(s, cli_actor()), args.name, args.role,
                                     args.expires_in_days)
        name, role = token.name, token.role
    print(f"Token {name!r} ({role}), shown once: {secret}")
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    from smacommon.crypto import get_crypto
    from smacommon.db import get_engine
    from smacommon.services.assets import rotate_secrets

    settings = load_settings()
    count = rotate_secrets(get_engine(settings.effective_database_url), get_crypto(settings),
                           cli_actor())
    print(f"Re-encrypted {count} secret(s) under the first key. The other keys can be removed "
          "from SMA_ENCRYPTION_KEYS now.")
    return 0


def keys_rotate_signing(args: argparse.Namespace) -> int:
    from smacommon.db import get_engine
    from smacommon.services.audit import record_alone
    from smacommon.signing import RETAIN_SECONDS, key_folder, rotate

    settings = load_settings()
    folder = key_folder(settings.data_dir)
    key, removed = rotate(folder)
    record_alone(get_engine(settings.effective_database_url), cli_actor(),
                 "keys.rotate_signing", "signing-keys", kid=key.kid,
                 removed=[k.kid for k in removed])
    print(f"New signing key {key.kid} in {folder}: it signs job identity tokens from now "
          f"on; the web service takes it up without a restart. Older keys stay in the JWKS "
          f"for {RETAIN_SECONDS // 60} minutes, until their tokens have expired"
          + (f"; removed {len(removed)} expired key(s)." if removed else "."))
    return 0


def cli_actor():
    """Who runs a command on the server, for the audit: the OS user, and this host."""
    import getpass
    import socket

    from smacommon.services.audit import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a uid with no name (containers)
        user = str(os.getuid())
    return Actor(f"cli:{user}", "cli", socket.gethostname())


def worker(args: argparse.Namespace) -> int:
    from smacommon.queue import require_broker
    from smacommon.workergroups import validate_worker_group

    settings = load_settings()
    group = validate_worker_group(args.group or settings.worker_group)
    check_job_user(settings)
    require_broker(settings)  # here, as one line, rather than as Celery's traceback
    # the worker consumes its group's queue (smaworker.celery_app), named from SMA_WORKER_GROUP
    env = dict(os.environ, SMA_WORKER_GROUP=group)
    argv = [sys.executable, "-m", "celery", "-A", "smaworker", "worker", "--without-gossip",
            "--without-mingle", "-l", "INFO"]
    if args.concurrency:
        argv += ["-c", str(args.concurrency)]
    os.execve(sys.executable, argv, env)
    return 0  # pragma: no cover - execve does not return


def check_job_user(settings: Settings) -> None:
    """Who jobs will run as; a missing SMA_JOB_USER is a ConfigurationError, before any
    process starts."""
    from smaworker.sandbox import build_sandbox

    build_sandbox(settings)


def safe_url(url: str) -> str:
    """`url` without its credentials (in the user part or a password= query parameter)."""
    url = re.sub(r"([?&]password=)[^&]*", r"\1***", url)
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def up(args: argparse.Namespace) -> int:
    from smacli.stack import Stack
    from smacli.up_checks import check_port_free, cli_hint, listen_address

    host, port = listen_address(args)
    stack = Stack(args.data_dir, host, port, args.workers,
                  tls_cert=args.tls_cert, tls_key=args.tls_key)
    check_port_free(host, port)  # one line naming --port, before anything starts
    stopping = False

    def _stop(_signum, _frame):
        nonlocal stopping
        if stopping:
            stack.hurry()
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        stack.start()
        url = stack.api_url
        print(f"\nsma is up: {url}  (API {url}/api/v1, docs {url}/api/docs)")
        print(f"Data folder: {stack.data_dir}")
        print(f"Broker: {stack.broker}" + (
            f"  (password in {stack.redis.folder / 'password'})" if stack.redis else ""))
        if stack.new_token:
            print(f"Admin token (shown once, keep it): {stack.new_token}")
        if hint := cli_hint(url):
            print(hint)
        signal.signal(signal.SIGINT, _stop)  # before it says so: a Ctrl-C at once stops cleanly
        print("Press Ctrl-C to stop.\n", flush=True)
        while not stopping:
            stack.check()
            stack.keep_broker()
            time.sleep(0.5)
        print(f"\nsma: stopping… running jobs have {stack.shutdown_grace:g} s to end, then are "
              "suspended (Ctrl-C again ends everything now)", flush=True)
        return 0
    finally:
        stack.stop()
