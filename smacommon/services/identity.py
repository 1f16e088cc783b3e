"""Job identity tokens: a running job's proof of which runbook it is, for clouds to trust.

The claims follow GitHub Actions' OIDC tokens: a stable `sub` to write trust conditions on
(`runbook:<name>`), the standard iss, aud, iat, nbf, exp, jti, and sma's own claims, which
say which job, version, worker group and starter it is.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from smacommon.errors import JobNotFound
from smacommon.models import Job, Runbook, RunbookVersion
from smacommon.services.audit import record
from smacommon.signing import MAX_LIFETIME, KeyRing

CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "sma:job_id", "sma:runbook",
          "sma:runbook_version", "sma:worker_group", "sma:started_by", "sma:is_test")


def subject(runbook_name: str) -> str:
    """The `sub` of a runbook's jobs: what a cloud's trust condition names."""
    return f"runbook:{runbook_name}"


def issue_id_token(session: Session, ring: KeyRing, job_id: uuid.UUID | str, audience: str,
                   lifetime: int, issuer: str) -> tuple[str, datetime]:
    """A signed identity token for the job, and when it expires; the issuance is audited
    (the token never is)."""
    job = session.get(Job, uuid.UUID(str(job_id)))
    if job is None:
        raise JobNotFound(f"Job {job_id} not found.")
    runbook = session.get(Runbook, job.runbook_id)
    version = (session.get(RunbookVersion, job.runbook_version_id)
               if job.runbook_version_id is not None else None)
    now = int(datetime.now(UTC).timestamp())
    expires = now + min(lifetime, MAX_LIFETIME)
    jti = uuid.uuid4().hex
    claims = {
        "iss": issuer, "sub": subject(runbook.name), "aud": audience,
        "iat": now, "nbf": now, "exp": expires, "jti": jti,
        "sma:job_id": str(job.id), "sma:runbook": runbook.name,
        # a test job runs the draft, which has no number
        "sma:runbook_version": str(version.number) if version is not None else "draft",
        "sma:worker_group": job.worker_group, "sma:started_by": job.started_by,
        "sma:is_test": bool(job.is_test),
    }
    token = ring.sign(claims)
    record(session, "job.id_token", f"/api/v1/jobs/{job.id}", audience=audience,
           lifetime=expires - now, jti=jti)
    return token, datetime.fromtimestamp(expires, UTC)
