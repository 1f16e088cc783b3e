"""/api/v1/jobs/{id}/output: what a job wrote to its Output stream, as plain text, with a
line that marks where each attempt after the first begins; and the `attempt` filter the
job's records share."""

from __future__ import annotations

from flask import Response, current_app, stream_with_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from smacommon.errors import ValidationFailed
from smacommon.models import Job, JobAttempt, JobStream
from smacommon.schemas.job import JobOutputQueryArgsSchema
from smacommon.services.attempts import job_attempts, record_range
from smacommon.services.jobs import get_job
from smacommon.streams import OUTPUT
from smaweb.extensions import SmaBlueprint, db

blp = SmaBlueprint("job_output", __name__, url_prefix="/api/v1",
                   description="Jobs: their output as plain text, attempts marked.")


def check_attempt(job: Job, attempt: int) -> None:
    """400 unless the job has (or is waiting to start) attempt `attempt`."""
    if attempt > job.attempt:
        last = "it has run once" if job.attempt == 1 else f"its last is attempt {job.attempt}"
        message = f"Job {job.id} has no attempt {attempt}: {last}."
        raise ValidationFailed(message, errors={"attempt": [message]})


def of_attempt(session: Session, job: Job, attempt: int) -> list:
    """The conditions that keep the records of one attempt."""
    check_attempt(job, attempt)
    after, upto = record_range(session, job.id, attempt)
    conditions = [JobStream.attempt == attempt, JobStream.seq > after]
    if upto is not None:
        conditions.append(JobStream.seq <= upto)
    return conditions


def marker(attempt: JobAttempt) -> str:
    """The line /output writes before an attempt's output (from the second on)."""
    return f"--- {attempt.summary} ---\n"


@blp.route("/jobs/<job_id>/output", methods=["GET"])
@blp.operation_id("getJobOutput")
@blp.arguments(JobOutputQueryArgsSchema, location="query")
@blp.response(200, {"type": "string"}, content_type="text/plain")
def output(args, job_id):
    """The Output stream as plain text, one record per line; a job that ran more than once
    has a line `--- Attempt N — resumed on worker W from the checkpoint of T after ... ---`
    before the output of each attempt after the first (none with `attempt`, which keeps
    one attempt's output)."""
    session = db.session
    job = get_job(session, job_id)
    only = of_attempt(session, job, args["attempt"]) if args.get("attempt") else []
    attempts = [] if only else job_attempts(session, job.id)
    heads = {a.attempt: marker(a) for a in attempts}
    # the last attempt that began, with output or not (yet)
    began = max((a.attempt for a in attempts if a.started_at is not None), default=1)
    factory = current_app.extensions["sma_db"].factory

    def markers(shown: int, upto: int) -> str:
        return "".join(heads.get(n, f"--- Attempt {n} ---\n") for n in range(shown + 1, upto + 1))

    def lines():
        after, shown = 0, args.get("attempt") or 1  # one attempt: no marker
        while True:
            with factory() as session:
                rows = session.execute(
                    select(JobStream.seq, JobStream.attempt, JobStream.text)
                    .where(JobStream.job_id == job.id, JobStream.stream == OUTPUT,
                           JobStream.seq > after, *only)
                    .order_by(JobStream.seq).limit(5000)).all()
            if not rows:
                break
            chunk = []
            for _, attempt, text in rows:
                if attempt > shown:
                    chunk.append(markers(shown, attempt))
                    shown = attempt
                chunk.append(f"{text}\n")
            yield "".join(chunk)
            after = rows[-1][0]
        if began > shown:
            yield markers(shown, began)

    return Response(stream_with_context(lines()), mimetype="text/plain",
                    content_type="text/plain; charset=utf-8")
