"""Uploaded PowerShell modules and Bash libraries on the worker: fetched by hash with the
job's token, cached where jobs read but cannot write, a Bash job sourcing them from
$SMA_MODULES, a PowerShell job finding them on PSModulePath."""

from __future__ import annotations

import stat
import sys

import pytest

from smacommon.embedded_redis import free_port
from smacommon.settings import load_settings
from smaworker.engines import get_engine
from smaworker.engines.base import RUNTIME_DIR, JobContext
from smaworker.jobmodules import fetcher, listed, prepare
from smaworker.modulecache import ModuleCache
from smaworker.sandbox import Sandbox
from tests.conftest import wait_for
from tests.modulefiles import manifest, powershell_zip, upload, zip_bytes

SLEEPER = "import os, time\nprint(os.environ['SMA_JOB_TOKEN'], flush=True)\ntime.sleep(120)\n"


def _library(version: str) -> bytes:
    return (f"# Greetings for runbooks\n# version: {version}\n"
            f"greet() {{ echo \"hello $1 from {version}\"; }}\n").encode()


def test_a_bash_runbook_sources_uploaded_libraries_it_cannot_change(api, worker):
    for version in ("2.1.0", "2.10.0", "2.9.0"):
        assert upload(api, _library(version), "greetings.sh").status_code == 201
    script = ('source "$SMA_MODULES/greetings.sh"; greet world\n'
              'source "$SMA_MODULES/greetings/2.1.0.sh"; greet old\n'
              'if touch "$SMA_MODULES/mine" 2>/dev/null || rm -f "$SMA_MODULES/greetings.sh"; '
              'then echo writable; else echo read-only; fi\n')
    job = api.run(script, runbook_type="bash")
    assert job["status"] == "Completed", job
    assert api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines() == [
        "hello world from 2.10.0", "hello old from 2.1.0", "read-only"]
    assert api.delete("/api/v1/modules/greetings/2.10.0").status_code == 204
    job = api.run('source "$SMA_MODULES/greetings.sh"; greet again\n'
                  'test -e "$SMA_MODULES/greetings/2.10.0.sh" || echo gone\n',
                  runbook_type="bash")
    assert api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines() == [
        "hello again from 2.9.0", "gone"]


@pytest.fixture
def job_token(api, worker):
    """A running job's token (the job sleeps until the test ends)."""
    api.create_runbook("holder", content=SLEEPER)
    job = api.start("holder")
    yield wait_for(lambda: next(iter(r["text"] for r in api.records(job["id"])), None),
                   what="the job's token in its output")
    api.post(f"/api/v1/jobs/{job['id']}/stop")


def test_powershell_modules_unpack_where_psmodulepath_finds_them(api, services, job_token,
                                                                 tmp_path):
    assert upload(api, powershell_zip("AcmeTools", "1.2.3"), "a.zip").status_code == 201
    assert upload(api, powershell_zip("Saved", "4.0", versioned=True), "b.zip"
                  ).status_code == 201
    # Windows PowerShell 5.1's Compress-Archive separates folders with backslashes
    windows = zip_bytes({"Win\\Win.psd1": manifest("1.0", "Win.psm1"),
                         "Win\\Private\\Helpers.ps1": "function Get-Help2 {}\n"})
    assert upload(api, windows, "Win.zip").status_code == 201
    settings = load_settings()
    cache = ModuleCache(tmp_path / "cache", 10 << 20)
    modules = listed(settings, job_token, "powershell")
    folder = cache.powershell(modules, fetcher(settings, job_token))
    psd1 = folder / "AcmeTools" / "1.2.3" / "AcmeTools.psd1"
    assert psd1.read_text().startswith("#\n# Module manifest")
    assert (folder / "Saved" / "4.0" / "Saved.psm1").is_file()
    assert (folder / "Win" / "1.0" / "Private" / "Helpers.ps1").is_file()
    assert stat.S_IMODE(psd1.stat().st_mode) == 0o644
    assert stat.S_IMODE((folder / "AcmeTools").stat().st_mode) == 0o755
    assert stat.S_IMODE((cache.root / ".lock").stat().st_mode) == 0o600

    # a PowerShell job's PSModulePath: sma's runtime, these modules, then the host's
    ctx = JobContext(job_id="j", workdir=tmp_path, script_path=tmp_path / "r.ps1",
                     parameters={}, declared=[], env={"PSModulePath": "/opt/host"},
                     modules=folder)
    (tmp_path / "r.ps1").write_text("'x'\n")
    _, env = get_engine("powershell").command(ctx)
    assert env["PSModulePath"].split(":") == [str(RUNTIME_DIR), str(folder), "/opt/host"]

    assert api.delete("/api/v1/modules/saved/4.0").status_code == 204
    newer = cache.powershell(listed(settings, job_token, "powershell"),
                             fetcher(settings, job_token))
    assert sorted(p.name for p in newer.iterdir()) == ["AcmeTools", "Win"]
    # a job that started with the earlier set reads it to its end
    assert (folder / "Saved" / "4.0" / "Saved.psd1").is_file()
    assert sorted(p.name for p in (cache.root / "powershell" / "store").iterdir()) == sorted(
        m.sha256 for m in modules if m.name != "Saved")


def test_without_the_service_a_job_gets_what_the_worker_has(api, services, job_token,
                                                            tmp_path):
    assert upload(api, _library("1.0"), "greetings.sh").status_code == 201
    sandbox = Sandbox(None, None, None, None, None, RUNTIME_DIR, sys.executable)
    settings = load_settings(data_dir=tmp_path)
    view, warning = prepare(settings, sandbox, job_token, "bash")
    assert warning is None and (view / "greetings.sh").read_bytes() == _library("1.0")
    away = load_settings(data_dir=tmp_path, api_url=f"http://127.0.0.1:{free_port()}")
    same, warning = prepare(away, sandbox, job_token, "bash")
    assert same == view and "could not be brought up to date" in warning
    nothing, warning = prepare(away, sandbox, job_token, "powershell")
    assert nothing is None and "cannot be reached" in warning
    assert prepare(settings, sandbox, job_token, "python") == (None, None)
    wrong, warning = prepare(settings, sandbox, "smajob_not_a_token", "bash")
    assert wrong == view and "401" in warning


@pytest.mark.pwsh
def test_a_powershell_runbook_imports_an_uploaded_module(api, worker):
    assert upload(api, powershell_zip("AcmeTools", "1.2.3"), "a.zip").status_code == 201
    job = api.run("Import-Module AcmeTools\nGet-Tool\n"
                  "(Get-Module AcmeTools).Version.ToString()\n", runbook_type="powershell")
    assert job["status"] == "Completed", job
    assert api.get(f"/api/v1/jobs/{job['id']}/output").get_data(as_text=True).splitlines() == [
        "tool", "1.2.3"]
