"""`sma variable|credential|connection|certificate ...` (Get-SmaVariable, Set-SmaVariable,
Set-SmaCredential, ...). Secrets come from a prompt or standard input, never an argument."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from smacli.cli.common import (
    Output,
    UsageError,
    act,
    add_common_to,
    client,
    command,
    create_or_change,
    parse_pairs,
    read_secret,
)
from smacli.client import SmaApiError

ASSET = [("NAME", "name"), ("DESCRIPTION", "description"), ("MODIFIED", "modified_at")]


def register(sub: argparse._SubParsersAction) -> None:
    var = sub.add_parser("variable", help="variables (Get-SmaVariable, Set-SmaVariable)")
    vsub = var.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(vsub, "list", "list variables", variable_list)
    command(vsub, "show", "a variable (an encrypted one's value never comes back)",
            variable_show, "name")
    p = command(vsub, "set", "create or change a variable; --encrypted reads the value "
                "from a prompt or standard input", variable_set, "name")
    p.add_argument("value", nargs="?", help="the value (JSON or text); not with --encrypted")
    p.add_argument("--encrypted", action="store_true", help="keep it encrypted, write-only")
    p.add_argument("--description")
    _limit_option(p)
    command(vsub, "delete", "delete a variable", _DELETE, "name", kind="variable")

    cred = sub.add_parser("credential", help="credentials (Set-SmaCredential)")
    csub = cred.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(csub, "list", "list credentials", credential_list)
    command(csub, "show", "a credential's user name (never its password)",
            _show("credential"), "name")
    p = command(csub, "set", "create or change a credential; the password is read from a "
                "prompt or standard input", credential_set, "name")
    p.add_argument("--username", "-u", required=True)
    p.add_argument("--description")
    _limit_option(p)
    command(csub, "delete", "delete a credential", _DELETE, "name", kind="credential")

    conn = sub.add_parser("connection", help="connections and connection types")
    nsub = conn.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(nsub, "list", "list connections", lambda a, o: o.table(
        client(a).connections(), [("NAME", "name"), ("TYPE", "connection_type"),
                                  ("MODIFIED", "modified_at")], empty="No connections."))
    command(nsub, "show", "a connection (encrypted fields left out)", _show("connection"),
            "name")
    command(nsub, "types", "list connection types", lambda a, o: o.table(
        client(a).connection_types(),
        [("NAME", "name"), ("FIELDS", lambda t: [
            f["name"] + (" (encrypted)" if f.get("is_encrypted") else "")
            for f in t.fields or []])], empty="No connection types."))
    p = command(nsub, "create-type", "create a connection type", connection_type_create,
                "name")
    p.add_argument("--field", action="append", required=True, metavar="NAME[:encrypted]"
                   "[:optional]", help="a field (repeatable)")
    p = command(nsub, "set", "create or change a connection; encrypted fields are asked for "
                "at a prompt (or read from standard input)", connection_set, "name")
    p.add_argument("--type", dest="connection_type", help="its connection type (to create)")
    p.add_argument("--value", action="append", metavar="FIELD=VALUE",
                   help="a plain field (repeatable)")
    p.add_argument("--secret", action="append", metavar="FIELD",
                   help="change this encrypted field of an existing connection (asked for)")
    command(nsub, "delete", "delete a connection", _DELETE, "name", kind="connection")

    cert = sub.add_parser("certificate", help="certificates")
    tsub = cert.add_subparsers(dest="action", metavar="ACTION", required=True)
    command(tsub, "list", "list certificates", lambda a, o: o.table(
        client(a).certificates(), [("NAME", "name"), ("THUMBPRINT", "thumbprint"),
                                   ("SUBJECT", "subject"), ("EXPIRES", "not_after")],
        empty="No certificates."))
    command(tsub, "show", "a certificate's thumbprint, subject and expiry",
            _show("certificate"), "name")
    p = command(tsub, "import", "upload a PFX (password asked for) or PEM file",
                certificate_import, "name")
    p.add_argument("file", type=Path)
    p.add_argument("--exportable", action="store_true",
                   help="record the key as exportable (Azure's flag: jobs get the key "
                        "either way, and no API or page hands it out)")
    p.add_argument("--no-password", action="store_true", help="the PFX has no password")
    command(tsub, "delete", "delete a certificate", _DELETE, "name", kind="certificate")

    add_common_to(vsub, csub, nsub, tsub)


def variable_list(args, out: Output):
    out.table(client(args).variables(),
              [("NAME", "name"), ("ENCRYPTED", "is_encrypted"),
               ("VALUE", lambda v: "***" if v.is_encrypted else json.dumps(v.value)),
               ("MODIFIED", "modified_at")], empty="No variables.")


def variable_show(args, out: Output):
    var = client(args).get_variable(args.name)
    if out.json:
        out.data(var)
    elif var.is_encrypted:
        out.item(var, [("name", "name"), ("encrypted", "is_encrypted"),
                       ("value", lambda v: "*** (write-only)"), ("modified", "modified_at")])
    else:
        out.item(var, [("name", "name"), ("encrypted", "is_encrypted"),
                       ("value", lambda v: json.dumps(v.value)), ("modified", "modified_at")])


def _limit_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runbook-tag", help="only jobs of runbooks with this tag may read it "
                                         "(others are told it does not exist)")


def variable_set(args, out: Output):
    if args.encrypted:
        if args.value is not None:
            raise UsageError("an encrypted value is never an argument (it would stay in your "
                             "shell history): leave it out and type it at the prompt, or "
                             "pipe it on standard input")
        value = _json_or_text(read_secret("Value: "))
    elif args.value is None:
        raise UsageError("give the VALUE (or --encrypted to type it at a prompt)")
    else:
        value = _json_or_text(args.value)
    sma = client(args)
    changes = {"value": value}
    if args.encrypted:
        changes["is_encrypted"] = True
    if args.description is not None:
        changes["description"] = args.description
    if args.runbook_tag is not None:
        changes["runbook_tag"] = args.runbook_tag
    var, verb = create_or_change(
        lambda: sma.create_variable(args.name, value, encrypted=args.encrypted,
                                    description=args.description or "",
                                    runbook_tag=args.runbook_tag),
        lambda: sma.update_variable(args.name, **changes))
    out.result(var, f"{verb} variable {args.name!r}"
               + (" (encrypted)." if var.is_encrypted else "."))


def credential_list(args, out: Output):
    out.table(client(args).credentials(), [("NAME", "name"), ("USER NAME", "username"),
                                           ("MODIFIED", "modified_at")],
              empty="No credentials.")


def credential_set(args, out: Output):
    password = read_secret("Password: ")
    sma = client(args)
    changes = {"username": args.username, "password": password}
    if args.description is not None:
        changes["description"] = args.description
    if args.runbook_tag is not None:
        changes["runbook_tag"] = args.runbook_tag
    cred, verb = create_or_change(
        lambda: sma.create_credential(args.name, args.username, password,
                                      args.description or "", args.runbook_tag),
        lambda: sma.update_credential(args.name, **changes))
    out.result(cred, f"{verb} credential {args.name!r}.")


def connection_type_create(args, out: Output):
    fields = []
    for spec in args.field:
        name, *flags = spec.split(":")
        unknown = set(flags) - {"encrypted", "optional"}
        if not name or unknown:
            raise UsageError(f"--field takes NAME[:encrypted][:optional], not {spec!r}")
        fields.append({"name": name, "is_encrypted": "encrypted" in flags,
                       "is_optional": "optional" in flags})
    ctype = client(args).create_connection_type(args.name, fields)
    out.result(ctype, f"Created connection type {args.name!r}.")


def connection_set(args, out: Output):
    sma = client(args)
    values = {k: v if isinstance(v, str) else json.dumps(v)
              for k, v in parse_pairs(args.value, "--value").items()}
    existing = None
    try:
        existing = sma.get_connection(args.name)
    except SmaApiError as exc:
        if exc.status != 404:
            raise
    type_name = existing.connection_type if existing else args.connection_type
    if not type_name:
        raise UsageError(f"connection {args.name!r} does not exist: give --type to create it")
    ctype = next((t for t in sma.connection_types() if t.name == type_name), None)
    if ctype is None:
        raise UsageError(f"no connection type {type_name!r}; `sma connection types` lists "
                         "them")
    encrypted = [f["name"] for f in ctype.fields or [] if f.get("is_encrypted")]
    given_secret = sorted(set(values) & set(encrypted))
    if given_secret:
        raise UsageError(f"{', '.join(given_secret)} is encrypted: never an argument; it is "
                         "asked for at a prompt (or read from standard input, a line each)")
    unknown = sorted(set(args.secret or []) - set(encrypted))
    if unknown:
        raise UsageError(f"--secret {', '.join(unknown)}: not an encrypted field of "
                         f"{type_name!r} (encrypted: {', '.join(encrypted) or 'none'})")
    # creating: every secret is asked for; changing: the ones named with --secret
    for name in encrypted if existing is None else args.secret or []:
        values[name] = read_secret(f"{name}: ")
    if existing is None:
        conn = sma.create_connection(args.name, type_name, values)
        verb = "Created"
    else:
        conn, verb = sma.update_connection(args.name, values), "Changed"
    out.result(conn, f"{verb} connection {args.name!r}.")


def certificate_import(args, out: Output):
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror or exc}") from None
    pem = b"-----BEGIN" in data
    password = None if pem or args.no_password else read_secret("PFX password: ")
    cert = client(args).create_certificate(args.name, data, password,
                                           exportable=args.exportable)
    out.result(cert, f"Imported certificate {args.name!r} ({cert.thumbprint}).")


_DELETE = act(lambda sma, a: getattr(sma, f"delete_{a.kind}")(a.name),
              "Deleted {kind} {name!r}.")


def _show(kind: str):
    return lambda a, o: o.item(getattr(client(a), f"get_{kind}")(a.name))


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text
