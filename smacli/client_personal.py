"""The client's calls on your own personal tokens (/api/v1/me/tokens), mixed into SmaClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from smacli.client_base import Resource, quote


class PersonalTokensApi:
    """Make, list and revoke tokens for yourself, with at most your own role (SmaClient's
    transport carries them; `token_type` is SmaClient's Token)."""

    _json: Callable[..., Any]
    _pages: Callable[..., Iterator[Any]]
    token_type: type[Resource]

    def my_tokens(self) -> Iterator[Any]:
        """The tokens you made for yourself."""
        return self._pages("/me/tokens", self.token_type)

    def create_my_token(self, name: str, role: str | None = None,
                        expires_in_days: int | None = None) -> Any:
        """A token for yourself (role: at most yours, the default); its secret is in the
        answer's `token`, and nowhere else."""
        return self.token_type.from_api(self._json("POST", "/me/tokens", {
            "name": name, "role": role, "expires_in_days": expires_in_days}))

    def revoke_my_token(self, token_id: str) -> None:
        self._json("DELETE", f"/me/tokens/{quote(token_id)}")
