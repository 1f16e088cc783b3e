"""Server-sent events of a job: its records as they are written, then its final status.

    GET /api/v1/jobs/{id}/events     (Last-Event-ID or ?after_seq= resumes after a seq)

Each status the job passes through is an event `state`; each record is an event `record`
(with the `attempt` that wrote it; `?attempt=` keeps one attempt's) whose id is its seq, so a
client that lost the connection asks again with Last-Event-ID and misses nothing. Records
come from the job's feed (smaweb/livefeed.py) in this process's live hub (smaweb/livehub.py):
it reads them once for all the job's followers when the worker announces them on Redis, and
looks every second in any case (without Redis, that is all). The stream ends with an event
`status` once the job is in a final status (or Suspended), or after `timeout` seconds
(default 300), when a client reconnects.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from smacommon import strictjson
from smacommon.states import FINAL_STATUSES, JobStatus
from smaweb.livefeed import JobState, Record
from smaweb.livehub import LiveHub

ENDS = {s.value for s in FINAL_STATUSES} | {JobStatus.SUSPENDED.value}
KEEPALIVE_SECONDS = 15.0
WRITE_BYTES = 64 * 1024


def _event(name: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {strictjson.dumps(data, default=str)}\n\n"


def _record_event(record: Record) -> bytes:
    if record.event is None:  # made once, sent to every follower of the job
        record.event = _event("record", record.data, record.seq).encode()
    return record.event


def _writes(records: list[Record]) -> Iterator[bytes]:
    """The records' events in a few writes of up to WRITE_BYTES (one syscall each)."""
    if len(records) == 1:
        yield _record_event(records[0])
        return
    pending: list[bytes] = []
    size = 0
    for record in records:
        event = _record_event(record)
        pending.append(event)
        size += len(event)
        if size >= WRITE_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def _status_event(state: JobState) -> str:
    return _event("status", {"status": state.status, "status_reason": state.status_reason,
                             "exit_code": state.exit_code, "exception": state.exception})


def job_events(hub: LiveHub, job_id: uuid.UUID, after_seq: int, timeout: float,
               attempt: int | None = None) -> Iterator[str | bytes]:
    """The event stream (a generator the response streams); with `attempt`, only that
    attempt's records."""
    deadline = time.monotonic() + timeout
    last_sent = time.monotonic()
    yield "retry: 1000\n\n"
    shown_status = None
    with hub.feed(job_id) as feed:
        while True:
            view = feed.view(after_seq, hub.factory)
            state = view.state
            if state is None:
                return  # purged meanwhile
            if state.status != shown_status and state.status not in ENDS:
                shown_status = state.status  # a page shows the status as it moves
                yield _event("state", {"status": state.status,
                                       "status_reason": state.status_reason})
            # a follower before the feed's tail (a resume, a slow client) reads its own
            records = hub.read(job_id, after_seq) if view.behind else view.records
            if records:
                shown = records if not attempt else [r for r in records if r.attempt == attempt]
                if shown:
                    yield from _writes(shown)
                after_seq = records[-1].seq
                last_sent = time.monotonic()
                if view.behind:
                    continue
            if state.status in ENDS and view.complete and after_seq >= view.last_seq:
                yield _status_event(state)  # read after the final records were written
                return
            now = time.monotonic()
            if now >= deadline:
                return
            if now - last_sent >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                last_sent = now
            feed.wait(view.version, min(last_sent + KEEPALIVE_SECONDS, deadline) - now)
