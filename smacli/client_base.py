"""What every part of the client shares: the error it raises, the typed result's base, and
how a name goes into a URL path."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T", bound="Resource")


class SmaApiError(Exception):
    """The API refused a call (status >= 400), or could not be reached (status 0)."""

    def __init__(self, status: int, message: str, errors: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or {}


@dataclass
class Resource:
    """Fields of an API object; `raw` keeps the whole JSON (item access reads it)."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in fields(cls)} - {"raw"}
        return cls(raw=data, **{k: data.get(k) for k in names})

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


def quote(name: str) -> str:
    """A name as one segment of a URL path."""
    return urllib.parse.quote(str(name), safe="")
