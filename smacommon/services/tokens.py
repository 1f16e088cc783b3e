"""API tokens: generation, hashing, lookup and the bootstrap admin token."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.models import ApiToken, Job
from smacommon.names import LABEL, check_name
from smacommon.services.audit import record
from smacommon.states import ACTIVE_STATUSES

TOKEN_PREFIX = "sma_"
JOB_TOKEN_PREFIX = "smajob_"
JOB_ROLE = "job"


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def find_token(session: Session, secret: str) -> ApiToken | None:
    """The live token whose secret this is (lookup by hash: no secret is stored)."""
    return find_token_by_hash(session, hash_token(secret))


def find_token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    """The live (not revoked, not expired) token with this hash."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    return token if token is not None and is_live(token) else None


def is_live(token: ApiToken) -> bool:
    """Neither revoked nor expired."""
    return not token.revoked and (token.expires_at is None or token.expires_at > utcnow())


def create_token(session: Session, name: str, role: str,
                 expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """A new API token and its secret (the caller shows it once; only its hash is kept)."""
    from datetime import timedelta

    check_name(name, LABEL, "token name")
    secret = new_secret()
    token = ApiToken(name=name, role=role, token_hash=hash_token(secret),
                     expires_at=(utcnow() + timedelta(days=expires_in_days))
                     if expires_in_days else None)
    session.add(token)
    session.flush()
    record(session, "token.create", f"/api/v1/tokens/{token.id}", name=name, role=role)
    return token, secret


def revoke_token(session: Session, token_id) -> ApiToken:
    import uuid

    from smacommon.errors import NotFound

    try:
        token = session.get(ApiToken, uuid.UUID(str(token_id)))
    except ValueError:
        token = None
    if token is None:
        raise NotFound(f"Token {token_id} not found.")
    token.revoked = True
    from smacommon.services.portal_sessions import end_sessions_of_token

    end_sessions_of_token(session, token.token_hash)  # its portal sign-ins end with it
    record(session, "token.revoke", f"/api/v1/tokens/{token.id}", name=token.name)
    return token


def new_job_secret() -> str:
    return JOB_TOKEN_PREFIX + secrets.token_urlsafe(32)


def find_running_job(session: Session, secret: str):
    """The id of the active job whose token this is (a job's token dies with the job)."""
    return session.scalar(select(Job.id).where(
        Job.token_hash == hash_token(secret),
        Job.status.in_([s.value for s in ACTIVE_STATUSES])))


def ensure_admin_token(session: Session, configured: str = "") -> str | None:
    """Make sure an admin can sign in; return a newly generated secret to print once.

    A configured SMA_ADMIN_TOKEN is accepted as it is (the web service compares it in
    constant time). Otherwise, on a database with no token at all, one is generated.
    The caller commits.
    """
    if configured:
        return None
    if session.scalar(select(func.count()).select_from(ApiToken)):
        return None
    secret = new_secret()
    token = ApiToken(name="admin", role="admin", token_hash=hash_token(secret))
    session.add(token)
    session.flush()
    record(session, "token.create", f"/api/v1/tokens/{token.id}", name="admin", role="admin")
    return secret
