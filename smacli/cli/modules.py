"""`sma module upload|list|show|download|delete`: Python wheels and sdists, PowerShell
modules (zipped) and Bash libraries that runbooks use."""

from __future__ import annotations

import argparse
from pathlib import Path

from smacli.cli.common import (
    Output,
    UsageError,
    act,
    add_common_to,
    client,
    command,
    refused,
)
from smacli.client import SmaApiError

TYPES = ("python", "powershell", "bash")
COLUMNS = [("NAME", "name"), ("VERSION", "version"), ("TYPE", "module_type"),
           ("SIZE", "size"), ("SHA256", lambda m: (m.sha256 or "")[:12]),
           ("UPLOADED BY", "uploaded_by"), ("UPLOADED", "uploaded_at")]


def register(sub: argparse._SubParsersAction) -> None:
    mod = sub.add_parser("module", help="uploaded modules: Python packages, PowerShell "
                                        "modules, Bash libraries")
    msub = mod.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = command(msub, "upload", "upload a wheel, an sdist, a PowerShell module zip (with its "
                ".psd1) or a Bash library; name and version are read from the file",
                module_upload)
    p.add_argument("file", type=Path)
    p.add_argument("--type", dest="module_type", choices=TYPES,
                   help="what the file is (default: told by its name; a .zip by its content)")
    p.add_argument("--version", help="a Bash library's version (when it has no "
                                     "`# version: X` line)")
    p = command(msub, "list", "list uploaded modules, newest first", module_list)
    p.add_argument("--name", help="names containing this")
    p.add_argument("--type", dest="module_type", choices=TYPES)
    command(msub, "show", "one version of a module", _listing_hint(lambda a, o: o.item(
        client(a).get_module(a.name, a.version))), "name", "version")
    p = command(msub, "download", "save a module's file, checked against its SHA-256",
                _listing_hint(module_download), "name", "version")
    p.add_argument("-O", "--to", type=Path, default=Path("."),
                   help="a file or folder to write (default: here, under its own name)")
    command(msub, "delete", "delete one version of a module (refused while a published "
            "runbook version pins it)",
            _listing_hint(act(lambda sma, a: sma.delete_module(a.name, a.version),
                              "Deleted module {name} {version}.")), "name", "version")
    add_common_to(msub)


def _listing_hint(func):
    """A module version that is not there: say which command lists the ones that are."""
    def run(args, out: Output):
        try:
            return func(args, out)
        except SmaApiError as exc:
            if exc.status != 404:
                raise
            raise refused(404, f"{exc.message} `sma module list --name {args.name}` lists "
                               "its uploaded versions.") from None
    return run


def module_upload(args, out: Output):
    if not args.file.is_file():
        raise UsageError(f"{args.file}: no such file")
    module, created = client(args).upload_module(args.file, module_type=args.module_type,
                                                 version=args.version)
    what = f"{module.module_type} module {module.name} {module.version}"
    out.result(module, f"Uploaded {what} (sha256 {module.sha256})." if created
               else f"{what} was uploaded already with this very content.")


def module_list(args, out: Output):
    out.table(client(args).modules(args.name, args.module_type), COLUMNS,
              empty="No modules.")


def module_download(args, out: Output):
    try:
        path = client(args).download_module(args.name, args.version, args.to)
    except OSError as exc:
        raise UsageError(f"{args.to}: {exc.strerror or exc}") from None
    out.result({"path": str(path)}, f"Saved {path}.")
