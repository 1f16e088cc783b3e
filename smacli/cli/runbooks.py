"""`sma runbook ...` and `sma job ...` (SMA's Get-SmaRunbook, Import-SmaRunbook,
Publish-SmaRunbook, Start-SmaRunbook, Get-SmaJob, Get-SmaJobOutput, Stop-SmaJob, ...)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from smacli.cli.attempts import AttemptMarkers
from smacli.cli.common import (
    Output,
    UsageError,
    add_common,
    client,
    create_or_change,
    job_exit_code,
    parse_pairs,
)
from smacli.client import Job, SmaApiError, SmaClient

TYPES_BY_SUFFIX = {".py": "python", ".sh": "bash", ".bash": "bash", ".ps1": "powershell"}
JOB_COLUMNS = [("ID", "id"), ("RUNBOOK", "runbook_name"), ("STATUS", "status"),
               ("STARTED BY", "started_by"), ("CREATED", "created_at"), ("ENDED", "end_time")]
STREAM_STYLE = {"Error": "red", "Warning": "yellow", "Verbose": "cyan", "Debug": "magenta",
                "Progress": "blue"}


_LIMIT_OPTIONS = {
    "max_memory_mb": "memory limit of its jobs in MB (default: the worker's "
                     "SMA_JOB_MEMORY_MB)",
    "max_processes": "process limit of its jobs (default: SMA_JOB_MAX_PROCESSES)",
    "max_open_files": "open-file limit of its jobs (default: SMA_JOB_MAX_OPEN_FILES)",
    "max_cpu_seconds": "CPU time limit of its jobs' processes (default: SMA_JOB_CPU_SECONDS)",
    "max_file_mb": "largest file its jobs may write, in MB (default: SMA_JOB_MAX_FILE_MB)",
}


def _limits(rb) -> str:
    units = {"max_memory_mb": "MB memory", "max_processes": "processes",
             "max_open_files": "open files", "max_cpu_seconds": "CPU s",
             "max_file_mb": "MB per file"}
    shown = [f"{rb.get(name)} {unit}" for name, unit in units.items()
             if rb.get(name) is not None]
    return ", ".join(shown) or "the worker's defaults"


def register(sub: argparse._SubParsersAction) -> None:
    rb = sub.add_parser("runbook", help="runbooks (Get-SmaRunbook, Import-SmaRunbook, "
                                        "Publish-SmaRunbook, Start-SmaRunbook)")
    rsub = rb.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = rsub.add_parser("list", help="list runbooks (Get-SmaRunbook)")
    p.add_argument("--name", help="names containing this text")
    p.add_argument("--tag")
    p.add_argument("--type", choices=("python", "bash", "powershell"))
    p.set_defaults(func=runbook_list)

    p = rsub.add_parser("show", help="a runbook's settings (--content: its published script)")
    p.add_argument("name")
    p.add_argument("--content", action="store_true", help="print the published content")
    p.add_argument("--draft", action="store_true", help="print the draft's content")
    p.set_defaults(func=runbook_show)

    p = rsub.add_parser("import", help="create a runbook from a file, or replace its draft "
                                       "(Import-SmaRunbook)")
    p.add_argument("file", type=Path)
    p.add_argument("--name", help="runbook name (default: the file name without suffix)")
    p.add_argument("--type", choices=("python", "bash", "powershell"),
                   help="runbook type (default: from the suffix .py, .sh, .ps1)")
    p.add_argument("--description")
    p.add_argument("--tag", action="append", dest="tags", help="a tag (repeatable)")
    p.add_argument("--group", help="worker group of its jobs")
    for option, what in _LIMIT_OPTIONS.items():
        p.add_argument(f"--{option.replace('_', '-')}", type=int, metavar="N", help=what)
    p.add_argument("--publish", action="store_true", help="publish it at once")
    p.set_defaults(func=runbook_import)

    p = rsub.add_parser("edit", help="change a runbook's draft from FILE, or in $EDITOR")
    p.add_argument("name")
    p.add_argument("file", nargs="?", type=Path)
    p.set_defaults(func=runbook_edit)

    p = rsub.add_parser("publish", help="publish the draft as a new version "
                                        "(Publish-SmaRunbook)")
    p.add_argument("name")
    p.set_defaults(func=runbook_publish)

    p = rsub.add_parser("start", help="start the published version as a job "
                                      "(Start-SmaRunbook)")
    p.add_argument("name")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a parameter (repeatable; JSON values such as 3 or true are typed)")
    p.add_argument("--params-json", metavar="JSON", help="all parameters as a JSON object")
    p.add_argument("--group", help="worker group (default: the runbook's)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the job to end; exit 0 Completed, 1 Failed, 2 Stopped")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print its records live until it ends (exit code as --wait)")
    p.add_argument("--timeout", type=float, help="stop waiting after this many seconds")
    p.set_defaults(func=runbook_start)

    p = rsub.add_parser("versions", help="published versions")
    p.add_argument("name")
    p.set_defaults(func=runbook_versions)

    p = rsub.add_parser("delete", help="delete a runbook, its versions and jobs")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.set_defaults(func=runbook_delete)

    job = sub.add_parser("job", help="jobs (Get-SmaJob, Get-SmaJobOutput, Stop-SmaJob, "
                                     "Suspend-SmaJob, Resume-SmaJob)")
    jsub = job.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = jsub.add_parser("list", help="jobs, newest first (Get-SmaJob)")
    p.add_argument("--runbook")
    p.add_argument("--status", help="comma-separated statuses, e.g. Running,Failed")
    p.add_argument("--started-by")
    p.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    p.set_defaults(func=job_list)
    p = jsub.add_parser("show", help="a job, with its status history")
    p.add_argument("id")
    p.set_defaults(func=job_show)
    p = jsub.add_parser("output", help="a job's records (Get-SmaJobOutput)")
    p.add_argument("id")
    p.add_argument("--stream", action="append",
                   choices=("Output", "Error", "Warning", "Verbose", "Progress", "Debug"),
                   help="only these streams (repeatable; default all)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new records until the job ends")
    p.add_argument("--attempt", type=int, metavar="N",
                   help="only what attempt N (its Nth run) wrote; without it, a line "
                        "'--- Attempt N — ... ---' marks where each later attempt begins")
    p.set_defaults(func=job_output)
    for verb, cmdlet in (("stop", "Stop-SmaJob"), ("suspend", "Suspend-SmaJob"),
                         ("resume", "Resume-SmaJob")):
        p = jsub.add_parser(verb, help=f"{verb} a job ({cmdlet})")
        p.add_argument("id")
        p.set_defaults(func=job_control, verb=verb)
    p = jsub.add_parser("wait", help="wait for a job to end; exit 0 Completed, 1 Failed, "
                                     "2 Stopped or Suspended")
    p.add_argument("id")
    p.add_argument("--timeout", type=float)
    p.set_defaults(func=job_wait)

    for parser in (*rsub.choices.values(), *jsub.choices.values()):
        add_common(parser)


# --- runbooks ----------------------------------------------------------------------------

def runbook_list(args, out: Output):
    items = client(args).runbooks(name=args.name, tag=args.tag, runbook_type=args.type)
    out.table(items, [("NAME", "name"), ("TYPE", "runbook_type"),
                      ("VERSION", lambda r: (r.published_version or {}).get("number")),
                      ("DRAFT", "has_draft"), ("TAGS", "tags"), ("GROUP", "worker_group"),
                      ("MODIFIED", "modified_at")], empty="No runbooks.")


def runbook_show(args, out: Output):
    sma = client(args)
    if args.draft:
        sys.stdout.write(_ensure_newline(sma.get_draft(args.name)))
        return
    rb = sma.get_runbook(args.name)
    if args.content:
        if not rb.published_version:
            raise UsageError(f"runbook {args.name!r} is not published; see --draft")
        version = sma.get_runbook_version(args.name, rb.published_version["number"])
        sys.stdout.write(_ensure_newline(version.content or ""))
        return
    out.item(rb, [("name", "name"), ("type", "runbook_type"), ("description", "description"),
                  ("tags", "tags"), ("worker group", "worker_group"),
                  ("published version", lambda r: (r.published_version or {}).get("number")),
                  ("parameters", lambda r: (r.published_version or {}).get("parameters")),
                  ("draft", "has_draft"), ("timeout", "timeout_seconds"),
                  ("limits", _limits), ("modified", "modified_at"), ("id", "id")])


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it as UTF-8 text ({exc})") from None


def runbook_import(args, out: Output):
    content = _read(args.file)
    name = args.name or args.file.stem
    runbook_type = args.type or TYPES_BY_SUFFIX.get(args.file.suffix.lower())
    if runbook_type is None:
        raise UsageError(f"cannot tell the runbook type of {args.file.name}: pass --type "
                         "python, bash or powershell")
    sma = client(args)
    settings = {k: v for k, v in (("description", args.description), ("tags", args.tags),
                                  ("worker_group", args.group),
                                  *((name, getattr(args, name)) for name in _LIMIT_OPTIONS))
                if v is not None}
    def update_draft():
        existing = sma.get_runbook(name)
        if existing.runbook_type != runbook_type:
            raise UsageError(f"runbook {name!r} exists as a {existing.runbook_type} runbook, "
                             f"not {runbook_type}")
        sma.set_draft(name, content)
        if settings:
            sma.update_runbook(name, **settings)
        return sma.get_runbook(name)

    rb, verb = create_or_change(
        lambda: sma.create_runbook(name, runbook_type, content, **settings), update_draft)
    action = "Created" if verb == "Created" else "Updated the draft of"
    if args.publish:
        version = sma.publish_runbook(name)
        out.done(f"{action} runbook {name!r} and published version {version.number}.")
        rb = sma.get_runbook(name)
    else:
        out.done(f"{action} runbook {name!r} (draft; `sma runbook publish {name}` to use it).")
    if out.json:
        out.data(rb)


def runbook_edit(args, out: Output):
    sma = client(args)
    if args.file is not None:
        content = _read(args.file)
    else:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            raise UsageError("give a FILE, or set EDITOR to edit the draft in place")
        try:
            current = sma.get_draft(args.name)
        except SmaApiError as exc:
            if exc.status != 404 or "draft" not in exc.message.lower():
                raise
            rb = sma.get_runbook(args.name)
            current = sma.get_runbook_version(args.name, rb.published_version["number"]) \
                .content if rb.published_version else ""
        suffix = {"python": ".py", "bash": ".sh", "powershell": ".ps1"}.get(
            sma.get_runbook(args.name).runbook_type, ".txt")
        with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False,
                                         encoding="utf-8") as fh:
            fh.write(current)
        try:
            if subprocess.call([*editor.split(), fh.name]) != 0:
                raise UsageError("the editor failed; the draft is unchanged")
            content = Path(fh.name).read_text(encoding="utf-8")
        finally:
            os.unlink(fh.name)
        if content == current:
            out.done("No change.")
            return
    sma.set_draft(args.name, content)
    out.done(f"Draft of {args.name!r} saved; `sma runbook publish {args.name}` to use it.")


def runbook_publish(args, out: Output):
    version = client(args).publish_runbook(args.name)
    out.result(version, f"Published {args.name!r} version {version.number}.")


def runbook_versions(args, out: Output):
    out.table(client(args).runbook_versions(args.name),
              [("VERSION", "number"), ("PUBLISHED", "published_at"), ("BY", "published_by"),
               ("SHA-256", lambda v: (v.get("content_sha256") or "")[:12]),
               ("PARAMETERS", lambda v: ", ".join(p["name"] for p in v.parameters or []))],
              empty="No published versions.")


def runbook_delete(args, out: Output):
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Delete runbook {args.name!r} with its versions and jobs? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise UsageError("not deleted")
    client(args).delete_runbook(args.name)
    out.done(f"Deleted runbook {args.name!r}.")


def runbook_start(args, out: Output):
    parameters = {}
    if args.params_json:
        try:
            parameters = json.loads(args.params_json)
        except ValueError as exc:
            raise UsageError(f"--params-json is not JSON: {exc}") from None
        if not isinstance(parameters, dict):
            raise UsageError("--params-json must be a JSON object of name: value")
    parameters.update(parse_pairs(args.param))
    sma = client(args)
    job = sma.start_runbook(args.name, parameters, worker_group=args.group)
    if args.follow:
        return follow(sma, job.id, out, timeout=args.timeout)
    if args.wait:
        return _wait(sma, job, out, args.timeout)
    if out.json:
        out.data(job)
    else:
        out.console.print(job.id)
        out.done(f"Started job {job.id} ({job.status}); follow it with "
                 f"`sma job output {job.id} --follow`.")
    return 0


# --- jobs --------------------------------------------------------------------------------

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
                   ("parameters", "parameters"), ("worker", "worker"),
                   ("group", "worker_group"), ("started by", "started_by"),
                   ("parent", "parent_job_id"), ("attempt", "attempt"),
                   ("exit code", "exit_code"), ("cpu seconds", "cpu_seconds"),
                   ("peak memory MB", "peak_memory_mb"), ("created", "created_at"),
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
    return _wait(sma, sma.get_job(args.id), out, args.timeout)


def _wait(sma: SmaClient, job: Job, out: Output, timeout: float | None) -> int:
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


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") or not text else text + "\n"
