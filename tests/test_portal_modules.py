"""The portal's Modules page through the Flask client: list, filter and pages, uploads of
each type through the form, the service's refusals as flash errors, downloads, delete (and
its refusal while a published runbook pins the module), roles and CSRF."""

from __future__ import annotations

import hashlib
import html
import io
import re
import uuid

import pytest

from smacommon.settings import load_settings
from smaweb import create_app
from tests.conftest import ADMIN_TOKEN, Api
from tests.modulefiles import make_sdist, powershell_zip, upload, zip_bytes
from tests.pkgindex import make_wheel
from tests.test_portal import _token, sign_in

LIBRARY = b"#!/usr/bin/env bash\n# Helpers for our runbooks\n# version: 2.1.0\ngreet() { echo \"hello $1\"; }\n"


@pytest.fixture
def portal(client):
    """A signed-in admin's browser session: (client, csrf token)."""
    return client, sign_in(client)


def post_file(client, csrf: str | None, data: bytes, filename: str, **fields: str):
    """The upload form as a browser sends it (multipart, the CSRF field), redirect followed."""
    form = {"file": (io.BytesIO(data), filename), **fields}
    if csrf is not None:
        form["csrf_token"] = csrf
    return client.post("/modules", data=form, content_type="multipart/form-data",
                       follow_redirects=True)


def flashes(resp, category: str) -> list[str]:
    """The page's flash messages of `category`, as text."""
    return [html.unescape(m) for m in re.findall(
        rf'<p class="flash {category}"[^>]*>(.*?)</p>', resp.get_data(as_text=True), re.S)]


def rows(page: str) -> list[list[str]]:
    """The modules table's rows, each cell's text."""
    table = re.search(r'<table id="modules">.*?<tbody>(.*?)</tbody>', page, re.S)
    if table is None:
        return []
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table[1], re.S)]


def names(client, query: str = "") -> list[str]:
    return [row[0] for row in rows(client.get(f"/modules{query}").get_data(as_text=True))]


def listed(api) -> list[tuple[str, str, str]]:
    return [(m["name"], m["version"], m["module_type"])
            for m in api.get("/api/v1/modules").get_json()["items"]]


def test_the_page_lists_every_fact_filters_by_type_and_name(portal, api, tmp_path):
    client, _ = portal
    assert client.get("/modules").status_code == 200
    assert "No modules yet." in client.get("/modules").get_data(as_text=True)
    wheel = make_wheel(tmp_path, "Acme-Tools", "1.4")
    upload(api, wheel.read_bytes(), wheel.name)
    sdist = make_sdist(tmp_path, "acme-reports", "0.3")
    upload(api, sdist.read_bytes(), sdist.name)
    upload(api, powershell_zip("AcmeShell", "1.2.0"), "AcmeShell.zip")
    upload(api, LIBRARY, "greetings.sh")
    page = client.get("/modules").get_data(as_text=True)
    assert '<a href="/modules" aria-current="page">Modules</a>' in page
    for header in ("Name", "Version", "Type", "Size", "SHA-256", "Uploaded", "Pinned by"):
        assert f'<th scope="col">{header}</th>' in page
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert f'<code title="{digest}">{digest[:12]}…</code>' in page  # the full one on hover
    by_name = {row[0]: row for row in rows(page)}
    assert list(by_name) == ["greetings", "AcmeShell", "acme-reports", "Acme-Tools"]
    name, version, mtype, size, sha, uploaded, pinned_by, download = by_name["Acme-Tools"]
    assert (version, mtype, sha, pinned_by) == ("1.4", "python", digest[:12] + "…", "none")
    assert size.endswith(("Bytes", "KiB")) and uploaded.startswith("admin")
    assert download == f"Download {wheel.name}"
    assert by_name["greetings"][1:3] == ["2.1.0", "bash"] and by_name["greetings"][6] == "-"
    assert by_name["AcmeShell"][1:3] == ["1.2.0", "powershell"]
    assert names(client, "?type=python") == ["acme-reports", "Acme-Tools"]
    assert names(client, "?type=powershell") == ["AcmeShell"]
    assert names(client, "?q=acme_t") == ["Acme-Tools"]  # compared in PEP 503's form
    assert names(client, "?q=acme&type=bash") == []
    assert "No modules match." in client.get("/modules?q=nothing").get_data(as_text=True)
    assert names(client, "?type=ruby") == names(client)  # an unknown type filters nothing
    assert ADMIN_TOKEN not in page


