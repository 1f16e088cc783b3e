"""Runbook services: create, change, draft, publish, delete."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from smacommon.db import utcnow
from smacommon.errors import (
    Conflict,
    DraftNotFound,
    RunbookExists,
    RunbookNotFound,
    ValidationFailed,
    VersionNotFound,
)
from smacommon.limits import RUNBOOK_LIMITS
from smacommon.models import Runbook, RunbookVersion
from smacommon.names import RUNBOOK, check_name
from smacommon.parameters import normalize_declarations
from smacommon.scripts import RUNBOOK_TYPES, analyze
from smacommon.services import access, by_id_or_name
from smacommon.services.audit import record
from smacommon.services.fixed_parameters import seal_newly_secret
from smacommon.workergroups import validate_worker_group

if TYPE_CHECKING:
    from smacommon.services.requirements import ResolvedDraft

UPDATABLE = ("description", "tags", "log_verbose", "log_progress", "log_debug",
             "timeout_seconds", "worker_group", "max_concurrent_jobs", *RUNBOOK_LIMITS)


def get_runbook(session: Session, ref: str) -> Runbook:
    """A runbook by id or by name; RunbookNotFound otherwise."""
    runbook = by_id_or_name(session, Runbook, ref)
    if runbook is None or not access.covers(session, runbook):  # outside a binding's scope
        raise RunbookNotFound(f"Runbook {ref!r} not found.")
    return runbook


def check_content(content: Any, limit: int) -> str:
    if not isinstance(content, str) or not content.strip():
        raise ValidationFailed("content must be the runbook's script and cannot be empty.",
                               {"content": ["Cannot be empty."]})
    if "\x00" in content:
        raise ValidationFailed("content cannot contain NUL characters.",
                               {"content": ["Contains a NUL character."]})
    if len(content.encode("utf-8", "surrogatepass")) > limit:
        raise ValidationFailed(f"content is larger than the limit of {limit} bytes.",
                               {"content": [f"Larger than {limit} bytes."]})
    return content


def _check_fields(fields: dict[str, Any]) -> None:
    for name, limit in RUNBOOK_LIMITS.items():
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not limit.low <= value <= limit.high):
            raise ValidationFailed(
                f"{name} must be a whole number from {limit.low} to {limit.high} "
                f"({limit.unit}), or null for the worker's {limit.setting}.",
                {name: [f"Must be between {limit.low} and {limit.high}."]})
    if fields.get("worker_group") is not None:
        validate_worker_group(fields["worker_group"])


def create_runbook(session: Session, *, name: str, runbook_type: str, content: str,
                   content_limit: int, description: str = "", tags: list[str] | None = None,
                   parameters: list[dict] | None = None, **fields: Any) -> Runbook:
    """Create a runbook whose content becomes its draft."""
    check_name(name, RUNBOOK, "runbook name")
    if runbook_type not in RUNBOOK_TYPES:
        raise ValidationFailed(
            f"Unknown runbook type {runbook_type!r}; use one of {', '.join(RUNBOOK_TYPES)}.",
            {"runbook_type": [f"Must be one of {', '.join(RUNBOOK_TYPES)}."]})
    check_content(content, content_limit)
    _check_fields(fields)
    if session.scalar(select(func.count()).where(Runbook.name == name)):
        raise RunbookExists(f"A runbook named {name!r} already exists.")
    runbook = Runbook(
        name=name, runbook_type=runbook_type, description=description or "",
        tags=list(tags or []), draft_content=content, draft_edited_at=utcnow(),
        declared_parameters=normalize_declarations(parameters) if parameters is not None else None,
        **{k: v for k, v in fields.items() if k in UPDATABLE and v is not None},
    )
    session.add(runbook)
    try:
        session.flush()
    except IntegrityError:
        raise RunbookExists(f"A runbook named {name!r} already exists.") from None
    record(session, "runbook.create", _target(runbook), runbook_type=runbook_type)
    return runbook


def _target(runbook: Runbook) -> str:
    return f"/api/v1/runbooks/{runbook.name}"


def update_runbook(session: Session, runbook: Runbook, changes: dict[str, Any]) -> Runbook:
    """Change a runbook's settings (not its content: that goes through the draft)."""
    _check_fields(changes)
    for key in UPDATABLE:
        if key in changes:
            value = changes[key]
            if key == "worker_group" and value is None:
                value = "default"
            setattr(runbook, key, value)
    if "parameters" in changes:
        raw = changes["parameters"]
        runbook.declared_parameters = normalize_declarations(raw) if raw is not None else None
    runbook.modified_at = utcnow()
    record(session, "runbook.update", _target(runbook), fields=sorted(changes))
    return runbook


