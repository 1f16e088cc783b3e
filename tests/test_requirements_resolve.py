"""Publishing resolves a Python runbook's inline requirements (PEP 723) to a pinned set, with
real uv (and pip) against the tests' own package index; a draft test resolves the draft's."""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
import uuid
from contextlib import contextmanager

import pytest

from smacommon.embedded_redis import free_port
from smacommon.errors import Conflict, RequirementsUnresolvable, ResolverUnavailable
from smacommon.models import Runbook
from smacommon.requirements import environment_key
from smacommon.resolver import pip_report, resolve, worker_python
from smacommon.services.requirements import ResolvedDraft
from smacommon.settings import load_settings
from tests.conftest import _reset_settings
from tests.contract import CheckedApi, Contract
from tests.pkgindex import make_wheel

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def script(*dependencies: str, requires_python: str = ">=3.10") -> str:
    listed = ", ".join(f'"{d}"' for d in dependencies)
    return ("# /// script\n"
            f"# dependencies = [{listed}]\n"
            f'# requires-python = "{requires_python}"\n'
            "# ///\n"
            "print('hi')\n")


@contextmanager
def index_url(url: str):
    """SMA_PIP_INDEX_URL for the settings read meanwhile (an app made inside reads it)."""
    old = os.environ.get("SMA_PIP_INDEX_URL")
    os.environ["SMA_PIP_INDEX_URL"] = url
    _reset_settings()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SMA_PIP_INDEX_URL", None)
        else:
            os.environ["SMA_PIP_INDEX_URL"] = old
        _reset_settings()


def make_api(services) -> CheckedApi:
    """A fresh app on the current settings, every answer checked against its document."""
    from smaweb import create_app

    client = create_app({"TESTING": True}).test_client()
    return CheckedApi(client, Contract(client.get("/api/openapi.json").get_json()))


@pytest.fixture
def index(package_index, services):
    """The local index, with a package and a dependency of it in two versions; the names
    are new for each test, so nothing cached by an earlier one answers."""
    tag = uuid.uuid4().hex[:8]
    package_index.names = (f"cowsay-{tag}", f"texttable-{tag}")
    cow, table = package_index.names
    package_index.add(table, "1.6.0")
    package_index.add(table, "1.7.0")
    package_index.add(cow, "6.1", requires=[f"{table}>=1.0"])
    with index_url(package_index.simple):
        yield package_index


@pytest.fixture
def api(index, services):
    return make_api(services)


def create(api, content: str, name: str | None = None, runbook_type: str = "python") -> str:
    name = name or f"rb-{uuid.uuid4().hex[:8]}"
    made = api.post("/api/v1/runbooks", json={"name": name, "runbook_type": runbook_type,
                                              "content": content})
    assert made.status_code == 201, made.get_json()
    return name


def test_publish_pins_the_set_and_jobs_carry_it(api, index):
    cow, table = index.names
    name = create(api, script(f"{cow}==6.1"))
    published = api.post(f"/api/v1/runbooks/{name}/publish")
    assert published.status_code == 201, published.get_json()
    pinned = sorted([f"{cow}==6.1", f"{table}==1.7.0"])  # the dependency, at its newest
    expected = {"dependencies": [f"{cow}==6.1"], "requires_python": ">=3.10",
                "pinned": pinned, "python": PYTHON, "key": environment_key(pinned, PYTHON)}
    assert published.get_json()["requirements"] == expected
    assert api.get(f"/api/v1/runbooks/{name}/versions/1").get_json()["requirements"] == expected
    assert api.get(f"/api/v1/runbooks/{name}").get_json()["published_version"][
        "requirements"] == expected
    job = api.post(f"/api/v1/runbooks/{name}/start", json={})
    assert job.status_code == 201 and job.get_json()["requirements"] == expected
    batch = api.post("/api/v1/jobs/batch", json={"jobs": [{"runbook": name}]})
    assert batch.get_json()["items"][0]["requirements"] == expected
    assert api.get(f"/api/v1/jobs/{job.get_json()['id']}").get_json()["requirements"] == expected


def test_a_plain_runbook_has_no_requirements(api):
    name = create(api, "print('plain')\n")
    assert api.post(f"/api/v1/runbooks/{name}/publish").get_json()["requirements"] is None
    job = api.post(f"/api/v1/runbooks/{name}/start", json={}).get_json()
    assert job["requirements"] is None


