"""Domain exceptions; each carries the HTTP status and a message that says what to fix."""

from __future__ import annotations


class SmaError(Exception):
    """Base of every domain error; `smaweb` turns it into the JSON error shape."""

    status_code = 400
    message = "Bad request."

    def __init__(self, message: str | None = None, errors: dict | None = None) -> None:
        self.message = message or self.message
        self.errors = errors
        super().__init__(self.message)


class ConfigurationError(SmaError):
    status_code = 500
    message = "Invalid configuration."


class ValidationFailed(SmaError):
    status_code = 400
    message = "Invalid input."


class JsonRefused(ValidationFailed, ValueError):
    """JSON that parses but that sma refuses (too deep, NaN, a huge number): a 400 to API
    callers, and a ValueError to JSON readers (Flask's get_json) that expect one."""

    message = "Refused JSON."


class NotFound(SmaError):
    status_code = 404
    message = "Not found."


class RunbookNotFound(NotFound):
    message = "Runbook not found."


class JobNotFound(NotFound):
    message = "Job not found."


class VersionNotFound(NotFound):
    message = "Runbook version not found."


class DraftNotFound(NotFound):
    message = "The runbook has no draft."


class Forbidden(SmaError):
    status_code = 403
    message = "Your role does not allow this."


class Conflict(SmaError):
    status_code = 409
    message = "Conflict."


class RunbookExists(Conflict):
    message = "A runbook with that name already exists."


class NotPublished(Conflict):
    message = "The runbook has no published version; publish it first."


class AmbiguousJobId(Conflict):
    """A short job id that the ids of several jobs start with."""

    message = "Several jobs' ids start with that prefix; give more of the id."


class IllegalTransition(Conflict):
    """A job cannot move from its current status to the one asked for."""

    def __init__(self, job_id: object, current: str | None, target: str) -> None:
        self.current = current
        self.target = target
        super().__init__(_refusal(f"Job {job_id}", current, target))


def _refusal(job: str, current: str | None, target: str) -> str:
    """Why a job cannot move, in the words of what was asked (stop, suspend, resume)."""
    from smacommon.states import FINAL_STATUSES

    if current in {s.value for s in FINAL_STATUSES}:
        return f"{job} has already ended ({current})."
    if target in ("Stopped", "Stopping") and current == "Stopping":
        return f"{job} is already stopping."
    if target == "Suspending" and current in ("Suspending", "Suspended"):
        return f"{job} is already {'suspended' if current == 'Suspended' else 'suspending'}."
    if target == "Suspending":
        return f"{job} is {current}; only a running job can be suspended."
    if target == "Resuming":
        return f"{job} is {current}; only a suspended job can be resumed."
    return f"{job} is {current}; it cannot become {target}."


class RequirementsUnresolvable(ValidationFailed):
    """A runbook's requirements (PEP 723) cannot be met: the message names what to change."""

    message = "The runbook's requirements cannot be resolved."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, {"content": [message or self.message]})


class ResolverUnavailable(SmaError):
    """Requirements could not be resolved just now (the package index did not answer): not
    the publisher's fault, so a 503 to try again later."""

    status_code = 503
    message = "The package index could not be used to resolve the requirements."


class ScriptError(ValidationFailed):
    """The runbook content does not parse; names the line and column."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.line = line
        self.column = column
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(f"{message}{where}", errors={"content": [f"{message}{where}"]})