def set_draft(session: Session, runbook: Runbook, content: str, content_limit: int) -> Runbook:
    """Replace the draft content."""
    runbook.draft_content = check_content(content, content_limit)
    runbook.draft_edited_at = utcnow()
    runbook.modified_at = utcnow()
    record(session, "runbook.draft", _target(runbook))
    return runbook


def discard_draft(session: Session, runbook: Runbook) -> None:
    """Throw the draft away (the published version stays)."""
    if runbook.draft_content is None:
        raise DraftNotFound(f"Runbook {runbook.name!r} has no draft.")
    if runbook.published_version_id is None:
        raise Conflict(f"Runbook {runbook.name!r} has never been published; its draft is all "
                       "it has. Delete the runbook instead.")
    runbook.draft_content = None
    runbook.draft_edited_at = None
    runbook.modified_at = utcnow()
    record(session, "runbook.discard_draft", _target(runbook))


def draft_parameters(runbook: Runbook, content: str) -> list[dict[str, Any]]:
    """Check `content` and return the parameters a job of it accepts."""
    found = analyze(runbook.runbook_type, content)
    if runbook.declared_parameters is not None:
        return list(runbook.declared_parameters)
    return found


def publish_runbook(session: Session, runbook: Runbook, published_by: str = "", *,
                    resolved: ResolvedDraft) -> RunbookVersion:
    """Turn the draft into the next numbered version, with the pinned requirements
    `resolved` for it (smacommon.services.requirements.resolve_draft); the draft is then
    cleared. Parameters it declares secret are sealed in the runbook's schedule links and
    webhooks."""
    if runbook.draft_content is None:
        raise DraftNotFound(f"Runbook {runbook.name!r} has no draft to publish; save a "
                            "draft first.")
    content = runbook.draft_content
    parameters = draft_parameters(runbook, content)
    requirements = resolved.requirements_of(runbook)
    number = (session.scalar(select(func.max(RunbookVersion.number))
                             .where(RunbookVersion.runbook_id == runbook.id)) or 0) + 1
    version = RunbookVersion(
        runbook_id=runbook.id, number=number, content=content,
        content_sha256=hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest(),
        parameters=parameters, requirements=requirements, published_by=published_by,
    )
    session.add(version)
    session.flush()
    runbook.published_version_id = version.id
    runbook.published_version = version
    runbook.draft_content = None
    runbook.draft_edited_at = None
    runbook.modified_at = utcnow()
    seal_newly_secret(session, runbook)
    record(session, "runbook.publish", _target(runbook), version=number)
    return version


def get_version(session: Session, runbook: Runbook, number: int) -> RunbookVersion:
    version = session.scalar(select(RunbookVersion).where(
        RunbookVersion.runbook_id == runbook.id, RunbookVersion.number == number))
    if version is None:
        raise VersionNotFound(f"Runbook {runbook.name!r} has no version {number}.")
    return version


def delete_runbook(session: Session, runbook: Runbook) -> None:
    """Delete a runbook with its versions and jobs, unless a job of it is still active."""
    from smacommon.models import Job
    from smacommon.states import FINAL_STATUSES, JobStatus

    active = session.scalar(select(func.count()).select_from(Job).where(
        Job.runbook_id == runbook.id,
        Job.status.not_in([s.value for s in FINAL_STATUSES | {JobStatus.SUSPENDED}])))
    if active:
        raise Conflict(f"Runbook {runbook.name!r} has {active} job(s) not yet finished; "
                       "stop them first.")
    runbook.published_version_id = None
    session.flush()
    session.delete(runbook)
    record(session, "runbook.delete", _target(runbook))
