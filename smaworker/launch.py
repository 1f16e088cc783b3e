"""Starts a claimed job's runbook process: what it runs, its workdir and environment, the
record channel, the sandboxed Popen.

smaworker.runner decides when (after the claim, the job's keys and a lease check) and
supervises what is started here (smaworker.supervise).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from smacommon.settings import Settings
from smaworker.channel import new_tag
from smaworker.claim import ClaimedJob, ClaimedRunbook, ClaimedVersion
from smaworker.engines import Engine, JobContext
from smaworker.resources import JobResources
from smaworker.sandbox import CLEAN_PATH, Sandbox


def content_to_run(job: ClaimedJob, runbook: ClaimedRunbook,
                   version: ClaimedVersion) -> tuple[str, list[dict[str, Any]]]:
    """The content to run and its declared parameters: the draft's for a test job."""
    if job.is_test:
        from smacommon.services.runbooks import draft_parameters

        content = job.test_content or ""
        try:
            declared = draft_parameters(runbook, content)
        except Exception:  # a broken draft: let the interpreter say what is wrong
            declared = []
    else:
        content, declared = version.content, version.parameters
    return content, declared


def host_env(sandbox: Sandbox, workdir: Path) -> dict[str, str]:
    """What the runbook's process starts with whatever the job: a warm host
    (smaworker/warm.py) is started with it before its job is known."""
    return sandbox.env({
        "PATH": os.environ.get("SMA_JOB_PATH") or CLEAN_PATH,
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    })


def job_env(sandbox: Sandbox, settings: Settings, workdir: Path, job_id: str,
            runbook: ClaimedRunbook, token: str) -> dict[str, str]:
    """The environment the runbook's process starts with (before its engine's additions)."""
    return {
        **host_env(sandbox, workdir),
        "SMA_JOB_ID": job_id,
        "SMA_RUNBOOK_NAME": runbook.name,
        "SMA_API_URL": settings.api_url,
        "SMA_JOB_TOKEN": token,
        **({"SMA_API_CA_FILE": sandbox.readable_copy(settings.api_ca_file)}
           if settings.api_ca_file else {}),
        "SMA_LOG_VERBOSE": "1" if runbook.log_verbose else "0",
        "SMA_LOG_PROGRESS": "1" if runbook.log_progress else "0",
        "SMA_LOG_DEBUG": "1" if runbook.log_debug else "0",
    }


def write_workdir(workdir: Path, engine: Engine, content: str, checkpoint: Any,
                  env: dict[str, str]) -> Path:
    """Write the script, and the checkpoint to resume from (named in `env`), into the
    workdir; the script's path."""
    script = workdir / f"runbook{engine.suffix}"
    script.write_text(content, encoding="utf-8")
    if checkpoint is not None:
        restored = workdir / "checkpoint.json"
        restored.write_text(json.dumps(checkpoint), encoding="utf-8")
        env["SMA_CHECKPOINT_FILE"] = str(restored)
    return script


def start_process(engine: Engine, runbook: ClaimedRunbook, *, job_id: str, workdir: Path,
                  script: Path, parameters: Any, declared: list[dict[str, Any]],
                  env: dict[str, str], sandbox: Sandbox, resources: JobResources,
                  arguments: list[str] | None = None, environment: Path | None = None,
                  modules: Path | None = None) -> tuple[subprocess.Popen, int, str]:
    """Start the runbook in its sandbox: the process, the read end of its stdout pipe
    (the caller closes it) and the record channel's tag. `environment`: its own (a
    runbook with requirements); `modules`: the folder of its uploaded modules
    (smaworker.jobmodules)."""
    ctx = JobContext(
        job_id=job_id, workdir=workdir, script_path=script,
        parameters=parameters, declared=declared, arguments=list(arguments or []),
        log_verbose=runbook.log_verbose, log_progress=runbook.log_progress,
        log_debug=runbook.log_debug, env=env, runtime_dir=sandbox.runtime_dir,
        python=sandbox.python, environment=environment, modules=modules)
    argv, extra = engine.command(ctx)
    # an environment's packages may run code as the interpreter starts (.pth files): it
    # starts as the job's user, never as root that drops its rights itself
    return spawn(engine, argv, {**ctx.env, **extra}, workdir, sandbox, resources,
                 drops_itself=engine.drops_privileges and environment is None)


def spawn(engine: Engine, argv: list[str], env: dict[str, str], workdir: Path,
          sandbox: Sandbox, resources: JobResources, drops_itself: bool,
          pass_fds: tuple[int, ...] = (), keep: tuple[str, ...] = ()
          ) -> tuple[subprocess.Popen, int, str]:
    """Start `argv` in the job's sandbox, limits and process group, with the record
    channel: the process, the read end of its stdout pipe (the caller closes it) and the
    channel's tag. `pass_fds`: more descriptors it inherits (the caller closes them);
    `keep`: see `Sandbox.command`."""
    # stdout is a pipe of ours, so the record channel can be a second descriptor of it
    # (records and lines in one ordered stream: see smaworker.channel)
    stdout_r, stdout_w = os.pipe()
    tag = new_tag()
    env = {**env, "SMA_RECORD_FD": str(stdout_w), "SMA_RECORD_TAG": tag}
    try:
        argv = resources.apply(engine, argv, env)
        passwd_fd = resources.passwd_fd(workdir)
        argv, options, env = sandbox.command(argv, workdir, env, drops_itself=drops_itself,
                                             uid=resources.uid, passwd_fd=passwd_fd,
                                             keep=keep)
        options.update(resources.popen_options(options.get("preexec_fn")))
        fds = (stdout_w, *pass_fds, *(() if passwd_fd is None else (passwd_fd,)))
        proc = subprocess.Popen(
            argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=stdout_w, stderr=subprocess.PIPE, pass_fds=fds,
            start_new_session=True, close_fds=True, **options)
    except BaseException:
        os.close(stdout_r)
        raise
    finally:
        os.close(stdout_w)
        resources.started()
    return proc, stdout_r, tag
