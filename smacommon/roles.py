"""Roles, from least to most, in one place: what a token, a directory person or a role
binding may be given.

`none` is a global role only: a token (or a directory group mapped to it) whose access comes
entirely from role bindings (smacommon/services/role_bindings.py), so it sees just the
runbooks its bindings cover. Bindings give one of ROLES.
"""

from __future__ import annotations

ROLES = ("reader", "operator", "author", "admin")
GLOBAL_ROLES = ("none", *ROLES)
RANK = {role: i for i, role in enumerate(GLOBAL_ROLES)}


def rank(role: str | None) -> int:
    """How much `role` may do (-1 for a role sma does not know: nothing)."""
    return RANK.get(role or "", -1)
