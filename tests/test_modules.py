"""Uploaded modules through the API: each kind read from its own file, kept by hash, listed,
downloaded, deleted; bad files refused with a 400 that says what is wrong."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smacommon.db import get_engine
from smacommon.models import ModuleBlob
from smacommon.services.module_links import python_find_links
from smacommon.settings import load_settings
from smaweb import create_app
from tests.conftest import Api
from tests.modulefiles import (
    make_sdist,
    manifest,
    pin,
    powershell_zip,
    upload,
    zip_bytes,
)
from tests.pkgindex import make_wheel

LIBRARY = b"#!/usr/bin/env bash\n# Helpers for our runbooks\n# version: 2.1.0\ngreet() { echo \"hello $1\"; }\n"


def ok(resp, status=200):
    assert resp.status_code == status, (resp.status_code, resp.get_json())
    return resp.get_json(silent=True)


def test_a_wheel_round_trips_with_its_hash(api, tmp_path):
    wheel = make_wheel(tmp_path, "MyCompany-Tools", "1.4")
    data = wheel.read_bytes()
    module = ok(upload(api, data, wheel.name), 201)
    assert {k: module[k] for k in ("name", "normalized_name", "version", "module_type",
                                   "filename", "size", "sha256", "uploaded_by")} == {
        "name": "MyCompany-Tools", "normalized_name": "mycompany-tools", "version": "1.4",
        "module_type": "python", "filename": wheel.name, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "uploaded_by": "admin"}
    # any spelling PEP 503 makes equal, and 1.4.0 for 1.4
    assert ok(api.get("/api/v1/modules/mycompany_tools/1.4.0"))["id"] == module["id"]
    listed = ok(api.get("/api/v1/modules?type=python&name=Company_T"))["items"]
    assert [m["id"] for m in listed] == [module["id"]]
    assert ok(api.get("/api/v1/modules?type=bash"))["items"] == []
    content = api.get("/api/v1/modules/MyCompany-Tools/1.4/content")
    assert content.status_code == 200 and content.data == data
    assert content.headers["ETag"] == f'"{module["sha256"]}"'
    assert wheel.name in content.headers["Content-Disposition"]
    events = ok(api.get("/api/v1/audit?action=module."))["items"]
    assert [(e["action"], e["target"]) for e in events] == [
        ("module.upload", "/api/v1/modules/mycompany-tools/1.4")]


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_an_sdist_is_read_from_its_pkg_info(api, tmp_path, suffix):
    sdist = make_sdist(tmp_path, "acme.utils", "0.3.post1", suffix)
    module = ok(upload(api, sdist.read_bytes(), sdist.name), 201)
    assert (module["name"], module["normalized_name"], module["version"],
            module["module_type"]) == ("acme.utils", "acme-utils", "0.3.post1", "python")


@pytest.mark.parametrize("versioned", [False, True])
def test_a_powershell_zip_is_named_and_versioned_by_its_manifest(api, versioned):
    # as PowerShell reads it, 1.02.3 is 1.2.3 (Save-Module's folder says so)
    data = (powershell_zip("AcmeTools", "1.2.3", versioned=True) if versioned
            else powershell_zip("AcmeTools", "1.02.3"))
    module = ok(upload(api, data, "acme-tools.zip"), 201)
    assert (module["name"], module["version"], module["module_type"]) == (
        "AcmeTools", "1.2.3", "powershell")


def test_a_manifest_in_utf16_as_windows_powershell_writes_it(api):
    data = zip_bytes({"Legacy.psd1": manifest("3.0", "Legacy.psm1").encode("utf-16"),
                      "Legacy.psm1": "function Get-Old {}\n"})
    module = ok(upload(api, data, "Legacy.zip", type="powershell"), 201)
    assert (module["name"], module["version"]) == ("Legacy", "3.0")


def test_a_bash_library_takes_its_version_from_its_header_or_the_form(api):
    module = ok(upload(api, LIBRARY, "greetings.sh"), 201)
    assert (module["name"], module["version"], module["module_type"]) == (
        "greetings", "2.1.0", "bash")
    plain = b"farewell() { echo bye; }\n"
    module = ok(upload(api, plain, "farewell.bash", version="0.1", type="bash"), 201)
    assert (module["name"], module["version"]) == ("farewell", "0.1")
    refused = ok(upload(api, LIBRARY, "greetings.sh", version="9.9"), 400)
    assert "header says 2.1.0" in refused["message"]


def _tar_with_link() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"Metadata-Version: 2.1\nName: linky\nVersion: 1.0\n"
        info = tarfile.TarInfo("linky-1.0/PKG-INFO")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("linky-1.0/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    return buffer.getvalue()


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Evil/Evil.psd1", manifest("1.0", "Evil.psm1"))
        info = zipfile.ZipInfo("Evil/passwd")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _wheel(tmp_path, name="tool", version="1.0") -> bytes:
    return make_wheel(tmp_path / "w", name, version).read_bytes()


BAD = {
    "not a zip": (lambda t: b"not a zip at all", "tool-1.0-py3-none-any.whl", {},
                  "not a valid zip"),
    "bad wheel name": (_wheel, "tool.whl", {}, "not a valid wheel file name"),
    "wheel name mismatch": (_wheel, "tool-2.0-py3-none-any.whl", {},
                            "file name says tool 2.0 but its METADATA says tool 1.0"),
    "wheel without metadata": (lambda t: zip_bytes({"tool/__init__.py": ""}),
                               "tool-1.0-py3-none-any.whl", {}, "exactly one"),
    "sdist without PKG-INFO": (lambda t: zip_bytes({"tool-1.0/setup.py": ""}), "tool-1.0.zip",
                               {"type": "python"}, "PKG-INFO"),
    "sdist link member": (lambda t: _tar_with_link(), "linky-1.0.tar.gz", {}, "is a link"),
    "missing psd1": (lambda t: zip_bytes({"Tools/Tools.psm1": "function A {}"}), "Tools.zip",
                     {}, "no module manifest"),
    "two manifests": (lambda t: zip_bytes({"A/A.psd1": manifest("1.0"),
                                           "B/B.psd1": manifest("1.0")}), "AB.zip", {},
                      "several module manifests"),
    "traversal member": (lambda t: zip_bytes({"../../etc/Tools.psd1": manifest("1.0")}),
                         "Tools.zip", {}, "points outside the archive"),
    "absolute member": (lambda t: zip_bytes({"/Tools/Tools.psd1": manifest("1.0")}),
                        "Tools.zip", {}, "points outside the archive"),
    "symlink member": (lambda t: _symlink_zip(), "Evil.zip", {}, "symbolic link"),
    "computed version": (lambda t: zip_bytes({"T/T.psd1": "@{ ModuleVersion = \"$v\" }"}),
                         "T.zip", {}, "must be a quoted version"),
    "code in manifest": (lambda t: zip_bytes({"T/T.psd1": "Remove-Item -Recurse /\n"
                                                          "@{ ModuleVersion = '1.0' }"}),
                         "T.zip", {}, "is not a module manifest"),
    "version folder": (lambda t: zip_bytes({"T/2.0/T.psd1": manifest("1.0")}), "T.zip", {},
                       "folder named '2.0'"),
    "bash without version": (lambda t: b"f() { :; }\n", "lib.sh", {}, "needs a version"),
    "bash syntax": (lambda t: b"# version: 1\nf() { echo\n", "lib.sh", {},
                    "Bash syntax error"),
    "bash not text": (lambda t: b"\xff\xfe\x00", "lib.sh", {"version": "1"}, "UTF-8"),
    "unknown kind": (lambda t: b"MZ", "tool.exe", {}, "cannot tell what"),
    "empty": (lambda t: b"", "lib.sh", {}, "empty"),
    "type disagrees": (_wheel, "tool-1.0-py3-none-any.whl", {"type": "bash"},
                       "not a bash module"),
    "version for a wheel": (_wheel, "tool-1.0-py3-none-any.whl", {"version": "1.0"},
                            "Bash libraries only"),
    "unknown type": (_wheel, "tool-1.0-py3-none-any.whl", {"type": "ruby"},
                     "Unknown module type"),
    "unknown field": (_wheel, "tool-1.0-py3-none-any.whl", {"colour": "red"},
                      "Unknown field"),
    "bad file name": (lambda t: LIBRARY, "my lib.sh", {}, "Invalid file name"),
    "reserved name": (lambda t: LIBRARY, "simple.sh", {}, "package index"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_upload_is_a_400_saying_what_is_wrong(api, tmp_path, case):
    build, filename, fields, expected = BAD[case]
    body = ok(upload(api, build(tmp_path), filename, **fields), 400)
    assert expected in body["message"], body
    assert ok(api.get("/api/v1/modules"))["items"] == []


def test_no_file_part_or_text_instead_of_a_file_is_a_400(api):
    body = ok(api.post("/api/v1/modules", data={"type": "bash"},
                       content_type="multipart/form-data"), 400)
    assert "file" in body["errors"]
    body = ok(api.post("/api/v1/modules", data={"file": "f() { :; }"},
                       content_type="multipart/form-data"), 400)
    assert "file part" in body["message"]


def test_size_limits_are_sma_module_max_mb_not_the_request_limit(services, tmp_path):
    settings = load_settings(module_max_mb=1, max_request_bytes=64 * 1024)
    api = Api(create_app({"TESTING": True, "SMA_SETTINGS": settings}).test_client())
    payload = os.urandom(300 * 1024).hex()  # beyond the request limit, within the module's
    big = make_wheel(tmp_path, "big", "1.0", files={"big/data.py": f"DATA = {payload!r}\n"})
    assert big.stat().st_size > 64 * 1024
    ok(upload(api, big.read_bytes(), big.name), 201)
    huge = b"# version: 1\n" + b"#" * (1024 * 1024)
    body = ok(upload(api, huge, "huge.sh"), 400)
    assert "SMA_MODULE_MAX_MB" in body["message"]
    body = ok(upload(api, b"#" * (3 * 1024 * 1024), "huger.sh"), 413)
    assert "SMA_MODULE_MAX_MB (1 MiB)" in body["message"]
    bomb = zip_bytes({"Bomb/Bomb.psd1": manifest("1.0"), "Bomb/zeros": b"\0" * (5 << 20)})
    body = ok(upload(api, bomb, "Bomb.zip"), 400)
    assert "unpacks to" in body["message"]


def test_the_same_file_again_is_200_other_content_is_409(api, tmp_path):
    wheel = make_wheel(tmp_path / "a", "tool", "1.0")
    first = ok(upload(api, wheel.read_bytes(), wheel.name), 201)
    again = ok(upload(api, wheel.read_bytes(), wheel.name), 200)
    assert again["id"] == first["id"]
    other = make_wheel(tmp_path / "b", "tool", "1.0", files={"tool/x.py": "X = 2\n"})
    body = ok(upload(api, other.read_bytes(), other.name), 409)
    assert "tool 1.0 exists with other content" in body["message"]
    same_version = make_wheel(tmp_path / "c", "Tool", "1.0.0")
    ok(upload(api, same_version.read_bytes(), same_version.name), 409)


def _blobs(services) -> int:
    with Session(get_engine(services["database_url"])) as session:
        return session.scalar(select(func.count()).select_from(ModuleBlob))


def test_delete_takes_the_content_when_no_other_module_shares_it(api, services):
    ok(upload(api, LIBRARY, "one.sh"), 201)
    ok(upload(api, LIBRARY, "two.sh"), 201)  # the same bytes: kept once
    assert _blobs(services) == 1
    ok(api.delete("/api/v1/modules/one/2.1.0"), 204)
    assert _blobs(services) == 1
    ok(api.delete("/api/v1/modules/two/2.1.0"), 204)
    assert _blobs(services) == 0
    assert ok(api.get("/api/v1/modules/two/2.1.0"), 404)["message"].startswith(
        "Module 'two' has no version '2.1.0'")
    ok(api.get("/api/v1/modules/two/2.1.0/content"), 404)
    assert [e["action"] for e in ok(api.get("/api/v1/audit?action=module.delete"))["items"]
            ] == ["module.delete", "module.delete"]


def test_delete_is_refused_while_a_published_version_pins_it(api, services, tmp_path):
    wheel = make_wheel(tmp_path, "mycompany-tools", "1.4")
    ok(upload(api, wheel.read_bytes(), wheel.name), 201)
    for name in ("nightly", "cleanup", "other"):
        api.create_runbook(name)
    pin(services["database_url"], "nightly", ["MyCompany_Tools==1.4.0", "requests==2.32.3"])
    pin(services["database_url"], "cleanup", ["mycompany-tools==1.4"])
    pin(services["database_url"], "other", ["mycompany-tools==1.5"])
    body = ok(api.delete("/api/v1/modules/mycompany-tools/1.4"), 409)
    assert "cleanup, nightly" in body["message"]
    assert body["errors"] == {"runbooks": ["cleanup", "nightly"]}
    for name in ("nightly", "cleanup"):  # new versions that need it no more
        ok(api.put(f"/api/v1/runbooks/{name}/draft", json={"content": "print(2)\n"}))
        ok(api.post(f"/api/v1/runbooks/{name}/publish"), 201)
    ok(api.delete("/api/v1/modules/mycompany-tools/1.4"), 204)


def test_a_reader_lists_but_cannot_upload_or_delete(api, client):
    ok(upload(api, LIBRARY, "greetings.sh"), 201)
    reader = Api(client, ok(api.post("/api/v1/tokens", json={"name": "r", "role": "reader"}),
                            201)["token"])
    assert len(ok(reader.get("/api/v1/modules"))["items"]) == 1
    assert ok(reader.get("/api/v1/modules/greetings/2.1.0/content")) is None
    assert upload(reader, LIBRARY, "other.sh").status_code == 403
    assert reader.delete("/api/v1/modules/greetings/2.1.0").status_code == 403


def test_find_links_holds_the_python_modules_there_are(api, services, tmp_path):
    first = make_wheel(tmp_path / "w", "alpha", "1.0")
    ok(upload(api, first.read_bytes(), first.name), 201)
    second = make_sdist(tmp_path / "s", "beta", "2.0")
    ok(upload(api, second.read_bytes(), second.name), 201)
    ok(upload(api, LIBRARY, "greetings.sh"), 201)  # not a Python module: not there
    folder = tmp_path / "cache"
    with Session(get_engine(services["database_url"])) as session:
        links = python_find_links(session, folder)
    assert len(links) == 1
    assert sorted(p.name for p in (folder / "links").iterdir()) == sorted(
        [first.name, second.name])
    assert (folder / "links" / first.name).read_bytes() == first.read_bytes()
    ok(api.delete("/api/v1/modules/alpha/1.0"), 204)
    with Session(get_engine(services["database_url"])) as session:
        assert python_find_links(session, folder) == links
    assert [p.name for p in (folder / "links").iterdir()] == [second.name]
    ok(api.delete("/api/v1/modules/beta/2.0"), 204)
    with Session(get_engine(services["database_url"])) as session:
        assert python_find_links(session, folder) == []


def test_two_uploads_of_one_version_at_once_keep_one(services, tmp_path):
    """The second waits for the first's commit, then is a 409 (on PostgreSQL through the
    unique constraint: it could not see the first's row before)."""
    import threading

    from smacommon.models import Module
    from smacommon.services.audit import Actor, act_as
    from smacommon.services.modules import ModuleExists, upload_module

    engine = get_engine(services["database_url"])
    first = make_wheel(tmp_path / "a", "racer", "1.0").read_bytes()
    second = make_wheel(tmp_path / "b", "racer", "1.0", files={"racer/x.py": "X = 1\n"}
                        ).read_bytes()
    outcome: list[object] = []

    def upload_second() -> None:
        with Session(engine) as session:
            act_as(session, Actor("second", "cli"))
            try:
                upload_module(session, "racer-1.0-py3-none-any.whl", second, max_bytes=1 << 20)
                session.commit()
                outcome.append("kept")
            except ModuleExists as exc:
                outcome.append(exc)

    with Session(engine) as session:
        act_as(session, Actor("first", "cli"))
        upload_module(session, "racer-1.0-py3-none-any.whl", first, max_bytes=1 << 20)
        thread = threading.Thread(target=upload_second)
        thread.start()
        thread.join(0.5)  # it waits for this transaction
        assert thread.is_alive() or isinstance(outcome[0], ModuleExists)
        session.commit()
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], ModuleExists), outcome
    with Session(engine) as session:
        kept = session.scalars(select(Module)).all()
    assert [(m.name, m.sha256) for m in kept] == [("racer", hashlib.sha256(first).hexdigest())]
