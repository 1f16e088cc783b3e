"""`sma job ...` (SMA's Get-SmaJob, Get-SmaJobOutput, Stop-SmaJob, Suspend-SmaJob,
Resume-SmaJob): a job is named by its id or by the first 8 or more hex digits of it."""

from __future__ import annotations

import argparse
import json

from smacli.cli.attempts import AttemptMarkers
from smacli.cli.common import Output, UsageError, add_common_to, client, command, job_exit_code
from smacli.client import Job, SmaClient


def started_by(job: Job) -> str | None:
    """Who started the job, with a schedule's or webhook's name rather than its id."""
    return job.get("started_by_name") or job.get("started_by")


JOB_COLUMNS = [("ID", "id"), ("RUNBOOK", "runbook_name"), ("STATUS", "status"),
               ("STARTED BY", started_by), ("CREATED", "created_at"), ("ENDED", "end_time")]
STREAM_STYLE = {"Error": "red", "Warning": "yellow", "Verbose": "cyan", "Debug": "magenta",
                "Progress": "blue"}


def register(sub: argparse._SubParsersAction) -> None:
    job = sub.add_parser("job", help="jobs (Get-SmaJob, Get-SmaJobOutput, Stop-SmaJob, "
                                     "Suspend-SmaJob, Resume-SmaJob)")
    jsub = job.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = command(jsub, "list", "jobs, newest first (Get-SmaJob)", job_list)
    p.add_argument("--runbook")
    p.add_argument("--status", help="comma-separated statuses, e.g. Running,Failed")
    p.add_argument("--started-by")
    p.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    command(jsub, "show", "a job, with its status history", job_show, "id")
    p = command(jsub, "output", "a job's records (Get-SmaJobOutput)", job_output, "id")
    p.add_argument("--stream", action="append",
                   choices=("Output", "Error", "Warning", "Verbose", "Progress", "Debug"),
                   help="only these streams (repeatable; default all)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new records until the job ends")
    p.add_argument("--attempt", type=int, metavar="N",
                   help="only what attempt N (its Nth run) wrote; without it, a line "
                        "'--- Attempt N — ... ---' marks where each later attempt begins")
    for verb, cmdlet in (("stop", "Stop-SmaJob"), ("suspend", "Suspend-SmaJob"),
                         ("resume", "Resume-SmaJob")):
        command(jsub, verb, f"{verb} a job ({cmdlet})", job_control, "id", verb=verb)
    p = command(jsub, "wait", "wait for a job to end; exit 0 Completed, 1 Failed, "
                              "2 Stopped or Suspended", job_wait, "id")
    p.add_argument("--timeout", type=float)

    add_common_to(jsub)


# --- commands ----------------------------------------------------------------------------

def job_list(args, out: Output):
    if args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    status = args.status.split(",") if args.status else None
    jobs = client(args).jobs(runbook=args.runbook, status=status, started_by=args.started_by)
    items = []
    for job in jobs:
        items.append(job)
        if len(items) >= args.limit:
            break
    out.table(items, JOB_COLUMNS, empty="No jobs.")


def job_show(args, out: Output):
    job = client(args).get_job(args.id)
    if out.json:
        out.data(job)
        return
    out.item(job, [("id", "id"), ("runbook", "runbook_name"), ("status", "status"),
                   ("reason", "status_reason"), ("exception", "exception"),
                   ("parameters", "parameters"), ("arguments", "arguments"),
                   ("worker", "worker"),
                   ("group", "worker_group"), ("started by", started_by),
                   ("parent", "parent_job_id"), ("attempt", "attempt"),
                   ("exit code", "exit_code"), ("cpu seconds", "cpu_seconds"),
                   ("peak memory MB", "peak_memory_mb"), ("engine path", "engine_path"),
                   ("created", "created_at"),
                   ("started", "start_time"), ("ended", "end_time")])
    history = job.get("status_history") or []
    if history:
        out.console.print()
        out.table(history, [("STATUS", "status"), ("TIME", "time"), ("BY", "actor"),
                            ("REASON", "reason")])
    if len(job.attempts or []) > 1:
        out.console.print()
        out.table(job.attempts, [("ATTEMPT", "number"), ("WORKER", "worker"),
                                 ("STARTED", "started_at"), ("ENDED", "ended_at"),
                                 ("ENDED AS", "status"), ("WHY IT STARTED", "cause"),
                                 ("FROM CHECKPOINT OF", "resumed_from_checkpoint_at")])


