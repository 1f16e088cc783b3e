"""`sma role-binding list|create|delete`: permissions per runbook (admin)."""

from __future__ import annotations

import argparse

from smacli.cli.common import Output, UsageError, act, add_common_to, client, command

ROLES = ("reader", "operator", "author", "admin")
COLUMNS = [("ID", "id"), ("PRINCIPAL", "principal"), ("ROLE", "role"),
           ("SCOPE", lambda b: _scope(b.raw))]


def _scope(raw: dict) -> str:
    if raw.get("scope_type") == "runbook":
        return f"runbook:{raw.get('runbook_name') or raw.get('scope_value')}"
    if raw.get("scope_type") == "tag":
        return f"tag:{raw.get('scope_value')}"
    return "everything"


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("role-binding", help="permissions per runbook: a role over "
                                                "everything, a tag's runbooks or one runbook")
    gsub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = command(gsub, "list", "role bindings (admin)", binding_list)
    p.add_argument("--principal", help="only this principal's (token:<name>, ...)")
    p = command(gsub, "create", "give PRINCIPAL (token:<name>, user:<name> (ldap) or "
                                "group:<group DN>) a role over a scope", binding_create,
                "principal")
    p.add_argument("--role", required=True, choices=ROLES)
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--tag", help="the runbooks with this tag")
    scope.add_argument("--runbook", help="one runbook (name or id)")
    scope.add_argument("--everything", action="store_true", help="every runbook")
    command(gsub, "delete", "delete a role binding by id",
            act(lambda sma, a: sma.delete_role_binding(a.id), "Deleted role binding {id}."),
            "id")
    add_common_to(gsub)


def binding_list(args: argparse.Namespace, out: Output) -> None:
    out.table(client(args).role_bindings(principal=args.principal), COLUMNS,
              empty="No role bindings.")


def binding_create(args: argparse.Namespace, out: Output) -> None:
    if not args.principal.strip():
        raise UsageError("PRINCIPAL is token:<name>, user:<name> (ldap) or group:<group DN>.")
    kind, value = (("tag", args.tag) if args.tag else ("runbook", args.runbook)
                   if args.runbook else ("everything", None))
    binding = client(args).create_role_binding(args.principal, args.role, kind, value)
    out.item(binding, [("id", "id"), ("principal", "principal"), ("role", "role"),
                       ("scope", lambda b: _scope(b.raw))])