def test_an_unresolvable_requirement_fails_the_publish_naming_it(api, index):
    cow, table = index.names
    missing = f"nosuch-{uuid.uuid4().hex[:6]}"
    name = create(api, script(f"{cow}==6.1", missing))
    refused = api.post(f"/api/v1/runbooks/{name}/publish")
    assert refused.status_code == 400
    body = refused.get_json()
    assert missing in body["message"] and "cannot be resolved" in body["message"]
    assert body["errors"]["content"] == [body["message"]]
    assert api.get(f"/api/v1/runbooks/{name}/versions").get_json()["items"] == []
    assert api.get(f"/api/v1/runbooks/{name}/draft").status_code == 200  # the draft stays
    # a conflict deeper down names the package it is about
    index.add(f"needy-{table}", "1.0", requires=[f"{table}>=9"])
    conflict = api.put(f"/api/v1/runbooks/{name}/draft",
                       json={"content": script(f"needy-{table}")})
    assert conflict.status_code == 200
    refused = api.post(f"/api/v1/runbooks/{name}/publish").get_json()
    assert refused["code"] == 400 and f"{table}>=9" in refused["message"]


def test_a_bad_script_block_is_a_400_with_its_line(api):
    name = create(api, "import os\n# /// script\n# dependencies = [\n# ///\nprint(1)\n")
    refused = api.post(f"/api/v1/runbooks/{name}/publish")
    assert refused.status_code == 400
    assert "not valid TOML" in refused.get_json()["message"]
    assert "(line 2, column 1)" in refused.get_json()["message"]


def test_requires_python_the_workers_do_not_have_is_a_400(api, index):
    name = create(api, script(f"{index.names[0]}==6.1", requires_python=">=4"))
    refused = api.post(f"/api/v1/runbooks/{name}/publish")
    assert refused.status_code == 400
    message = refused.get_json()["message"]
    assert "requires Python >=4" in message and platform.python_version() in message
    name = create(api, script(f"{index.names[0]}==6.1", requires_python="newest"))
    assert "not a version specifier" in api.post(
        f"/api/v1/runbooks/{name}/publish").get_json()["message"]


@pytest.mark.parametrize("requirement, says", [
    ("pkg @ file:///etc/passwd", "direct reference"),
    ("pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl", "direct reference"),
    ("--index-url http://example.invalid/simple", "SMA_PIP_INDEX_URL"),
    ("-r /etc/passwd", "is not a requirement"),
    ("cowsay\\n--extra-index-url http://example.invalid/", "line break"),
    ("git+https://example.invalid/x.git", "is not a requirement"),
])
def test_options_and_direct_references_are_refused(api, requirement, says):
    name = create(api, script(requirement))
    refused = api.post(f"/api/v1/runbooks/{name}/publish")
    assert refused.status_code == 400, refused.get_json()
    assert says in refused.get_json()["message"]


def test_an_unreachable_index_is_a_503_that_says_so(services):
    # a port nothing listens on; the password in the URL never reaches the answer
    dead = f"http://sma:hunter2secret@127.0.0.1:{free_port()}/simple/"
    with index_url(dead):
        api = make_api(services)
        name = create(api, script("anything==1.0"))
        refused = api.post(f"/api/v1/runbooks/{name}/publish")
        assert refused.status_code == 503
        message = refused.get_json()["message"]
        assert "package index could not be used" in message and "127.0.0.1" in message
        assert "hunter2secret" not in message
        # a runbook that needs nothing publishes as ever, and Bash has no PEP 723 block
        plain = create(api, "print('no requirements')\n")
        assert api.post(f"/api/v1/runbooks/{plain}/publish").status_code == 201
        bash = create(api, script("anything==1.0").replace("print('hi')", "echo hi"),
                      runbook_type="bash")
        version = api.post(f"/api/v1/runbooks/{bash}/publish")
        assert version.status_code == 201 and version.get_json()["requirements"] is None