def job_output(args, out: Output):
    if args.attempt is not None and args.attempt < 1:
        raise UsageError("--attempt must be 1 or more (each run of a job is an attempt)")
    sma = client(args)
    if args.follow:
        return follow(sma, args.id, out, streams=args.stream, attempt=args.attempt)
    records = list(sma.job_records(args.id, streams=args.stream, attempt=args.attempt))
    if out.json:
        out.data(records)
        return 0
    markers = AttemptMarkers(sma, args.id) if args.attempt is None else None
    for record in records:
        if markers is not None:
            markers.before(record)
        _print_record(out, record)
    return 0


def job_control(args, out: Output):
    sma = client(args)
    job = {"stop": sma.stop_job, "suspend": sma.suspend_job,
           "resume": sma.resume_job}[args.verb](args.id)
    out.result(job, f"Job {job.id} is {job.status}.")


def job_wait(args, out: Output):
    sma = client(args)
    return wait_job(sma, sma.get_job(args.id), out, args.timeout)


def wait_job(sma: SmaClient, job: Job, out: Output, timeout: float | None) -> int:
    """Wait for the job to end (unless it has), print how it ended; its exit code."""
    if not job.finished:
        with out.waiting(f"Waiting for job {job.id}..."):
            job = sma.wait_job(job.id, timeout=timeout)
    if out.json:
        out.data(job)
    else:
        _summary(out, job)
    return job_exit_code(job)


def follow(sma: SmaClient, job_id: str, out: Output, streams: list[str] | None = None,
           timeout: float | None = None, attempt: int | None = None) -> int:
    """Print the job's records as they come (resuming a dropped stream), then its end; a
    line marks where each attempt after the first begins."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    final = None
    markers = AttemptMarkers(sma, job_id)
    for event in sma.job_events(job_id, attempt=attempt):
        if event.record is not None:
            if streams and event.record.stream not in streams:
                continue
            if out.json:
                print(json.dumps({"record": event.record.raw}), flush=True)
            else:
                if attempt is None:
                    markers.before(event.record)
                _print_record(out, event.record)
        elif event.status is not None:
            final = event.status
            break
        if deadline is not None and time.monotonic() > deadline:
            raise UsageError(f"job {job_id} did not end within {timeout} s (it goes on)")
    if final is None:
        final = sma.get_job(job_id)
    if out.json:
        print(json.dumps({"job": final.raw}), flush=True)
    else:
        _summary(out, final)
    return job_exit_code(final)


def _print_record(out: Output, record) -> None:
    text = record.text if record.text is not None else json.dumps(record.value)
    if record.stream == "Output":
        print(text, flush=True)
        return
    style = STREAM_STYLE.get(record.stream, "")
    from rich.markup import escape

    out.err.print(f"[{style}]{record.stream}: {escape(text)}[/{style}]" if style
                  else f"{record.stream}: {escape(text)}")


def _summary(out: Output, job: Job) -> None:
    style = {"Completed": "green", "Failed": "red"}.get(job.status or "", "yellow")
    line = f"[{style}]Job {job.id} {job.status}[/{style}]"
    reason = job.exception if job.status == "Failed" and job.exception else job.status_reason
    if reason and job.status != "Completed":
        from rich.markup import escape

        line += f": {escape(reason.strip().splitlines()[-1])}"
    out.err.print(line)


