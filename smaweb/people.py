"""A signed-in person's session, whichever way they signed in: a directory (smaweb.ldapauth)
or an OpenID provider (smaweb.oidcauth). Both keep their sessions in directory_sessions;
its `source` says which one checks the person's role again."""

from __future__ import annotations

from smacommon.models import DirectorySession
from smacommon.services.directory_sessions import find_live_session
from smaweb import ldapauth, oidcauth
from smaweb.extensions import db


def _way(row: DirectorySession):
    return oidcauth if row.source == "oidc" else ldapauth


def find(secret: str, door: str) -> DirectorySession | None:
    """The live session of this secret, if the way it was opened is still switched on."""
    row = find_live_session(db.session, secret, door)
    return row if row is not None and _way(row).enabled() else None


def resume(row: DirectorySession, door: str) -> bool:
    """Who the session is, in g; False when the re-check of their role ended it."""
    return _way(row).resume(row, door)


def ended_message(row: DirectorySession) -> str:
    return _way(row).ended_message()