def test_an_index_that_never_answers_is_a_503_once_the_time_is_up(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes connections, says nothing
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/simple/"
        settings = load_settings(data_dir=tmp_path / "data", pip_index_url=url)
        started = time.monotonic()
        with pytest.raises(ResolverUnavailable, match="took longer than 2 s"):
            resolve({"dependencies": ["anything"], "requires_python": None}, PYTHON,
                    settings=settings, timeout=2)
        assert time.monotonic() - started < 20


def test_a_data_folder_it_cannot_write_is_a_503(tmp_path):
    (tmp_path / "data").write_text("a file where the data folder should be")
    settings = load_settings(data_dir=tmp_path / "data")
    with pytest.raises(ResolverUnavailable, match="could not be resolved"):
        resolve({"dependencies": ["anything"], "requires_python": None}, PYTHON,
                settings=settings)


def test_a_draft_test_resolves_the_draft(api, index):
    cow, table = index.names
    name = create(api, "print('v1')\n")
    assert api.post(f"/api/v1/runbooks/{name}/publish").status_code == 201
    api.put(f"/api/v1/runbooks/{name}/draft", json={"content": script(f"{table}<1.7")})
    test = api.post(f"/api/v1/runbooks/{name}/draft/test", json={})
    assert test.status_code == 201, test.get_json()
    assert test.get_json()["is_test"] and test.get_json()["requirements"]["pinned"] == [
        f"{table}==1.6.0"]
    started = api.post(f"/api/v1/runbooks/{name}/start", json={}).get_json()
    assert started["requirements"] is None  # the published version needs nothing
    api.put(f"/api/v1/runbooks/{name}/draft", json={"content": script(f"{table}>=5")})
    refused = api.post(f"/api/v1/runbooks/{name}/draft/test", json={})
    assert refused.status_code == 400 and table in refused.get_json()["message"]
    jobs = api.get("/api/v1/jobs", query_string={"runbook": name}).get_json()["items"]
    assert len(jobs) == 2  # the refused test made no job


def test_a_draft_changed_while_it_was_resolved_is_a_conflict():
    resolved = ResolvedDraft("print(1)\n", None)
    assert resolved.requirements_of(Runbook(name="r", draft_content="print(1)\n")) is None
    with pytest.raises(Conflict, match="changed while its requirements were resolved"):
        resolved.requirements_of(Runbook(name="r", draft_content="print(2)\n"))


def test_find_links_add_wheels_beside_the_index(index, tmp_path):
    cow, table = index.names
    extra = f"local-{table}"
    make_wheel(tmp_path / "wheels", extra, "0.3", requires=[f"{table}<1.7"])
    settings = load_settings(data_dir=tmp_path / "data", pip_index_url=index.simple)
    pinned = resolve({"dependencies": [extra], "requires_python": None}, "3.11.2",
                     find_links=[str(tmp_path / "wheels")], settings=settings)
    assert pinned["pinned"] == [f"{extra}==0.3", f"{table}==1.6.0"] and pinned["python"] == "3.11"
    assert (tmp_path / "data" / "cache" / "uv").is_dir()  # uv's cache is sma's, not $HOME's


def test_pip_resolves_where_uv_is_missing(index, tmp_path):
    cow, table = index.names
    source = tmp_path / "requirements.in"
    source.write_text(f"{cow}==6.1\n")
    options = ["--index-url", index.simple]
    assert pip_report(source, PYTHON, options, tmp_path / "pip") == sorted(
        [f"{cow}==6.1", f"{table}==1.7.0"])
    source.write_text(f"{cow}==7\n")
    with pytest.raises(RequirementsUnresolvable, match=cow):
        pip_report(source, PYTHON, options, tmp_path / "pip")
    dead = ["--index-url", f"http://127.0.0.1:{free_port()}/simple/"]
    with pytest.raises(ResolverUnavailable, match="could not be used"):
        pip_report(source, PYTHON, dead, tmp_path / "pip")


def test_the_workers_python_is_sma_python_when_it_runs_here(index, tmp_path):
    other = tmp_path / "python3.12"  # an interpreter that answers as Python 3.12.4 would
    other.write_text("#!/bin/sh\necho 3.12.4\n")
    other.chmod(0o755)
    settings = load_settings(python=str(other), data_dir=tmp_path / "data",
                             pip_index_url=index.simple)
    assert worker_python(settings) == "3.12.4"
    wanted = {"dependencies": [index.names[1]], "requires_python": ">=3.12"}
    assert resolve(wanted, worker_python(settings), settings=settings)["python"] == "3.12"
    with pytest.raises(RequirementsUnresolvable, match="jobs run with Python 3.11.0"):
        resolve({**wanted, "requires_python": "<3.11"}, "3.11.0", settings=settings)
    missing = tmp_path / "no-python"  # SMA_PYTHON of the workers' hosts only
    assert worker_python(load_settings(python=str(missing))) == platform.python_version()
    assert worker_python(load_settings(python="")) == platform.python_version()


def test_the_portal_shows_the_pinned_set_and_a_resolve_error_above_the_editor(api, index):
    from smaweb import create_app
    from tests.test_portal import sign_in

    cow, table = index.names
    client = create_app({"TESTING": True}).test_client()
    csrf = sign_in(client)
    name = create(api, script(f"{cow}==6.1", f"{cow}-missing"))
    refused = client.post(f"/runbooks/{name}/publish", data={"csrf_token": csrf},
                          follow_redirects=True)
    page = refused.get_data(as_text=True)
    assert refused.request.path == f"/runbooks/{name}/edit"  # back in the editor
    assert "flash error" in page and f"{cow}-missing" in page and "cannot be resolved" in page
    client.post(f"/runbooks/{name}/edit", data={"csrf_token": csrf,
                                                "content": script(f"{cow}==6.1")})
    published = client.post(f"/runbooks/{name}/publish", data={"csrf_token": csrf})
    assert published.headers["Location"] == f"/runbooks/{name}"
    page = client.get(f"/runbooks/{name}").get_data(as_text=True)
    assert f"<code>{cow}==6.1</code>" in page and f"<code>{table}==1.7.0</code>" in page
    assert f"resolved for Python {PYTHON}" in page