def test_the_list_pages_like_the_others(portal, api):
    client, _ = portal
    for i in range(27):
        upload(api, LIBRARY, f"lib{i:02d}.sh")
    first = client.get("/modules?type=bash").get_data(as_text=True)
    assert [row[0] for row in rows(first)] == [f"lib{i:02d}" for i in range(26, 1, -1)]
    following = html.unescape(re.search(r'<a href="([^"]+)">Next page', first)[1])
    assert "type=bash" in following
    rest = client.get(following).get_data(as_text=True)
    assert [row[0] for row in rows(rest)] == ["lib01", "lib00"]
    assert "Next page" not in rest
    assert client.get("/modules?cursor=garbage").status_code == 400


def _wheel(tmp_path):
    path = make_wheel(tmp_path, "up-wheel", "1.0")
    return path.read_bytes(), path.name, {}


def _sdist(tmp_path):
    path = make_sdist(tmp_path, "up-sdist", "2.0")
    return path.read_bytes(), path.name, {}


def _sdist_zip(tmp_path):
    path = make_sdist(tmp_path, "up-zipped", "2.1", suffix=".zip")
    return path.read_bytes(), path.name, {"type": "python"}


def _powershell(tmp_path):
    return powershell_zip("UpShell", "3.0.1", versioned=True), "UpShell.zip", {}


def _bash(tmp_path):
    return b"say() { echo \"$1\"; }\n", "up-lib.sh", {"version": "0.9", "type": "bash"}


UPLOADS = {"wheel": (_wheel, ("up-wheel", "1.0", "python")),
           "sdist": (_sdist, ("up-sdist", "2.0", "python")),
           "sdist zip": (_sdist_zip, ("up-zipped", "2.1", "python")),
           "powershell": (_powershell, ("UpShell", "3.0.1", "powershell")),
           "bash with the form's version": (_bash, ("up-lib", "0.9", "bash"))}


@pytest.mark.parametrize("case", sorted(UPLOADS))
def test_upload_each_type_through_the_form(portal, api, tmp_path, case):
    client, csrf = portal
    build, expected = UPLOADS[case]
    data, filename, fields = build(tmp_path)
    done = post_file(client, csrf, data, filename, **fields)
    assert done.status_code == 200
    assert flashes(done, "ok") == [f"Uploaded {expected[0]} {expected[1]}."]
    assert rows(done.get_data(as_text=True))[0][:3] == list(expected)  # listed, newest first
    assert listed(api) == [expected]
    stored = api.get("/api/v1/modules").get_json()["items"][0]
    assert stored["uploaded_by"] == "admin" and stored["filename"] == filename
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()


def _text(tmp_path):
    return b"MZ", "tool.exe", {}


