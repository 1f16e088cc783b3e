"""`sma module ...` as a user runs it, against the real running service."""

from __future__ import annotations

import hashlib
import json

from tests.modulefiles import pin
from tests.pkgindex import make_wheel
from tests.test_cli import cli  # noqa: F401 - the fixture

LIBRARY = "greet() { echo \"hello $1\"; }\n"


def test_upload_list_show_download_delete(cli, api, services):  # noqa: F811
    wheel = make_wheel(cli.tmp / "dist", "mycompany-tools", "1.4")
    first = cli("module", "upload", str(wheel))
    assert first.returncode == 0, first.stderr
    assert "Uploaded python module mycompany-tools 1.4" in first.stderr
    again = cli("module", "upload", str(wheel))
    assert again.returncode == 0 and "uploaded already" in again.stderr
    library = cli.tmp / "greetings.sh"
    library.write_text(LIBRARY)
    shell = cli("module", "upload", str(library), "--version", "1.0", "-o", "json")
    assert shell.returncode == 0, shell.stderr
    assert json.loads(shell.stdout)["module_type"] == "bash"

    listed = cli("module", "list", "--type", "python")
    assert listed.returncode == 0 and "mycompany-tools" in listed.stdout
    assert "greetings" not in listed.stdout
    shown = json.loads(cli("module", "show", "MyCompany_Tools", "1.4", "-o", "json").stdout)
    assert shown["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    (cli.tmp / "got").mkdir()
    saved = cli("module", "download", "mycompany-tools", "1.4", "-O", str(cli.tmp / "got"))
    assert saved.returncode == 0, saved.stderr
    assert (cli.tmp / "got" / wheel.name).read_bytes() == wheel.read_bytes()
    nowhere = cli("module", "download", "mycompany-tools", "1.4", "-O",
                  str(cli.tmp / "no" / "such" / "file.whl"))
    assert nowhere.returncode == 2 and "No such file or directory" in nowhere.stderr

    api.create_runbook("nightly")
    pin(services["database_url"], "nightly", ["mycompany-tools==1.4"])
    refused = cli("module", "delete", "mycompany-tools", "1.4")
    assert refused.returncode == 1 and "nightly" in refused.stderr
    deleted = cli("module", "delete", "greetings", "1.0")
    assert deleted.returncode == 0 and "Deleted module greetings 1.0." in deleted.stderr
    gone = cli("module", "show", "greetings", "1.0")
    assert gone.returncode == 1 and "has no version" in gone.stderr


def test_bad_uploads_say_what_is_wrong(cli):  # noqa: F811
    missing = cli("module", "upload", str(cli.tmp / "nothing.whl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    bad = cli.tmp / "tool-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    refused = cli("module", "upload", str(bad))
    assert refused.returncode == 1 and "not a valid zip" in refused.stderr
    nowhere = cli("module", "download", "x", "1", "-O", str(cli.tmp / "no" / "such" / "f"))
    assert nowhere.returncode == 1 and "has no version" in nowhere.stderr
