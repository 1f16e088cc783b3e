"""/api/v1/jobs, plus starting jobs from /api/v1/runbooks/{runbook}/start and /draft/test."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

from flask import Response, current_app
from flask.views import MethodView
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from smacommon.errors import SmaError, ValidationFailed
from smacommon.models import Job, Runbook, RunbookVersion
from smacommon.schemas.common import ErrorSchema
from smacommon.schemas.job import (
    JobBatchResultSchema,
    JobBatchSchema,
    JobDetailSchema,
    JobEventsHeadersSchema,
    JobEventsQueryArgsSchema,
    JobPageSchema,
    JobQueryArgsSchema,
    JobSchema,
    JobStartQueryArgsSchema,
    JobStartSchema,
    JobStreamPageSchema,
    JobStreamQueryArgsSchema,
)
from smacommon.services import access
from smacommon.services.attempts import job_attempts
from smacommon.services.job_batch import JobRequest, start_jobs
from smacommon.services.job_lookup import name_starters
from smacommon.services.jobs import (
    default_enqueue,
    get_job,
    resume_job,
    start_job,
    status_history,
    stop_job,
    suspend_job,
)
from smacommon.services.requirements import resolve_draft
from smacommon.services.runbooks import get_runbook
from smacommon.states import FINAL_STATUSES, JobStatus
from smaweb.api.job_output import check_attempt, of_attempt
from smaweb.auth import started_by
from smaweb.events import job_events
from smaweb.extensions import SmaBlueprint, db
from smaweb.fastjson import body_response, json_response
from smaweb.jobpage import job_dict, job_page, read_job_dict
from smaweb.livefeed import Feed, JobState
from smaweb.livehub import live_hub
from smaweb.queries import jobs_statement
from smaweb.streampage import stream_page

blp = SmaBlueprint("jobs", __name__, url_prefix="/api/v1",
                   description="Jobs: start runbooks, follow them, read what they wrote.")

_DONE = {s.value for s in FINAL_STATUSES} | {JobStatus.SUSPENDED.value}


def _with_names(session: Session, jobs: list[Job]) -> list[Job]:
    """Attach runbook_name and runbook_version to each job for the response."""
    runbook_ids = {j.runbook_id for j in jobs}
    version_ids = {j.runbook_version_id for j in jobs if j.runbook_version_id}
    names = dict(session.execute(select(Runbook.id, Runbook.name)
                                 .where(Runbook.id.in_(runbook_ids))).all()) if jobs else {}
    numbers = dict(session.execute(select(RunbookVersion.id, RunbookVersion.number)
                                   .where(RunbookVersion.id.in_(version_ids))).all()) \
        if version_ids else {}
    for job in jobs:
        job.runbook_name = names.get(job.runbook_id)
        job.runbook_version = numbers.get(job.runbook_version_id)
    name_starters(session, jobs)
    return jobs


def _wait_seconds(data: dict, query: dict) -> float | None:
    """`wait` from the body or the query; given in both, they must agree."""
    body, asked = data.get("wait"), query.get("wait")
    if body is not None and asked is not None and body != asked:
        raise ValidationFailed(f"wait is given twice, {asked:g} in the query and {body:g} in "
                               "the body: give it once.")
    return asked if asked is not None else body


def _start(runbook_ref: str, data: dict, query: dict, test: bool) -> Response:
    wait = _wait_seconds(data, query)
    session = db.session
    settings = current_app.config["SMA_SETTINGS"]
    draft = resolve_draft(session, runbook_ref, settings) if test else None
    runbook = get_runbook(session, runbook_ref)
    with ExitStack() as waiting:
        feeds: list[Feed] = []

        def enqueue(job_id: str, group: str) -> None:
            # committed, not yet published: a waiter's job is registered with the hub as
            # it is now, when the hub can promise to hear its end (smaweb/livehub.py)
            if wait:
                hub = live_hub()
                expected = hub.expect(JobState(job.status, job.status_reason, None, None))
                if expected is not None:
                    feeds.append(waiting.enter_context(
                        hub.feed(job.id, records=False, expected=expected)))
            default_enqueue(job_id, group)

        job = start_job(session, runbook, data.get("parameters"),
                        worker_group=data.get("worker_group"), arguments=data.get("arguments"),
                        started_by=started_by(), test=test, draft=draft, enqueue=enqueue,
                        heartbeat_seconds=settings.worker_heartbeat_seconds)
        session.commit()
        # a hot path: the job as JobSchema dumps it (the view's schema documents the shape)
        names = (runbook.name, None if test else runbook.published_version.number,
                 job.started_by)  # a user's: nothing to look up
        item = None
        if wait:
            row = _wait_on(feeds[0], wait) if feeds else _wait(job.id, wait)
            item = job_dict(row, *names) if row is not None else \
                read_job_dict(session, job.id, *names)  # None: purged meanwhile
    return json_response(item or job_dict(job, *names), 201)


def _wait(job_id: uuid.UUID, seconds: float) -> Row | None:
    """Until the job ends or `seconds` pass: woken by the live hub when its status changes
    (the worker announces its end), holding no database connection meanwhile. For a job
    registered only after it was published (the hub did not yet hear every job, see
    smaweb/livehub.py): the hub, nudged, reads it at once; this reads it only when the hub
    cannot (no Redis). The job's row as the hub read it when it saw the job end (None: it
    did not end in time, or is gone: the caller reads it)."""
    hub = live_hub()
    with hub.feed(job_id, records=False) as feed:
        return _wait_on(feed, seconds, read=not hub.reads_new_feeds)


def _wait_on(feed: Feed, seconds: float, read: bool = False) -> Row | None:
    """`_wait` on the job's feed, taken already."""
    deadline = time.monotonic() + seconds
    factory = live_hub().factory
    known, state, version = feed.current(factory, read=read)
    while not known or (state is not None and state.status not in _DONE):
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        feed.wait(version, left)
        known, state, version = feed.current(factory, read=False)
    return feed.row_of(version)


