"""`sma runbook ...` (SMA's Get-SmaRunbook, Import-SmaRunbook, Publish-SmaRunbook,
Start-SmaRunbook); `sma job ...` is smacli.cli.jobs."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from smacli.cli.common import (
    Output,
    UsageError,
    add_common_to,
    client,
    command,
    create_or_change,
    parse_pairs,
    refused,
)
from smacli.cli.jobs import follow, wait_job
from smacli.client import MAX_WAIT, SmaApiError

TYPES_BY_SUFFIX = {".py": "python", ".sh": "bash", ".bash": "bash", ".ps1": "powershell"}


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

    p = command(rsub, "list", "list runbooks (Get-SmaRunbook)", runbook_list)
    p.add_argument("--name", help="names containing this text")
    p.add_argument("--tag")
    p.add_argument("--type", choices=("python", "bash", "powershell"))

    p = command(rsub, "show", "a runbook's settings (--content: its published script)",
                runbook_show, "name")
    p.add_argument("--content", action="store_true", help="print the published content")
    p.add_argument("--draft", action="store_true", help="print the draft's content")

    p = command(rsub, "import", "create a runbook from a file, or replace its draft "
                                "(Import-SmaRunbook)", runbook_import)
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

    p = command(rsub, "edit", "change a runbook's draft from FILE, or in $EDITOR",
                runbook_edit, "name")
    p.add_argument("file", nargs="?", type=Path)

    command(rsub, "publish", "publish the draft as a new version (Publish-SmaRunbook)",
            runbook_publish, "name")

    p = command(rsub, "start", "start the published version as a job "
                               "(Start-SmaRunbook); positional arguments after --",
                runbook_start, "name",
                usage="%(prog)s NAME [options] [-- ARGUMENT ...]",
                epilog="Everything after -- is passed to the runbook as positional "
                       "arguments, in order (sys.argv[1:] of a Python script, $1 $2 "
                       "... in Bash): sma runbook start cleanup -- -s web01 /tmp")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a parameter (repeatable; JSON values such as 3 or true are typed)")
    p.add_argument("--params-json", metavar="JSON", help="all parameters as a JSON object")
    p.add_argument("--group", help="worker group (default: the runbook's)")
    p.add_argument("--wait", action="store_true",
                   help="wait for the job to end; exit 0 Completed, 1 Failed, 2 Stopped")
    p.add_argument("--follow", "-f", action="store_true",
                   help="print its records live until it ends (exit code as --wait)")
    p.add_argument("--timeout", type=float, help="stop waiting after this many seconds")

    command(rsub, "versions", "published versions", runbook_versions, "name")

    p = command(rsub, "delete", "delete a runbook, its versions and jobs", runbook_delete,
                "name")
    p.add_argument("--yes", action="store_true", help="do not ask")

    add_common_to(rsub)


# --- runbooks ----------------------------------------------------------------------------

def runbook_list(args, out: Output):
    items = client(args).runbooks(name=args.name, tag=args.tag, runbook_type=args.type)
    out.table(items, [("NAME", "name"), ("TYPE", "runbook_type"),
                      ("VERSION", lambda r: (r.published_version or {}).get("number")),
                      ("DRAFT", "has_draft"), ("TAGS", "tags"), ("GROUP", "worker_group"),
                      ("MODIFIED", "modified_at")], empty="No runbooks.")


def runbook_show(args, out: Output):
    sma = client(args)
    rb = sma.get_runbook(args.name)
    if args.draft:
        if not rb.has_draft:
            raise refused(404, f"Runbook {args.name!r} has no draft; make one with "
                               f"`sma runbook edit {args.name}`.")
        sys.stdout.write(_ensure_newline(sma.get_draft(args.name)))
        return
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
        try:
            version = sma.publish_runbook(name)
        except SmaApiError as exc:
            raise refused(exc.status, f"{action} runbook {name!r}, but did not publish it: "
                          f"{exc.message} The draft is saved; fix it with `sma runbook edit "
                          f"{name}` or import it again, then `sma runbook publish "
                          f"{name}`.") from None
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
        rb = sma.get_runbook(args.name)
        if rb.has_draft:
            current = sma.get_draft(args.name)
        elif rb.published_version:  # no draft: start from the published script
            current = sma.get_runbook_version(args.name,
                                              rb.published_version["number"]).content or ""
        else:
            current = ""
        suffix = {"python": ".py", "bash": ".sh", "powershell": ".ps1"}.get(
            rb.runbook_type, ".txt")
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
    sma = client(args)
    try:
        version = sma.publish_runbook(args.name)
    except SmaApiError as exc:
        if exc.status == 404 and not sma.get_runbook(args.name).has_draft:
            raise refused(404, f"Runbook {args.name!r} has no draft to publish; change it "
                               f"with `sma runbook edit {args.name}` first.") from None
        raise
    pinned = (version.requirements or {}).get("pinned")
    out.result(version, f"Published {args.name!r} version {version.number}"
               + (f", requirements pinned: {', '.join(pinned)}." if pinned else "."))


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
    began = time.monotonic()
    # --wait: the service answers the start as soon as the job ends (woken by the worker's
    # announcement); polling takes over only past the longest wait it holds a request for
    wait = min(args.timeout, MAX_WAIT) if args.timeout is not None else MAX_WAIT
    wait = wait if args.wait and not args.follow else None
    try:
        with out.waiting("Waiting for the job to end...") if wait else nullcontext():
            job = sma.start_runbook(args.name, parameters, worker_group=args.group,
                                    arguments=getattr(args, "arguments", None), wait=wait)
    except SmaApiError as exc:
        if exc.status == 409 and not sma.get_runbook(args.name).published_version:
            raise refused(409, f"Runbook {args.name!r} has no published version; publish "
                               f"it with `sma runbook publish {args.name}`.") from None
        raise
    if args.follow:
        return follow(sma, job.id, out, timeout=args.timeout)
    if args.wait:
        left = None if args.timeout is None else args.timeout - (time.monotonic() - began)
        if left is not None and left <= 0 and not job.finished:
            raise SmaApiError(0, f"Job {job.id} is still {job.status} after {args.timeout:g} s.")
        return wait_job(sma, job, out, left)
    if out.json:
        out.data(job)
    else:
        out.console.print(job.id)
        out.done(f"Started job {job.id} ({job.status}); follow it with "
                 f"`sma job output {job.id} --follow`.")
    return 0


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") or not text else text + "\n"
