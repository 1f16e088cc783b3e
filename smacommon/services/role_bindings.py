"""Role bindings: create, list, delete, and the scope they give a caller for a request."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.directory import normal_dn
from smacommon.errors import NotFound, ValidationFailed
from smacommon.models import RoleBinding, Runbook
from smacommon.roles import RANK, ROLES
from smacommon.services import by_id_or_name
from smacommon.services.access import Scope
from smacommon.services.audit import record

SCOPE_TYPES = ("everything", "tag", "runbook")
PRINCIPAL_KINDS = ("token", "user", "group")
EVERYTHING = Scope(frozenset({"*"}))  # a marker: the caller's role holds over every runbook


class RoleBindingNotFound(NotFound):
    message = "Role binding not found."


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, {field: [message]})


def check_principal(principal: str) -> str:
    principal = (principal or "").strip()
    kind, _, name = principal.partition(":")
    if kind not in PRINCIPAL_KINDS or not name.strip():
        raise _invalid("principal", "principal must be token:<token name>, user:<name> (a "
                       "person: user:<name> (ldap), user:<email> (oidc)) or group:<group "
                       "DN, or an OpenID provider's group name>.")
    if len(principal) > 512:
        raise _invalid("principal", "principal has at most 512 characters.")
    if kind == "group":  # as a person's groups are kept: case and spaces do not matter
        return f"group:{normal_dn(name)}"
    return principal


def _scope_value(session: Session, scope_type: str, value: str | None) -> str:
    value = (value or "").strip()
    if scope_type == "everything":
        if value:
            raise _invalid("scope_value", "A binding over everything takes no scope_value.")
        return ""
    if not value:
        raise _invalid("scope_value", f"A {scope_type} binding needs scope_value: the "
                       f"{'tag' if scope_type == 'tag' else 'runbook name or id'}.")
    if scope_type == "tag":
        if len(value) > 64:
            raise _invalid("scope_value", "A tag has at most 64 characters.")
        return value
    runbook = by_id_or_name(session, Runbook, value)
    if runbook is None:
        raise _invalid("scope_value", f"Runbook {value!r} not found: a runbook binding names "
                       "an existing runbook (by name or id).")
    return str(runbook.id)


def create_binding(session: Session, *, principal: str, role: str, scope_type: str,
                   scope_value: str | None = None, created_by: str = "") -> RoleBinding:
    """A new binding, checked: a known role and scope type, an existing runbook."""
    if role not in ROLES:
        raise _invalid("role", f"Unknown role {role!r}: a binding gives one of "
                       f"{', '.join(ROLES)}.")
    if scope_type not in SCOPE_TYPES:
        raise _invalid("scope_type", f"Unknown scope type {scope_type!r}: one of "
                       f"{', '.join(SCOPE_TYPES)}.")
    binding = RoleBinding(principal=check_principal(principal), role=role,
                          scope_type=scope_type,
                          scope_value=_scope_value(session, scope_type, scope_value),
                          created_by=created_by)
    session.add(binding)
    session.flush()
    record(session, "role_binding.create", f"/api/v1/role-bindings/{binding.id}",
           principal=binding.principal, role=role, scope_type=scope_type)
    return binding


def get_binding(session: Session, binding_id: str) -> RoleBinding:
    try:
        binding = session.get(RoleBinding, uuid.UUID(str(binding_id)))
    except ValueError:
        binding = None
    if binding is None:
        raise RoleBindingNotFound(f"Role binding {binding_id} not found.")
    return binding


def delete_binding(session: Session, binding: RoleBinding) -> None:
    record(session, "role_binding.delete", f"/api/v1/role-bindings/{binding.id}",
           principal=binding.principal, role=binding.role)
    session.delete(binding)


def runbook_names(session: Session, bindings: Iterable[RoleBinding]) -> None:
    """Set `runbook_name` on each runbook binding (None when that runbook is gone)."""
    bindings = list(bindings)
    ids = {uuid.UUID(b.scope_value) for b in bindings if b.scope_type == "runbook"}
    names = dict(session.execute(select(Runbook.id, Runbook.name)
                                 .where(Runbook.id.in_(ids))).all()) if ids else {}
    for b in bindings:
        b.runbook_name = names.get(uuid.UUID(b.scope_value)) \
            if b.scope_type == "runbook" else None


def grant(session: Session, principals: Iterable[str], needed: str) -> Scope | None:
    """The scope over which `principals`' bindings give at least `needed`: EVERYTHING, a
    Scope, or None when no binding gives that much anywhere."""
    rows = session.scalars(select(RoleBinding).where(
        RoleBinding.principal.in_(list(principals)))).all()
    enough = [b for b in rows if RANK.get(b.role, -1) >= RANK[needed]]
    if not enough:
        return None
    if any(b.scope_type == "everything" for b in enough):
        return EVERYTHING
    return Scope(tags=frozenset(b.scope_value for b in enough if b.scope_type == "tag"),
                 runbook_ids=frozenset(uuid.UUID(b.scope_value) for b in enough
                                       if b.scope_type == "runbook"))
