"""The client's calls on role bindings (/api/v1/role-bindings, admin), mixed into SmaClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from smacli.client_base import Resource, quote


@dataclass
class RoleBinding(Resource):
    id: str | None = None
    principal: str | None = None  # token:<name>, user:<name> (ldap), group:<group DN>
    role: str | None = None
    scope_type: str | None = None  # everything, tag, runbook
    scope_value: str | None = None  # the tag, or the runbook's id
    runbook_name: str | None = None
    created_at: str | None = None
    created_by: str | None = None


class RoleBindingsApi:
    """List, create, get and delete role bindings (SmaClient's transport carries them)."""

    _json: Callable[..., Any]
    _pages: Callable[..., Iterator[Any]]

    def role_bindings(self, principal: str | None = None) -> Iterator[RoleBinding]:
        """Role bindings, newest first (`principal`: only theirs)."""
        return self._pages("/role-bindings", RoleBinding, principal=principal)

    def get_role_binding(self, binding_id: str) -> RoleBinding:
        return RoleBinding.from_api(self._json("GET", f"/role-bindings/{quote(binding_id)}"))

    def create_role_binding(self, principal: str, role: str, scope_type: str = "everything",
                            scope_value: str | None = None) -> RoleBinding:
        """Give `principal` `role` over everything, the runbooks tagged `scope_value`
        (scope_type tag) or one runbook (scope_type runbook, its name or id)."""
        return RoleBinding.from_api(self._json("POST", "/role-bindings", {
            "principal": principal, "role": role, "scope_type": scope_type,
            "scope_value": scope_value}))

    def delete_role_binding(self, binding_id: str) -> None:
        self._json("DELETE", f"/role-bindings/{quote(binding_id)}")
