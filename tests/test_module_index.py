"""The uploaded Python modules as a PEP 503 simple index: what pip and uv read, with an API
token or a running job's token as HTTP basic auth's password; a real uv resolves from it."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys

from uv import find_uv_bin

from smacommon.settings import load_settings
from smaworker.jobmodules import module_index_url
from tests.conftest import ADMIN_TOKEN, Api, wait_for
from tests.modulefiles import make_sdist, upload
from tests.pkgindex import make_wheel

INDEX = "/api/v1/modules/simple/"
SLEEPER = "import os, time\nprint(os.environ['SMA_JOB_TOKEN'], flush=True)\ntime.sleep(120)\n"


def _basic(token: str, user: str = "sma") -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{token}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def test_the_index_lists_python_modules_and_their_files_with_hashes(api, tmp_path):
    wheel = make_wheel(tmp_path, "MyCompany-Tools", "1.4")
    sdist = make_sdist(tmp_path, "mycompany-tools", "1.5")
    for path in (wheel, sdist):
        assert upload(api, path.read_bytes(), path.name).status_code == 201
    assert upload(api, b"# version: 1\nf() { :; }\n", "shell-lib.sh").status_code == 201
    root = api.get(INDEX)
    assert root.status_code == 200 and root.mimetype == "text/html"
    assert re.findall(r'href="([^"]+)"', root.get_data(as_text=True)) == ["mycompany-tools/"]
    page = api.get(f"{INDEX}MyCompany_Tools/")  # any spelling of the name
    links = re.findall(r'href="([^"#]+)#sha256=([0-9a-f]{64})"', page.get_data(as_text=True))
    assert links == [(wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest()),
                     (sdist.name, hashlib.sha256(sdist.read_bytes()).hexdigest())]
    for filename, sha256 in links:
        got = api.get(f"{INDEX}mycompany-tools/{filename}")
        assert got.status_code == 200 and hashlib.sha256(got.data).hexdigest() == sha256
    assert api.get(f"{INDEX}shell-lib/").status_code == 404  # only Python modules
    assert api.get(f"{INDEX}nothing/").status_code == 404
    assert api.get(f"{INDEX}mycompany-tools/other-1.0.tar.gz").status_code == 404


def test_the_index_takes_a_token_as_basic_auth(client, api):
    reader = api.post("/api/v1/tokens", json={"name": "pip", "role": "reader"}).get_json()
    assert client.get(INDEX, headers=_basic(reader["token"], "anyone")).status_code == 200
    assert client.get(INDEX, headers=_basic(ADMIN_TOKEN, "")).status_code == 200
    wrong = client.get(INDEX, headers=_basic("sma_wrong"))
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith('Basic realm="sma"')
    missing = client.get(INDEX)
    assert missing.status_code == 401
    assert "http://sma:<token>@host/api/v1/modules/simple/" in missing.get_json()["message"]
    # elsewhere a browser's remembered basic credentials are never enough
    assert client.get("/api/v1/modules", headers=_basic(ADMIN_TOKEN)).status_code == 401
    assert client.delete(f"{INDEX}x/", headers=_basic(ADMIN_TOKEN)).status_code == 401


def _uv(*args: str, cwd, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "UV_CACHE_DIR": str(cwd / "uv-cache"),
           "UV_PYTHON_DOWNLOADS": "never", **(env_extra or {})}
    return subprocess.run([find_uv_bin(), *args, "--no-config"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_uv_resolves_and_installs_an_uploaded_wheel_from_the_index(api, services, tmp_path):
    base = make_wheel(tmp_path / "w", "mycompany-base", "1.0")
    tools = make_wheel(tmp_path / "w", "mycompany-tools", "1.4",
                       files={"mycompany_tools/__init__.py":
                              "from mycompany_base import VERSION as BASE\nVERSION = '1.4'\n"},
                       requires=["mycompany-base>=1"])
    for path in (base, tools):
        assert upload(api, path.read_bytes(), path.name).status_code == 201
    token = api.post("/api/v1/tokens", json={"name": "uv", "role": "reader"}).get_json()["token"]
    index = f"http://sma:{token}@{services['api_url'].split('://', 1)[1]}{INDEX}"
    (tmp_path / "requirements.in").write_text("mycompany-tools==1.4\n")
    compiled = _uv("pip", "compile", "requirements.in", "--index-url", index,
                   "--python", sys.executable, "--no-header", "--no-annotate", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    assert compiled.stdout.split() == ["mycompany-base==1.0", "mycompany-tools==1.4"]
    installed = _uv("pip", "install", "--target", str(tmp_path / "site"), "--index-url", index,
                    "--python", sys.executable, "mycompany-tools==1.4", cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    run = subprocess.run([sys.executable, "-c", "import mycompany_tools as t; "
                          "print(t.VERSION, t.BASE)"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site")}, timeout=60)
    assert run.stdout.split() == ["1.4", "1.0"], run.stderr
    wrong = index.replace(token, "sma_not_a_token")
    refused = _uv("pip", "compile", "requirements.in", "--index-url", wrong,
                  "--python", sys.executable, cwd=tmp_path)
    assert refused.returncode != 0 and "401" in refused.stderr


def test_a_running_jobs_token_reads_the_index_and_nothing_else(api, client, worker, tmp_path):
    wheel = make_wheel(tmp_path, "jobtool", "1.0")
    assert upload(api, wheel.read_bytes(), wheel.name).status_code == 201
    api.create_runbook("holder", content=SLEEPER)
    job = api.start("holder")
    token = wait_for(lambda: next(iter(r["text"] for r in api.records(job["id"])), None),
                     what="the job's token in its output")
    assert client.get(f"{INDEX}jobtool/", headers=_basic(token)).status_code == 200
    as_job = Api(client, token)
    assert as_job.get(f"{INDEX}jobtool/{wheel.name}").data == wheel.read_bytes()
    refused = as_job.get("/api/v1/modules")
    assert refused.status_code == 403 and "module index" in refused.get_json()["message"]
    # as a worker builds the job's environment: the index in uv's environment, not its argv
    (tmp_path / "requirements.in").write_text("jobtool==1.0\n")
    compiled = _uv("pip", "compile", "requirements.in", "--python", sys.executable,
                   "--no-header", "--no-annotate", cwd=tmp_path,
                   env_extra={"UV_INDEX_URL": module_index_url(load_settings(), token)})
    assert compiled.returncode == 0, compiled.stderr
    assert compiled.stdout.split() == ["jobtool==1.0"]
    assert api.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 202
    api.wait(job["id"], statuses=("Stopped",))
    assert client.get(INDEX, headers=_basic(token)).status_code == 401
