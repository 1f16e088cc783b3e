"""Running a job again: a new job of the same runbook with the same parameters and arguments.

A job's secret parameters are stored as *** beside a token sealed under the job's own keys
(smacommon.sealing). The web service holds the configured keys those derive from, so it opens
the old job's token here and the new job seals the values again under its own keys: a re-run
never needs the plaintext in a browser, and nobody sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from smacommon.crypto import Crypto
from smacommon.models import Job, Runbook
from smacommon.sealing import SHOWN, unseal
from smacommon.services.jobs import start_job
from smacommon.services.webhooks import WEBHOOK_PARAMETER

if TYPE_CHECKING:
    from smacommon.services.requirements import ResolvedDraft


def shown_parameters(job: Job) -> dict[str, Any]:
    """The job's parameters a form may show again: every value but the secret ones (***)
    and a webhook's request (WEBHOOKDATA), which only its webhook gives."""
    return {k: v for k, v in (job.parameters or {}).items()
            if v != SHOWN and k.upper() != WEBHOOK_PARAMETER}


def rerun_job(session: Session, job: Job, crypto: Crypto, *, started_by: str,
              heartbeat_seconds: float = 15.0, draft: ResolvedDraft | None = None) -> Job:
    """Start `job`'s runbook again with its parameters, sealed values and arguments, on the
    job's worker group: the published version, or (for a test job) the current draft as a
    new test, `draft` resolved for it. The new job is checked as any start is."""
    runbook = session.get(Runbook, job.runbook_id)
    secret: dict[str, Any] = {}
    if job.sealed_parameters:
        secret = unseal(crypto.for_job(job.id), job.sealed_parameters)
    values = {**(job.parameters or {}), **secret}
    extra: dict[str, Any] = {}
    if (job.started_by or "").startswith("webhook:"):
        # the webhook's request came as an extra parameter: it goes back the same way
        extra = {k: values.pop(k) for k in list(values) if k.upper() == WEBHOOK_PARAMETER}
    return start_job(session, runbook, values, worker_group=job.worker_group,
                     arguments=job.arguments, started_by=started_by,
                     heartbeat_seconds=heartbeat_seconds, test=job.is_test, draft=draft,
                     extra_parameters=extra, sealed_names=frozenset(secret))