BAD = {
    "no file chosen": (lambda t: (b"", "", {}), "Choose a module file to upload."),
    "unknown kind": (_text, "sma cannot tell what 'tool.exe' is"),
    "bash without version": (lambda t: (b"f() { :; }\n", "lib.sh", {}), "needs a version"),
    "bash syntax": (lambda t: (b"# version: 1\nf() { echo\n", "lib.sh", {}),
                    "Bash syntax error"),
    "not a zip": (lambda t: (b"PK\x03\x04 broken", "Broken.zip", {"type": "powershell"}),
                  "not a valid zip archive"),
    "type disagrees": (lambda t: (*_wheel(t)[:2], {"type": "bash"}), "not a bash module"),
    "version for a wheel": (lambda t: (*_wheel(t)[:2], {"version": "1.0"}),
                            "Bash libraries only"),
    "unknown type": (lambda t: (*_wheel(t)[:2], {"type": "ruby"}),
                     "Unknown module type 'ruby'; use one of python, powershell, bash."),
    "bad file name": (lambda t: (LIBRARY, "my lib.sh", {}), "Invalid file name"),
    "zip of neither": (lambda t: (zip_bytes({"readme.txt": "no manifest"}), "Loose.zip", {}),
                       "no module manifest"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_upload_flashes_what_is_wrong(portal, api, tmp_path, case):
    client, csrf = portal
    build, expected = BAD[case]
    data, filename, fields = build(tmp_path)
    done = post_file(client, csrf, data, filename, **fields)
    assert done.status_code == 200 and done.request.path == "/modules"
    errors = flashes(done, "error")
    assert len(errors) == 1 and expected in errors[0], errors
    assert flashes(done, "ok") == [] and listed(api) == []


def test_the_same_file_again_changes_nothing_other_content_is_refused(portal, api, tmp_path):
    client, csrf = portal
    wheel = make_wheel(tmp_path / "a", "tool", "1.0")
    post_file(client, csrf, wheel.read_bytes(), wheel.name)
    again = post_file(client, csrf, wheel.read_bytes(), wheel.name)
    assert flashes(again, "ok") == ["tool 1.0 was uploaded before, as this very file: "
                                    "nothing changed."]
    other = make_wheel(tmp_path / "b", "tool", "1.0", files={"tool/x.py": "X = 2\n"})
    refused = post_file(client, csrf, other.read_bytes(), other.name)
    assert flashes(refused, "error") == [
        "Module tool 1.0 exists with other content; upload it as a new version, or delete "
        "that one first."]
    assert listed(api) == [("tool", "1.0", "python")]
    content = api.get("/api/v1/modules/tool/1.0/content").data
    assert content == wheel.read_bytes()


def test_size_is_sma_module_max_mb_not_the_request_limit(services, tmp_path):
    settings = load_settings(module_max_mb=1, max_request_bytes=64 * 1024)
    client = create_app({"TESTING": True, "SMA_SETTINGS": settings}).test_client()
    csrf = sign_in(client)
    page = client.get("/modules").get_data(as_text=True)
    assert "up to 1 MiB" in page
    big = make_wheel(tmp_path, "big", "1.0", files={"big/data.py": "DATA = '%s'\n" % (
        "x" * 300 * 1024)})
    assert flashes(post_file(client, csrf, big.read_bytes(), big.name), "ok") == [
        "Uploaded big 1.0."]
    over = post_file(client, csrf, b"# version: 1\n" + b"#" * (1024 * 1024), "over.sh")
    assert "more than the 1048576 bytes SMA_MODULE_MAX_MB allows" in flashes(over, "error")[0]
    huge = post_file(client, csrf, b"#" * (3 * 1024 * 1024), "huge.sh")
    assert huge.status_code == 200 and huge.request.path == "/modules"
    assert flashes(huge, "error") == ["The upload is larger than SMA_MODULE_MAX_MB (1 MiB)."]
    assert [row[0] for row in rows(huge.get_data(as_text=True))] == ["big"]
    # refused unread all the same, but only an author is told why
    csrf = sign_in(client, _token(Api(client), "reader"))
    assert post_file(client, csrf, b"#" * (3 * 1024 * 1024), "huge.sh").status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    signed_out = client.post("/modules", data={"file": (io.BytesIO(b"#" * (3 << 20)), "h.sh")},
                             content_type="multipart/form-data")
    assert signed_out.headers["Location"] == "/login?next=/modules"


def test_download_with_the_session_and_no_token_in_the_page(client, api, tmp_path):
    wheel = make_wheel(tmp_path, "fetch-me", "0.1")
    upload(api, wheel.read_bytes(), wheel.name)
    upload(api, LIBRARY, "greetings.sh")
    csrf = sign_in(client, _token(api, "reader"))
    page = client.get("/modules").get_data(as_text=True)
    links = dict(re.findall(r'<a href="([^"]+)" download="([^"]+)">', page))
    assert links == {"/api/v1/modules/fetch-me/0.1/content": wheel.name,
                     "/api/v1/modules/greetings/2.1.0/content": "greetings.sh"}
    got = client.get("/api/v1/modules/fetch-me/0.1/content")  # the session cookie, no token
    assert got.status_code == 200 and got.data == wheel.read_bytes()
    assert wheel.name in got.headers["Content-Disposition"]
    detail = client.get("/modules/fetch-me/0.1").get_data(as_text=True)
    assert 'href="/api/v1/modules/fetch-me/0.1/content" download' in detail
    assert not re.search(r"sma_[A-Za-z0-9_-]{20,}", page + detail)  # no token anywhere
    client.post("/logout", data={"csrf_token": csrf})
    assert client.get("/api/v1/modules/fetch-me/0.1/content").status_code == 401


def test_detail_and_delete_after_a_confirmation(portal, api, tmp_path):
    client, csrf = portal
    wheel = make_wheel(tmp_path, "Gone-Soon", "1.0")
    post_file(client, csrf, wheel.read_bytes(), wheel.name)
    detail = client.get("/modules/gone_soon/1.0.0")  # any spelling PEP 503 makes equal
    page = detail.get_data(as_text=True)
    assert detail.status_code == 200 and hashlib.sha256(wheel.read_bytes()).hexdigest() in page
    assert "No published runbook version pins it." in page
    assert ('action="/modules/gone-soon/1.0/delete" data-confirm="Delete module Gone-Soon '
            '1.0?"') in page
    deleted = client.post("/modules/gone-soon/1.0/delete", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert deleted.request.path == "/modules"
    assert flashes(deleted, "ok") == ["Deleted Gone-Soon 1.0."] and listed(api) == []
    again = client.post("/modules/gone-soon/1.0/delete", data={"csrf_token": csrf},
                        follow_redirects=True)
    assert flashes(again, "error") == [
        "Module 'gone-soon' has no version '1.0'."]
    missing = client.get("/modules/gone-soon/1.0")
    assert missing.status_code == 404 and "has no version" in missing.get_data(as_text=True)


@pytest.fixture
def publishing(services, package_index):
    """A signed-in admin of an app whose publishing resolves against the test's index (uv
    asks it beside the uploaded wheels): (client, csrf token)."""
    settings = load_settings(pip_index_url=package_index.simple)
    client = create_app({"TESTING": True, "SMA_SETTINGS": settings}).test_client()
    return client, sign_in(client)


def test_delete_is_refused_while_a_published_runbook_pins_it(publishing, api, tmp_path):
    client, csrf = publishing
    name = f"pinned-{uuid.uuid4().hex[:8]}"  # new each run: no resolver cache answers
    wheel = make_wheel(tmp_path, name, "1.4")
    assert flashes(post_file(client, csrf, wheel.read_bytes(), wheel.name), "ok") == [
        f"Uploaded {name} 1.4."]
    upload(api, LIBRARY, "greetings.sh")
    script = f'# /// script\n# dependencies = ["{name}==1.4"]\n# ///\nprint("hi")\n'
    for runbook in ("nightly", "cleanup"):
        client.post("/runbooks/new", data={"csrf_token": csrf, "name": runbook,
                                           "runbook_type": "python", "content": script})
        published = client.post(f"/runbooks/{runbook}/publish", data={"csrf_token": csrf},
                                follow_redirects=True)
        assert flashes(published, "ok")[-1] == "Published version 1.", flashes(published,
                                                                               "error")
    pins = api.get("/api/v1/runbooks/nightly").get_json()["published_version"]["requirements"]
    assert pins["pinned"] == [f"{name}==1.4"]
    by_name = {row[0]: row for row in rows(client.get("/modules").get_data(as_text=True))}
    assert by_name[name][6] == "cleanup, nightly" and by_name["greetings"][6] == "-"
    detail = client.get(f"/modules/{name}/1.4").get_data(as_text=True)
    assert '<li><a href="/runbooks/cleanup">cleanup</a></li>' in detail
    refused = client.post(f"/modules/{name}/1.4/delete", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert refused.request.path == f"/modules/{name}/1.4"  # its page, with who pins it
    assert flashes(refused, "error") == [
        f"Module {name} 1.4 is pinned by the published version of cleanup, nightly; publish "
        "versions that do not need it first."]
    assert (name, "1.4", "python") in listed(api)
    for runbook in ("nightly", "cleanup"):  # new versions that need it no more
        client.post(f"/runbooks/{runbook}/edit", data={"csrf_token": csrf,
                                                       "content": "print('plain')\n"})
        again = client.post(f"/runbooks/{runbook}/publish", data={"csrf_token": csrf},
                            follow_redirects=True)
        assert flashes(again, "ok")[-1] == "Published version 2."
    deleted = client.post(f"/modules/{name}/1.4/delete", data={"csrf_token": csrf},
                          follow_redirects=True)
    assert flashes(deleted, "ok") == [f"Deleted {name} 1.4."]
    assert listed(api) == [("greetings", "2.1.0", "bash")]


@pytest.mark.parametrize("role", ["reader", "operator"])
def test_below_author_sees_the_list_and_downloads_but_no_controls(client, api, role):
    upload(api, LIBRARY, "greetings.sh")
    csrf = sign_in(client, _token(api, role))
    page = client.get("/modules").get_data(as_text=True)
    assert rows(page)[0][:3] == ["greetings", "2.1.0", "bash"]
    assert "Upload a module" not in page and 'type="file"' not in page
    assert client.get("/api/v1/modules/greetings/2.1.0/content").data == LIBRARY
    detail = client.get("/modules/greetings/2.1.0").get_data(as_text=True)
    assert "Download" in detail and "/delete" not in detail and "Delete" not in detail
    refused = post_file(client, csrf, LIBRARY, "other.sh")
    assert refused.status_code == 403 and "needs the author role" in refused.get_data(
        as_text=True)
    assert client.post("/modules/greetings/2.1.0/delete",
                       data={"csrf_token": csrf}).status_code == 403
    assert listed(api) == [("greetings", "2.1.0", "bash")]


def test_the_forms_need_the_csrf_token_and_a_session(client, api):
    assert client.get("/modules").headers["Location"] == "/login?next=/modules"
    assert client.post("/modules", data={}).headers["Location"].startswith("/login")
    csrf = sign_in(client)
    assert post_file(client, None, LIBRARY, "greetings.sh").status_code == 400
    assert post_file(client, "wrong", LIBRARY, "greetings.sh").status_code == 400
    assert listed(api) == []
    post_file(client, csrf, LIBRARY, "greetings.sh")
    for token in (None, "wrong"):
        data = {} if token is None else {"csrf_token": token}
        assert client.post("/modules/greetings/2.1.0/delete", data=data).status_code == 400
    assert listed(api) == [("greetings", "2.1.0", "bash")]