# instances, built once: webargs builds a schema given as a class for every request
_START_BODY, _START_QUERY = JobStartSchema(), JobStartQueryArgsSchema()


@blp.route("/runbooks/<runbook>/start", methods=["POST"])
@blp.operation_id("startRunbook")
@blp.arguments(_START_BODY)
@blp.arguments(_START_QUERY, location="query")
@blp.response(201, JobSchema)
def start(data, query, runbook):
    """Start the published version as a job; answers at once unless `wait` is given."""
    return _start(runbook, data, query, test=False)


@blp.route("/runbooks/<runbook>/draft/test", methods=["POST"])
@blp.operation_id("testRunbookDraft")
@blp.arguments(_START_BODY)
@blp.arguments(_START_QUERY, location="query")
@blp.response(201, JobSchema)
@blp.alt_response(503, schema=ErrorSchema, description="The package index could not be used "
                  "to resolve the draft's requirements (PEP 723): try again.")
def test_draft(data, query, runbook):
    """Run the draft as a test job (SMA's Test action), with its requirements (PEP 723)
    resolved as publishing would; answers at once unless `wait` is given."""
    return _start(runbook, data, query, test=True)


@blp.route("/jobs/batch", methods=["POST"])
@blp.operation_id("startJobBatch")
@blp.arguments(JobBatchSchema)
@blp.response(201, JobBatchResultSchema)
def batch(data):
    """Start many jobs in one request (up to 1,000): all of them, or (on any bad item) none.
    One transaction, and one message to the broker for all of them."""
    session = db.session
    settings = current_app.config["SMA_SETTINGS"]
    runbooks: dict[str, Runbook] = {}
    requests = []
    for index, item in enumerate(data["jobs"]):
        try:
            runbook = runbooks.get(item["runbook"]) or get_runbook(session, item["runbook"])
        except SmaError as exc:
            session.rollback()
            exc.message = f"jobs[{index}]: {exc.message} No job was started."
            raise
        runbooks[item["runbook"]] = runbook
        requests.append(JobRequest(runbook, item["parameters"], {
            "worker_group": item["worker_group"], "arguments": item["arguments"],
            "started_by": started_by(),
            "heartbeat_seconds": settings.worker_heartbeat_seconds}))
    try:
        jobs = start_jobs(session, requests)
    except SmaError:
        session.rollback()
        raise
    session.commit()
    # a hot path: the jobs as JobSchema dumps them (the view's schema documents the shape)
    return json_response({"items": [
        job_dict(job, runbook.name, runbook.published_version.number, job.started_by)
        for job, runbook in zip(jobs, (r.runbook for r in requests), strict=True)]}, 201)


