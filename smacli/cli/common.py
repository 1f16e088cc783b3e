"""What every management command shares: the saved login, the client, output, exit codes.

Management commands speak HTTP only (smacli.client); they never import the server packages.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from smacli.client import Job, Resource, SmaApiError, SmaClient

# exit codes of commands that wait for a job
EXIT_BY_STATUS = {"Completed": 0, "Failed": 1, "Stopped": 2, "Suspended": 2}


class UsageError(Exception):
    """A bad argument: one line saying what to fix, exit code 2."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "sma" / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}; run `sma login` again") from None


def save_config(data: dict[str, Any]) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(path, 0o600)  # also when it existed with looser rights
    return path


def endpoint(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """URL, token and CA file: --url, then SMA_URL/SMA_TOKEN, then the saved login."""
    saved = load_config()
    url = getattr(args, "url", None) or os.environ.get("SMA_URL") or saved.get("url", "")
    token = os.environ.get("SMA_TOKEN") or saved.get("token", "")
    ca_file = os.environ.get("SMA_CA_FILE") or saved.get("ca_file")
    return url, token, ca_file


def client(args: argparse.Namespace) -> SmaClient:
    url, token, ca_file = endpoint(args)
    if not url:
        raise UsageError("not logged in: run `sma login URL` (or set SMA_URL and SMA_TOKEN)")
    if not token:
        raise UsageError("no token: run `sma login URL` (or set SMA_TOKEN)")
    return SmaClient(url, token, verify=ca_file or True)


def read_secret(prompt: str) -> str:
    """A secret from the terminal (not echoed) or from standard input; never an argument."""
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError(f"empty {prompt.strip(': ').lower()}: type it at the prompt or "
                         "pipe it on standard input")
    return value


def parse_pairs(pairs: Iterable[str] | None, what: str = "--param") -> dict[str, Any]:
    """name=value pairs; a value that is JSON (42, true, [1], {"a": 1}) is taken as JSON."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{what} takes name=value, not {pair!r}")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


# --- output ------------------------------------------------------------------------------

class Output:
    """Tables (rich) for people, --output json for scripts; colours only on a terminal."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = getattr(args, "output", "table") == "json"
        no_color = getattr(args, "no_color", False) or "NO_COLOR" in os.environ
        self._out = self._err = None
        self._no_color = no_color

    @property
    def console(self):
        if self._out is None:
            from rich.console import Console

            # piped: no wrapping to 80 columns, a script reads whole lines
            self._out = Console(no_color=self._no_color, highlight=False, soft_wrap=True,
                                width=None if sys.stdout.isatty() else 400)
        return self._out

    @property
    def err(self):
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, no_color=self._no_color, highlight=False,
                                soft_wrap=True, width=None if sys.stderr.isatty() else 400)
        return self._err

    def data(self, value: Any) -> None:
        print(json.dumps(_plain(value), indent=2, default=str))

    def table(self, items: Iterable[Resource], columns: list[tuple[str, Callable | str]],
              empty: str = "Nothing here.") -> None:
        items = list(items)
        if self.json:
            self.data(items)
            return
        if not items:
            self.err.print(empty)
            return
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for title, _ in columns:
            table.add_column(title)
        for item in items:
            table.add_row(*[_cell(_get(item, getter)) for _, getter in columns])
        self.console.print(table)

    def item(self, item: Resource | dict, fields: list[tuple[str, Callable | str]] | None
             = None) -> None:
        if self.json:
            self.data(item)
            return
        raw = item.raw if isinstance(item, Resource) else item
        rows = fields or [(k, k) for k in raw]
        width = max(len(title) for title, _ in rows)
        for title, getter in rows:
            value = _get(item, getter)
            if isinstance(value, dict | list):
                value = json.dumps(value)
            self.console.print(f"[bold]{title.ljust(width)}[/bold]  {_cell(value)}")

    def done(self, message: str) -> None:
        """A confirmation for people (nothing in JSON mode, which prints the object)."""
        if not self.json:
            self.err.print(message)

    def result(self, value: Any, message: str) -> None:
        """What a command made or changed: the object for scripts, a line for people."""
        if self.json:
            self.data(value)
        else:
            self.done(message)

    def waiting(self, message: str):
        """A spinner on standard error while waiting, when it is a terminal."""
        import contextlib

        if self.json or not sys.stderr.isatty():
            return contextlib.nullcontext()
        return self.err.status(message)


def _get(item: Any, getter: Callable | str) -> Any:
    if callable(getter):
        return getter(item)
    raw = item.raw if isinstance(item, Resource) else item
    return raw.get(getter)


def _cell(value: Any) -> str:
    from rich.markup import escape

    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return escape(json.dumps(value))
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value)) or "-"
    text = str(value)
    if len(text) >= 19 and text[4:5] == "-" and text[10:11] == "T":  # ISO time: shorter
        text = text[:19].replace("T", " ")
    return escape(text)


def _plain(value: Any) -> Any:
    if isinstance(value, Resource):
        return value.raw
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def act(call: Callable[[SmaClient, argparse.Namespace], object], message: str):
    """A command that makes one call and confirms it: `message` is formatted with the
    arguments (`{name!r}`); nothing is printed on stdout, so scripts see only the exit code."""
    def run(args: argparse.Namespace, out: Output) -> None:
        call(client(args), args)
        out.done(message.format(**vars(args)))
    return run


def create_or_change(create: Callable[[], Any], change: Callable[[], Any]) -> tuple[Any, str]:
    """`create()`, or `change()` when the name is taken (409): the object and the verb."""
    try:
        return create(), "Created"
    except SmaApiError as exc:
        if exc.status != 409:
            raise
    return change(), "Changed"


def command(sub: argparse._SubParsersAction, action: str, help: str, func: Callable | None,
            *positional: str, usage: str | None = None, epilog: str | None = None,
            **defaults: Any) -> argparse.ArgumentParser:
    """A subcommand taking `positional` arguments, run by `func(args, out)`; every
    command group registers its commands through this (docs/architecture.md). A
    server-side command has no func and a `server` default naming its smacli.server
    function."""
    p = sub.add_parser(action, help=help, usage=usage, epilog=epilog)
    for name in positional:
        p.add_argument(name)
    p.set_defaults(func=func, **defaults)
    return p


def add_common_to(*subs: argparse._SubParsersAction) -> None:
    """The common options on every subcommand of these groups."""
    for sub in subs:
        for parser in sub.choices.values():
            add_common(parser)


def refused(status: int, message: str) -> SmaApiError:
    """An API refusal retold in the command line's words (what to type to fix it)."""
    return SmaApiError(status, message)


def job_exit_code(job: Job) -> int:
    return EXIT_BY_STATUS.get(job.status or "", 1)


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every management command takes."""
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table",
                        help="table for people (default), json for scripts")
    parser.add_argument("--url", help="sma service URL (default: SMA_URL or `sma login`)")
    parser.add_argument("--no-color", action="store_true", help="no colours")


def run_command(func: Callable[[argparse.Namespace, Output], int | None],
                args: argparse.Namespace) -> int:
    """Run a command: API errors and bad arguments become one line and an exit code."""
    out = Output(args)
    try:
        return func(args, out) or 0
    except UsageError as exc:
        print(f"sma: {exc}", file=sys.stderr)
        return 2
    except SmaApiError as exc:
        hint = ""
        if exc.status == 401:
            hint = " Log in again with `sma login URL`."
        elif exc.status == 403:
            hint = " Ask an admin for a token with that role."
        print(f"sma: {exc.message}{hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
