"""`sma login`, `sma logout`, `sma worker list`, `sma token ...`, `sma audit`,
`sma completion`."""

from __future__ import annotations

import argparse
import os
import sys

from smacli.cli.common import (
    Output,
    UsageError,
    act,
    add_common,
    client,
    command,
    config_path,
    endpoint,
    load_config,
    read_secret,
    save_config,
)
from smacli.client import SmaClient


def register_login(sub: argparse._SubParsersAction) -> None:
    p = command(sub, "login", "save the service URL and a token (asked for, or read from "
                              "standard input) in a file only you can read; with --user, "
                              "sign in with your directory (LDAP) password instead", login,
                output="table")
    p.add_argument("url", help="the sma service, e.g. http://127.0.0.1:8080")
    p.add_argument("--user", help="your directory (LDAP / Active Directory) user name: the "
                                  "password is asked for, or read from standard input")
    p.add_argument("--ca-file", help="CA bundle to trust for an HTTPS service")
    p.add_argument("--no-color", action="store_true")
    p = command(sub, "logout", "forget the saved login", logout, output="table")
    p.add_argument("--no-color", action="store_true")
    p = command(sub, "completion", "print a shell completion script: "
                                   "eval \"$(sma completion bash)\"", completion,
                output="table")
    p.add_argument("shell", choices=("bash", "zsh"))


def register_api(worker_sub: argparse._SubParsersAction,
                 token_sub: argparse._SubParsersAction,
                 sub: argparse._SubParsersAction) -> None:
    """`worker list` and the API side of `token` join the server-side groups of main.py."""
    p = command(worker_sub, "list", "registered workers: group, engines, heartbeat",
                worker_list)
    p.add_argument("--state", choices=("online", "lost"))
    add_common(p)

    p = command(token_sub, "list", "API tokens (never their secrets)", lambda a, o: o.table(
        client(a).tokens(), [("ID", "id"), ("NAME", "name"), ("ROLE", "role"),
                             ("EXPIRES", "expires_at"), ("LAST USED", "last_used_at"),
                             ("REVOKED", "revoked")], empty="No tokens."))
    add_common(p)
    p = command(token_sub, "revoke", "revoke a token by id (--mine: one of your own)",
                act(lambda sma, a: (sma.revoke_my_token if a.mine else sma.revoke_token)(a.id),
                    "Revoked token {id}."), "id")
    p.add_argument("--mine", action="store_true", help="one you made for yourself")
    add_common(p)
    p = command(token_sub, "mine", "the tokens you made for yourself", lambda a, o: o.table(
        client(a).my_tokens(), [("ID", "id"), ("NAME", "name"), ("ROLE", "role"),
                                ("EXPIRES", "expires_at"), ("LAST USED", "last_used_at"),
                                ("REVOKED", "revoked")], empty="No tokens of yours."))
    add_common(p)
    p = command(token_sub, "new", "make a token for yourself (at most your own role) and "
                                  "print its secret once", token_new, "name")
    p.add_argument("--role", choices=("none", "reader", "operator", "author", "admin"),
                   help="default: your own")
    p.add_argument("--expires-in-days", type=int, default=None)
    add_common(p)

    p = command(sub, "audit", "who changed what (admin)", audit)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--actor", help="only this actor (token:<name>, job:<id>, ...)")
    p.add_argument("--door", choices=("api", "portal", "cli", "job", "webhook"),
                   help="only changes that came in this way")
    add_common(p)


def login(args, out: Output):
    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{args.url!r} is not a URL: use http://host:port or https://...")
    who = ""
    if args.user:
        # the service checks the password with the directory and answers a bearer secret of
        # a session whose role it reads from the directory again at least every 15 minutes
        password = read_secret(f"Password for {args.user}: ")
        anonymous = SmaClient(url, "", verify=args.ca_file or True, retries=0)
        answer = anonymous._json("POST", "/sessions", {"username": args.user,
                                                       "password": password})
        token, who = answer["token"], f" as {answer['principal']} ({answer['role']})"
    else:
        token = os.environ.get("SMA_TOKEN") or read_secret("Token: ")
        sma = SmaClient(url, token, verify=args.ca_file or True, retries=0)
        sma._json("GET", "/runbooks", limit=1)  # a wrong URL or token fails here, not later
    path = save_config({"url": url, "token": token,
                        **({"ca_file": os.path.abspath(args.ca_file)} if args.ca_file else {})})
    out.done(f"Logged in to {url}{who}; saved in {path} (readable only by you).")


def logout(args, out: Output):
    path = config_path()
    if path.exists():
        path.unlink()
        out.done(f"Forgot the login in {path}.")
    else:
        out.done("Not logged in.")


def worker_list(args, out: Output):
    out.table(client(args).workers(state=args.state),
              [("NAME", "name"), ("GROUP", "worker_group"), ("STATE", "state"),
               ("ENGINES", "engines"), ("CONCURRENCY", "concurrency"),
               ("RUNNING", lambda w: len(w.running_jobs or [])),
               ("HEARTBEAT", "heartbeat_at")], empty="No workers.")


def audit(args, out: Output):
    items = []
    for event in client(args).audit(actor=args.actor, door=args.door):
        items.append(event)
        if len(items) >= args.limit:
            break
    out.table(items, [("TIME", "time"), ("WHO", "actor"), ("DOOR", "door"),
                      ("WHAT", "action"), ("TARGET", "target"), ("FROM", "client_address")],
              empty="No events.")


def api_configured(args: argparse.Namespace) -> bool:
    """Whether management commands have somewhere to go (for `sma token create`)."""
    url, _, _ = endpoint(args)
    return bool(url) or bool(load_config())


def token_new(args, out: Output):
    _show_new_token(out, client(args).create_my_token(args.name, args.role,
                                                      args.expires_in_days), "Your token")


def token_create_api(args, out: Output):
    _show_new_token(out, client(args).create_token(args.name, args.role, args.expires_in_days),
                    "Token")


def _show_new_token(out: Output, token, what: str) -> None:
    """A token just made: its secret, shown this once."""
    if out.json:
        out.data(token)
        return
    out.console.print(token.token)
    out.done(f"{what} {token.name!r} ({token.role}) created; this is the only time its "
             "secret is shown.")


def completion(args, out: Output):
    from smacli.main import build_parser

    parser = build_parser()
    words: dict[str, list[str]] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        options = [s for a in p._actions for s in a.option_strings if s.startswith("--")]
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        children = list(subs[0].choices) if subs else []
        words[path] = children + options
        for name, child in (subs[0].choices.items() if subs else []):
            walk(child, f"{path} {name}".strip())

    walk(parser, "")
    cases = "\n".join(f'    "{path}") words="{" ".join(w)}" ;;' for path, w in words.items())
    script = f"""_sma_complete() {{
  local path="" i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    [[ "$w" == -* ]] && continue
    case "$path" in
{_known_paths(words)}
    esac
  done
  local words=""
  case "$path" in
{cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "${{COMP_WORDS[COMP_CWORD]}}"))
}}
complete -o default -F _sma_complete sma
"""
    if args.shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    sys.stdout.write(script)


def _known_paths(words: dict[str, list[str]]) -> str:
    """Case arms that extend the command path only with words that are subcommands."""
    arms = []
    for path, children in words.items():
        subs = [c for c in children if not c.startswith("-")]
        if subs:
            arms.append(f'      "{path}") case "$w" in {"|".join(subs)}) '
                        f'path="${{path:+$path }}$w" ;; esac ;;')
    return "\n".join(arms)
