"""A typed Python client of the sma REST API. It speaks HTTP only: no Flask, Celery or models.

    from smacli.client import SmaClient

    sma = SmaClient("http://127.0.0.1:8080", token)
    sma.create_runbook("hello", "python", "print('hi')\\n")
    sma.publish_runbook("hello")
    job = sma.start_runbook("hello", wait=30)
    for event in sma.job_events(job.id):
        print(event.record.text if event.record else event.status)

Every error is an `SmaApiError` carrying the API's `message` (and field `errors`); lists are
iterators that fetch the next page when needed; calls that are safe to repeat (GET, PUT,
DELETE) are retried with backoff when the connection fails, starts and creations are not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

# Resource, SmaApiError, Module and RoleBinding are imported from here too
from smacli.client_base import Resource as Resource
from smacli.client_base import SmaApiError, T
from smacli.client_base import quote as _q
from smacli.client_bindings import RoleBinding as RoleBinding
from smacli.client_bindings import RoleBindingsApi
from smacli.client_modules import Module as Module
from smacli.client_modules import ModulesApi
from smacli.client_personal import PersonalTokensApi

IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
FINAL_STATUSES = ("Completed", "Failed", "Stopped")
END_STATUSES = (*FINAL_STATUSES, "Suspended")
MAX_WAIT = 300.0  # the longest `wait` of a start the service holds its answer for


# --- typed results ---------------------------------------------------------------------

@dataclass
class Runbook(Resource):
    id: str | None = None
    name: str | None = None
    runbook_type: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    worker_group: str | None = None
    has_draft: bool | None = None
    published_version: dict[str, Any] | None = None
    modified_at: str | None = None


@dataclass
class RunbookVersion(Resource):
    id: str | None = None
    number: int | None = None
    parameters: list[dict[str, Any]] | None = None
    # the pinned set of its inline requirements (PEP 723): dependencies, pinned, python...
    requirements: dict[str, Any] | None = None
    published_at: str | None = None
    published_by: str | None = None
    content: str | None = None


@dataclass
class JobAttempt(Resource):
    """One run of a job (GET /jobs/{id} lists them as `attempts`)."""

    number: int | None = None
    cause: str | None = None  # first, user, worker_lost, worker_shutdown
    reason: str | None = None
    worker: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    status: str | None = None
    end_reason: str | None = None
    resumed_from_checkpoint_at: str | None = None
    summary: str | None = None  # "Attempt 2 — resumed on worker w1 from the checkpoint of ..."


@dataclass
class Job(Resource):
    id: str | None = None
    runbook_name: str | None = None
    status: str | None = None
    status_reason: str | None = None
    exception: str | None = None
    parameters: dict[str, Any] | None = None
    arguments: list[str] | None = None  # positional, in order
    requirements: dict[str, Any] | None = None  # the pinned set it runs with, or None
    worker_group: str | None = None
    worker: str | None = None
    started_by: str | None = None
    parent_job_id: str | None = None
    attempt: int | None = None  # its current run: 1, then + 1 each time it is resumed
    exit_code: int | None = None
    engine_path: str | None = None  # "warm" or "cold": how its last run started
    created_at: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    # each run, with a job read alone (get_job), else None
    attempts: list[JobAttempt] | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Job:
        job = super().from_api(data)
        if job.attempts is not None:
            job.attempts = [JobAttempt.from_api(a) for a in job.attempts]
        return job

    @property
    def finished(self) -> bool:
        return self.status in END_STATUSES


@dataclass
class JobRecord(Resource):
    seq: int | None = None
    attempt: int | None = None  # the run of the job that wrote it
    stream: str | None = None
    time: str | None = None
    text: str | None = None
    value: Any = None


@dataclass
class JobEvent:
    """One server-sent event of a job: a record, or its final status."""

    record: JobRecord | None = None
    status: Job | None = None


@dataclass
class Asset(Resource):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    modified_at: str | None = None
    runbook_tag: str | None = None  # set: only jobs of runbooks with the tag may read it


@dataclass
class Variable(Asset):
    is_encrypted: bool | None = None
    value: Any = None


@dataclass
class Credential(Asset):
    username: str | None = None


@dataclass
class ConnectionType(Asset):
    fields: list[dict[str, Any]] | None = None


@dataclass
class Connection(Asset):
    connection_type: str | None = None
    values: dict[str, Any] | None = None
    encrypted_fields: list[str] | None = None


@dataclass
class Certificate(Asset):
    thumbprint: str | None = None
    subject: str | None = None
    not_after: str | None = None
    exportable: bool | None = None


@dataclass
class Schedule(Resource):
    id: str | None = None
    name: str | None = None
    description: str | None = None
    frequency: str | None = None
    interval: int | None = None
    start_time: str | None = None
    expiry_time: str | None = None
    time_zone: str | None = None
    enabled: bool | None = None
    next_run: str | None = None
    last_run: str | None = None


@dataclass
class ScheduleLink(Resource):
    id: str | None = None
    schedule: str | None = None
    runbook: str | None = None
    parameters: dict[str, Any] | None = None
    arguments: list[str] | None = None
    worker_group: str | None = None
    next_run: str | None = None


@dataclass
class Webhook(Resource):
    id: str | None = None
    name: str | None = None
    runbook: str | None = None
    parameters: dict[str, Any] | None = None
    arguments: list[str] | None = None
    enabled: bool | None = None
    expiry_time: str | None = None
    last_invoked_at: str | None = None
    uri: str | None = None  # only in the answer that created it


@dataclass
class Worker(Resource):
    name: str | None = None
    worker_group: str | None = None
    state: str | None = None
    engines: list[str] | None = None
    concurrency: int | None = None
    running_jobs: list[str] | None = None
    heartbeat_at: str | None = None


@dataclass
class Token(Resource):
    id: str | None = None
    name: str | None = None
    role: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked: bool | None = None
    owner: str | None = None  # a personal token's: who made it for themselves
    token: str | None = None  # the secret: only in the answer that created it


@dataclass
class AuditEvent(Resource):
    time: str | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None
    client_address: str | None = None
    door: str | None = None
    details: dict[str, Any] | None = None


class SmaClient(ModulesApi, RoleBindingsApi, PersonalTokensApi):
    """One method per API verb. `url` is the service (http://host:8080), `token` a bearer
    token; `verify` is True, False or a CA bundle path for HTTPS."""

    token_type = Token  # what PersonalTokensApi answers

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, retries: int = 4,
                 verify: bool | str = True) -> None:
        if not url:
            raise SmaApiError(0, "No sma URL: run `sma login URL` or set SMA_URL.")
        self.url = url.rstrip("/")
        if self.url.endswith("/api/v1"):
            self.url = self.url[: -len("/api/v1")]
        self.timeout = timeout
        self.retries = retries
        self.http = requests.Session()
        self.http.verify = verify
        self.http.headers.update({"Authorization": f"Bearer {token}",
                                  "User-Agent": "sma-client"})

    # --- transport ---------------------------------------------------------------------

    def request(self, method: str, path: str, *, json_body: Any = None,
                params: dict[str, Any] | None = None, stream: bool = False,
                timeout: float | None = None, headers: dict[str, str] | None = None,
                files: dict[str, Any] | None = None, data: dict[str, str] | None = None
                ) -> requests.Response:
        """One call; an error status raises SmaApiError with the API's message (`files` and
        `data`: a multipart/form-data body)."""
        url = f"{self.url}/api/v1{path}"
        attempts = self.retries + 1 if method in IDEMPOTENT else 1
        pause = 0.2
        for attempt in range(attempts):
            try:
                resp = self.http.request(
                    method, url, json=json_body, params=_clean(params), stream=stream,
                    headers=headers, files=files, data=data, timeout=timeout or self.timeout)
                break
            except requests.exceptions.SSLError as exc:
                raise SmaApiError(0, f"TLS error talking to {self.url}: {exc}") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt + 1 >= attempts:
                    raise SmaApiError(0, f"Cannot reach sma at {self.url}: "
                                         f"{_reason(exc)}") from None
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message = body.get("message") or resp.reason
                errors = body.get("errors")
            except ValueError:
                message, errors = f"{resp.status_code} {resp.reason}", None
            raise SmaApiError(resp.status_code, message, errors)
        return resp

    def _json(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self.request(method, path, json_body=body, params=params)
        return None if resp.status_code == 204 or not resp.content else resp.json()

    def _pages(self, path: str, cls: type[T], **params: Any) -> Iterator[T]:
        cursor = None
        while True:
            page = self._json("GET", path, **params, cursor=cursor)
            for item in page["items"]:
                yield cls.from_api(item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # --- runbooks ----------------------------------------------------------------------

    def runbooks(self, name: str | None = None, tag: str | None = None,
                 runbook_type: str | None = None) -> Iterator[Runbook]:
        return self._pages("/runbooks", Runbook, name=name, tag=tag, type=runbook_type)

    def get_runbook(self, name: str) -> Runbook:
        return Runbook.from_api(self._json("GET", f"/runbooks/{_q(name)}"))

    def create_runbook(self, name: str, runbook_type: str, content: str,
                       **settings: Any) -> Runbook:
        return Runbook.from_api(self._json("POST", "/runbooks", {
            "name": name, "runbook_type": runbook_type, "content": content, **settings}))

    def update_runbook(self, name: str, **settings: Any) -> Runbook:
        return Runbook.from_api(self._json("PATCH", f"/runbooks/{_q(name)}", settings))

    def get_draft(self, name: str) -> str:
        return self._json("GET", f"/runbooks/{_q(name)}/draft")["content"]

    def set_draft(self, name: str, content: str) -> None:
        self._json("PUT", f"/runbooks/{_q(name)}/draft", {"content": content})

    def publish_runbook(self, name: str) -> RunbookVersion:
        return RunbookVersion.from_api(self._json("POST", f"/runbooks/{_q(name)}/publish"))

    def runbook_versions(self, name: str) -> Iterator[RunbookVersion]:
        return self._pages(f"/runbooks/{_q(name)}/versions", RunbookVersion)

    def get_runbook_version(self, name: str, number: int) -> RunbookVersion:
        return RunbookVersion.from_api(
            self._json("GET", f"/runbooks/{_q(name)}/versions/{int(number)}"))

    def delete_runbook(self, name: str) -> None:
        self._json("DELETE", f"/runbooks/{_q(name)}")

    def start_runbook(self, name: str, parameters: dict[str, Any] | None = None, *,
                      worker_group: str | None = None, wait: float | None = None,
                      arguments: list[str] | None = None) -> Job:
        """Start the published version with named `parameters` and/or positional `arguments`
        (a script's sys.argv[1:]); `wait` seconds (at most 300) to answer when done."""
        body: dict[str, Any] = {"parameters": parameters or {}}
        if arguments is not None:
            body["arguments"] = arguments
        if worker_group:
            body["worker_group"] = worker_group
        if wait:
            body["wait"] = wait
        resp = self.request("POST", f"/runbooks/{_q(name)}/start", json_body=body,
                            timeout=self.timeout + (wait or 0))
        return Job.from_api(resp.json())

    def test_draft(self, name: str, parameters: dict[str, Any] | None = None, *,
                   arguments: list[str] | None = None) -> Job:
        body: dict[str, Any] = {"parameters": parameters or {}}
        if arguments is not None:
            body["arguments"] = arguments
        return Job.from_api(self._json("POST", f"/runbooks/{_q(name)}/draft/test", body))

    # --- jobs --------------------------------------------------------------------------

    def jobs(self, runbook: str | None = None, status: list[str] | str | None = None,
             started_by: str | None = None) -> Iterator[Job]:
        if isinstance(status, list | tuple):
            status = ",".join(status)
        return self._pages("/jobs", Job, runbook=runbook, status=status,
                           started_by=started_by)

    def get_job(self, job_id: str) -> Job:
        return Job.from_api(self._json("GET", f"/jobs/{_q(job_id)}"))

    def stop_job(self, job_id: str) -> Job:
        return Job.from_api(self._json("POST", f"/jobs/{_q(job_id)}/stop"))

    def suspend_job(self, job_id: str) -> Job:
        return Job.from_api(self._json("POST", f"/jobs/{_q(job_id)}/suspend"))

    def resume_job(self, job_id: str) -> Job:
        return Job.from_api(self._json("POST", f"/jobs/{_q(job_id)}/resume"))

    def job_records(self, job_id: str, streams: list[str] | None = None,
                    after_seq: int = 0, attempt: int | None = None) -> Iterator[JobRecord]:
        """The job's records in order (`attempt`: only those of that run of it)."""
        while True:
            page = self._json("GET", f"/jobs/{_q(job_id)}/streams", after_seq=after_seq,
                              stream=",".join(streams) if streams else None, limit=5000,
                              attempt=attempt)
            for item in page["items"]:
                yield JobRecord.from_api(item)
            if page.get("next_after_seq") is None:
                return
            after_seq = page["next_after_seq"]

    def job_output(self, job_id: str, attempt: int | None = None) -> str:
        """The Output stream as text, with a `--- Attempt N — ... ---` line before each
        attempt after the first (`attempt`: only that attempt's output, no such line)."""
        return self.request("GET", f"/jobs/{_q(job_id)}/output",
                            params={"attempt": attempt}).text

    def wait_job(self, job_id: str, timeout: float | None = None) -> Job:
        """Poll until the job is Completed, Failed, Stopped or Suspended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.1
        while True:
            job = self.get_job(job_id)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise SmaApiError(0, f"Job {job_id} is still {job.status} after {timeout} s.")
            time.sleep(pause)
            pause = min(pause * 1.5, 2.0)

    def job_events(self, job_id: str, after_seq: int = 0, *, reconnect: bool = True,
                   give_up_after: float = 300.0, attempt: int | None = None
                   ) -> Iterator[JobEvent]:
        """The job's records live (server-sent events), then its final status. A dropped
        connection (a restarted server) is resumed after the last record received.
        `attempt`: only the records of that run of the job."""
        failing_since: float | None = None
        pause = 0.2
        while True:
            try:
                resp = self.request("GET", f"/jobs/{_q(job_id)}/events",
                                    params={"attempt": attempt},
                                    headers={"Last-Event-ID": str(after_seq),
                                             "Accept": "text/event-stream"},
                                    stream=True, timeout=60)
                with resp:
                    for name, data in _sse(resp):
                        failing_since, pause = None, 0.2
                        if name == "record":
                            record = JobRecord.from_api(data)
                            after_seq = record.seq
                            yield JobEvent(record=record)
                        elif name == "status":
                            yield JobEvent(status=self.get_job(job_id))
                            return
            except (SmaApiError, requests.RequestException) as exc:
                if isinstance(exc, SmaApiError) and exc.status not in (0, 502, 503, 504):
                    raise
                if not reconnect:
                    raise SmaApiError(0, f"Lost the job's event stream: {exc}") from None
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > give_up_after:
                    raise SmaApiError(0, f"Lost the job's event stream for {give_up_after:.0f}"
                                         f" s: {exc}") from None
                time.sleep(pause)
                pause = min(pause * 2, 3.0)
            # the stream ended without a status (its timeout): ask again from where we are

    # --- assets ------------------------------------------------------------------------

    def variables(self) -> Iterator[Variable]:
        return self._pages("/variables", Variable)

    def get_variable(self, name: str) -> Variable:
        return Variable.from_api(self._json("GET", f"/variables/{_q(name)}"))

    def create_variable(self, name: str, value: Any, *, encrypted: bool = False,
                        description: str = "", runbook_tag: str | None = None) -> Variable:
        """A new variable; `runbook_tag`: only jobs of runbooks with that tag may read it."""
        return Variable.from_api(self._json("POST", "/variables", {
            "name": name, "value": value, "is_encrypted": encrypted,
            "description": description, **_limit(runbook_tag)}))

    def update_variable(self, name: str, **changes: Any) -> Variable:
        return Variable.from_api(self._json("PATCH", f"/variables/{_q(name)}", changes))

    def delete_variable(self, name: str) -> None:
        self._json("DELETE", f"/variables/{_q(name)}")

    def credentials(self) -> Iterator[Credential]:
        return self._pages("/credentials", Credential)

    def get_credential(self, name: str) -> Credential:
        return Credential.from_api(self._json("GET", f"/credentials/{_q(name)}"))

    def create_credential(self, name: str, username: str, password: str,
                          description: str = "", runbook_tag: str | None = None) -> Credential:
        """A new credential; `runbook_tag`: only jobs of runbooks with that tag may read it."""
        return Credential.from_api(self._json("POST", "/credentials", {
            "name": name, "username": username, "password": password,
            "description": description, **_limit(runbook_tag)}))

    def update_credential(self, name: str, **changes: Any) -> Credential:
        return Credential.from_api(self._json("PATCH", f"/credentials/{_q(name)}", changes))

    def delete_credential(self, name: str) -> None:
        self._json("DELETE", f"/credentials/{_q(name)}")

    def connection_types(self) -> Iterator[ConnectionType]:
        return self._pages("/connection-types", ConnectionType)

    def create_connection_type(self, name: str, fields_: list[dict[str, Any]],
                               description: str = "") -> ConnectionType:
        return ConnectionType.from_api(self._json("POST", "/connection-types", {
            "name": name, "fields": fields_, "description": description}))

    def delete_connection_type(self, name: str) -> None:
        self._json("DELETE", f"/connection-types/{_q(name)}")

    def connections(self) -> Iterator[Connection]:
        return self._pages("/connections", Connection)

    def get_connection(self, name: str) -> Connection:
        return Connection.from_api(self._json("GET", f"/connections/{_q(name)}"))

    def create_connection(self, name: str, connection_type: str, values: dict[str, Any],
                          description: str = "") -> Connection:
        return Connection.from_api(self._json("POST", "/connections", {
            "name": name, "connection_type": connection_type, "values": values,
            "description": description}))

    def update_connection(self, name: str, values: dict[str, Any]) -> Connection:
        return Connection.from_api(self._json("PATCH", f"/connections/{_q(name)}",
                                              {"values": values}))

    def delete_connection(self, name: str) -> None:
        self._json("DELETE", f"/connections/{_q(name)}")

    def certificates(self) -> Iterator[Certificate]:
        return self._pages("/certificates", Certificate)

    def get_certificate(self, name: str) -> Certificate:
        return Certificate.from_api(self._json("GET", f"/certificates/{_q(name)}"))

    def create_certificate(self, name: str, data: bytes, password: str | None = None, *,
                           exportable: bool = False, description: str = "") -> Certificate:
        import base64

        return Certificate.from_api(self._json("POST", "/certificates", {
            "name": name, "data": base64.b64encode(data).decode("ascii"),
            "password": password, "exportable": exportable, "description": description}))

    def delete_certificate(self, name: str) -> None:
        self._json("DELETE", f"/certificates/{_q(name)}")

    # --- schedules and webhooks --------------------------------------------------------

    def schedules(self) -> Iterator[Schedule]:
        return self._pages("/schedules", Schedule)

    def get_schedule(self, name: str) -> Schedule:
        return Schedule.from_api(self._json("GET", f"/schedules/{_q(name)}"))

    def create_schedule(self, name: str, frequency: str, **fields_: Any) -> Schedule:
        return Schedule.from_api(self._json("POST", "/schedules", {
            "name": name, "frequency": frequency, **fields_}))

    def update_schedule(self, name: str, **changes: Any) -> Schedule:
        return Schedule.from_api(self._json("PATCH", f"/schedules/{_q(name)}", changes))

    def delete_schedule(self, name: str) -> None:
        self._json("DELETE", f"/schedules/{_q(name)}")

    def schedule_links(self, name: str) -> list[ScheduleLink]:
        body = self._json("GET", f"/schedules/{_q(name)}/runbooks")
        return [ScheduleLink.from_api(i) for i in body["items"]]

    def runbook_schedules(self, runbook: str) -> list[ScheduleLink]:
        body = self._json("GET", f"/runbooks/{_q(runbook)}/schedules")
        return [ScheduleLink.from_api(i) for i in body["items"]]

    def link_schedule(self, name: str, runbook: str, parameters: dict[str, Any] | None = None,
                      worker_group: str | None = None, *,
                      arguments: list[str] | None = None) -> ScheduleLink:
        body: dict[str, Any] = {"runbook": runbook, "parameters": parameters or {}}
        if arguments is not None:
            body["arguments"] = arguments
        if worker_group:
            body["worker_group"] = worker_group
        return ScheduleLink.from_api(self._json("POST", f"/schedules/{_q(name)}/runbooks",
                                                body))

    def unlink_schedule(self, name: str, runbook: str) -> None:
        self._json("DELETE", f"/schedules/{_q(name)}/runbooks/{_q(runbook)}")

    def webhooks(self) -> Iterator[Webhook]:
        return self._pages("/webhooks", Webhook)

    def get_webhook(self, name: str) -> Webhook:
        return Webhook.from_api(self._json("GET", f"/webhooks/{_q(name)}"))

    def create_webhook(self, name: str, runbook: str, parameters: dict[str, Any] | None = None,
                       **fields_: Any) -> Webhook:
        """A new webhook; `arguments=[...]` fixes the positional arguments of its jobs."""
        return Webhook.from_api(self._json("POST", "/webhooks", {
            "name": name, "runbook": runbook, "parameters": parameters or {}, **fields_}))

    def update_webhook(self, name: str, **changes: Any) -> Webhook:
        return Webhook.from_api(self._json("PATCH", f"/webhooks/{_q(name)}", changes))

    def delete_webhook(self, name: str) -> None:
        self._json("DELETE", f"/webhooks/{_q(name)}")

    # --- service -----------------------------------------------------------------------

    def workers(self, state: str | None = None) -> Iterator[Worker]:
        return self._pages("/workers", Worker, state=state)

    def tokens(self) -> Iterator[Token]:
        return self._pages("/tokens", Token)

    def create_token(self, name: str, role: str, expires_in_days: int | None = None) -> Token:
        return Token.from_api(self._json("POST", "/tokens", {
            "name": name, "role": role, "expires_in_days": expires_in_days}))

    def revoke_token(self, token_id: str) -> None:
        self._json("DELETE", f"/tokens/{_q(token_id)}")

    def audit(self, **filters: Any) -> Iterator[AuditEvent]:
        return self._pages("/audit", AuditEvent, **filters)


def _limit(runbook_tag: str | None) -> dict[str, Any]:
    """An asset's limit to the runbooks with a tag, in a body only when one is asked for."""
    return {} if runbook_tag is None else {"runbook_tag": runbook_tag}


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {k: v for k, v in params.items() if v is not None}


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return text[:200]


def _sse(resp: requests.Response) -> Iterator[tuple[str, Any]]:
    """(event name, parsed data) of a server-sent event stream."""
    name, data = None, []
    for line in resp.iter_lines(decode_unicode=True):
        if line is None:
            continue
        if line == "":
            if name and data:
                yield name, json.loads("\n".join(data))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