@blp.route("/jobs")
class Jobs(MethodView):
    @blp.operation_id("listJobs")
    @blp.arguments(JobQueryArgsSchema, location="query")
    @blp.response(200, JobPageSchema)
    def get(self, args):
        """List jobs, newest first (filter by runbook, status, started_by, since, until)."""
        session = db.session
        runbook = get_runbook(session, args["runbook"]) if args.get("runbook") else None
        stmt = jobs_statement(runbook.id if runbook else None, args.get("status"),
                              args.get("started_by"), args.get("is_test"), args.get("since"),
                              args.get("until"))
        stmt = access.scoped(session, stmt, Job.runbook_id)  # a role binding's runbooks only
        # a hot path: rows to dicts to orjson, the schema above documents the shape
        return json_response(job_page(session, stmt, args["limit"], args["cursor"]))


def _detail(session: Session, job: Job) -> Job:
    job.status_history = status_history(session, job.id)
    job.attempts = job_attempts(session, job.id)
    return _with_names(session, [job])[0]


@blp.route("/jobs/<job_id>", methods=["GET"])
@blp.operation_id("getJob")
@blp.response(200, JobDetailSchema)
def get(job_id):
    """Get a job with its status history and its attempts (each run of it)."""
    session = db.session
    return _detail(session, get_job(session, job_id))


def _control(job_id: str, action) -> Job:
    session = db.session
    job = get_job(session, job_id)
    action(session, job, started_by())
    session.commit()
    live_hub().announce(job.id)  # its followers and waiters, in every web process, look again
    session.refresh(job)
    return _detail(session, job)


@blp.route("/jobs/<job_id>/stop", methods=["POST"])
@blp.operation_id("stopJob")
@blp.response(202, JobDetailSchema)
def stop(job_id):
    """Stop a job: its whole process group ends (Stopping, then Stopped); a job that is
    not running (New, Suspended) is stopped at once. 409 when it has finished."""
    return _control(job_id, stop_job)


@blp.route("/jobs/<job_id>/suspend", methods=["POST"])
@blp.operation_id("suspendJob")
@blp.response(202, JobDetailSchema)
def suspend(job_id):
    """Suspend a running job; resume continues from its last checkpoint."""
    return _control(job_id, suspend_job)


@blp.route("/jobs/<job_id>/resume", methods=["POST"])
@blp.operation_id("resumeJob")
@blp.response(202, JobDetailSchema)
def resume(job_id):
    """Resume a suspended job from its last checkpoint (or from the start without one)."""
    return _control(job_id, resume_job)


@blp.route("/jobs/<job_id>/streams", methods=["GET"])
@blp.operation_id("listJobStreams")
@blp.arguments(JobStreamQueryArgsSchema, location="query")
@blp.response(200, JobStreamPageSchema)
def streams(args, job_id):
    """Records the job wrote, in order (each with its attempt); `next_after_seq` pages on."""
    session = db.session
    job = get_job(session, job_id)
    where = of_attempt(session, job, args["attempt"]) if args.get("attempt") else ()
    # a hot path: rows to dicts to orjson, the schema above documents the shape
    made: list = []
    return body_response(stream_page(session, job.id, args["after_seq"], args["limit"],
                                     args.get("stream"), where, made), keep=made)


@blp.route("/jobs/<job_id>/events", methods=["GET"])
@blp.operation_id("getJobEvents")
@blp.arguments(JobEventsQueryArgsSchema, location="query")
@blp.arguments(JobEventsHeadersSchema, location="headers")
@blp.response(200, {"type": "string"}, content_type="text/event-stream")
def events(args, headers, job_id):
    """Live records as server-sent events (`record`, id = seq), then a `status` event."""
    job = get_job(db.session, job_id)
    if args.get("attempt"):
        check_attempt(job, args["attempt"])
    # a reconnecting EventSource sends Last-Event-ID with its first URL: the later wins
    after = max(args.get("after_seq") or 0, headers.get("last_event_id") or 0)
    stream = job_events(live_hub(), job.id, after, args["timeout"], attempt=args.get("attempt"))
    db.session.close()  # the stream uses its own short sessions, and no request context
    return Response(stream, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
