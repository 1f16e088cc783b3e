"""The `sma` command speaks in commands: short job ids, refusals that name the command that
fixes them, and an import whose publish fails says the draft was kept."""

from __future__ import annotations

from tests.test_cli import _script, cli  # noqa: F401 - the fixture

PARKED = "nobody-runs-these"


def test_job_commands_take_a_short_id(cli, api):  # noqa: F811
    api.create_runbook("parked")
    job = api.start("parked", worker_group=PARKED)
    shown = cli("job", "show", job["id"][:8] + "\u2026", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert '"id": "' + job["id"] in shown.stdout
    stopped = cli("job", "stop", job["id"][:8])
    assert stopped.returncode == 0, stopped.stderr
    assert f"Job {job['id']} is Stopped." in stopped.stderr
    again = cli("job", "stop", job["id"][:10])
    assert again.returncode == 1
    assert again.stderr == f"sma: Job {job['id']} has already ended (Stopped).\n"
    too_short = cli("job", "show", job["id"][:6])
    assert too_short.returncode == 1 and "the first 8 or more hex digits" in too_short.stderr


def test_refusals_name_the_command_that_fixes_them(cli, api):  # noqa: F811
    api.create_runbook("hello", publish=False)
    assert api.post("/api/v1/runbooks/hello/publish").status_code == 201
    draft = cli("runbook", "show", "hello", "--draft")
    assert draft.returncode == 1
    assert draft.stderr == ("sma: Runbook 'hello' has no draft; make one with "
                            "`sma runbook edit hello`.\n")
    publish = cli("runbook", "publish", "hello")
    assert publish.returncode == 1
    assert "`sma runbook edit hello`" in publish.stderr and "PUT" not in publish.stderr

    api.create_runbook("unpublished", publish=False)
    start = cli("runbook", "start", "unpublished")
    assert start.returncode == 1
    assert start.stderr == ("sma: Runbook 'unpublished' has no published version; publish "
                            "it with `sma runbook publish unpublished`.\n")
    missing = cli("runbook", "show", "nope", "--draft")
    assert missing.returncode == 1 and "nope" in missing.stderr and "edit" not in missing.stderr

    module = cli("module", "show", "no-such-module", "1.0")
    assert module.returncode == 1
    assert module.stderr == ("sma: Module 'no-such-module' has no version '1.0'. `sma module "
                             "list --name no-such-module` lists its uploaded versions.\n")


def test_the_api_messages_stay_free_of_http_verbs(api):
    api.create_runbook("plain", publish=False)
    assert api.post("/api/v1/runbooks/plain/publish").status_code == 201
    for path in ("/api/v1/runbooks/plain/draft",):
        body = api.get(path).get_json()
        assert body["message"] == "Runbook 'plain' has no draft."
    body = api.post("/api/v1/runbooks/plain/publish").get_json()
    assert body["message"] == "Runbook 'plain' has no draft to publish; save a draft first."


def test_import_publish_with_a_syntax_error_says_the_draft_was_kept(cli, api):  # noqa: F811
    path = _script(cli.tmp, "bad.py", "def main(:\n    print('x')\n")
    imported = cli("runbook", "import", str(path), "--publish")
    assert imported.returncode == 1
    assert imported.stderr.startswith("sma: Created runbook 'bad', but did not publish it: ")
    assert ("The draft is saved; fix it with `sma runbook edit bad` or import it again, then "
            "`sma runbook publish bad`.") in imported.stderr
    rb = api.get("/api/v1/runbooks/bad").get_json()
    assert rb["published_version"] is None and rb["has_draft"] is True
    fixed = _script(cli.tmp, "bad.py", "def main():\n    print('x')\n")
    again = cli("runbook", "import", str(fixed), "--publish")
    assert again.returncode == 0, again.stderr
    assert "Updated the draft of runbook 'bad' and published version 1." in again.stderr
