"""The Test pane, versions, delete, re-run and start-from-a-job in a real browser (Debian's
Chromium, headless, through the `page` fixture of tests/test_browser.py)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.test_browser import (  # noqa: F401  (pytest finds the fixture by its name here)
    _type_into_editor,
    page,
    pytestmark,
    shot,
)

TICKS = ("import time\n"
         "def main(count: int = 1):\n"
         "    for i in range(count):\n"
         "        print(f'test tick {i}', flush=True)\n"
         "        time.sleep(0.6)\n")


def test_the_test_pane_runs_the_editors_draft_and_streams_it_live(page, api, worker):  # noqa: F811
    api.create_runbook(name="pane", content="def main():\n    print('published')\n")
    page.goto("/runbooks/pane/edit")
    expect(page.locator("#test-pane")).to_contain_text("No test run yet.")
    _type_into_editor(page, TICKS)
    page.click("#save-draft")  # the pane's form follows the saved draft's parameters
    page.wait_for_url("**/runbooks/pane/edit")
    _type_into_editor(page, TICKS.replace("test tick", "unsaved tick"))  # the test saves it
    page.fill("#test-form #p_count", "2.5")
    page.click("#start-test")
    assert page.locator("#test-form #err-p_count").inner_text() == "Must be a whole number."
    page.fill("#test-form #p_count", "4")
    page.click("#start-test")
    page.wait_for_url("**/runbooks/pane/edit?test=*")
    records = page.locator("#test-pane #records .rec.st-Output")
    records.first.wait_for()
    first_count = records.count()
    assert first_count < 4
    records.nth(first_count).wait_for()  # more lines arrive without a reload
    expect(page.locator("#test-pane #job-status")).to_have_text("Completed", timeout=30_000)
    expect(page.locator("#test-pane #live-state")).to_have_text("The job has ended.")
    assert [r.strip() for r in records.all_inner_texts()] == [f"unsaved tick {i}" for i in range(4)]
    assert "unsaved tick" in page.locator(".cm-content").inner_text()  # the draft it ran
    shot(page, "test-pane")
    assert api.get("/api/v1/runbooks/pane").get_json()["published_version"]["number"] == 1


def test_versions_read_only_diff_and_delete_with_confirmation(page, api):  # noqa: F811
    api.create_runbook(name="history", content="print('one')\n")
    api.put("/api/v1/runbooks/history/draft", json={"content": "print('two')\n"})
    api.post("/api/v1/runbooks/history/publish")
    page.goto("/runbooks/history")
    page.click("a[href='/runbooks/history/versions/1']")
    page.wait_for_url("**/versions/1")
    assert page.locator(".cm-editor").count() == 1
    page.locator(".cm-content").click()
    page.keyboard.insert_text("changed ")
    assert page.locator(".cm-content").inner_text().strip() == "print('one')"  # read-only
    page.fill("#compare-form input[name=b]", "2")
    page.click("#compare-form button")
    page.wait_for_url("**/versions/diff?a=1&b=2")
    expect(page.locator("pre.diff .del")).to_have_text("-print('one')")
    expect(page.locator("pre.diff .add")).to_have_text("+print('two')")
    shot(page, "versions-diff")
    page.goto("/runbooks/history")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete-runbook button")
    assert api.get("/api/v1/runbooks/history").status_code == 200  # dismissed: kept
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-runbook button")
    page.wait_for_url("**/runbooks")
    expect(page.locator(".flash.ok")).to_contain_text("Runbook history deleted")
    assert api.get("/api/v1/runbooks/history").status_code == 404


def test_delete_is_refused_with_the_reason_while_a_job_runs(page, api):  # noqa: F811
    api.create_runbook(name="busy")
    api.start("busy", worker_group="nobody")
    page.goto("/runbooks/busy")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-runbook button")
    expect(page.locator(".flash.error")).to_contain_text("not yet finished; stop them first")
    assert page.url.endswith("/runbooks/busy")


def test_rerun_with_a_sealed_secret_and_start_from_a_job(page, api, worker):  # noqa: F811
    api.create_runbook(name="secretive", content=(
        "from smarunbook import Secret\n"
        "def main(who: str, token: Secret, loud: bool = False):\n"
        "    print(f'{who} has a token of {len(token)} characters', flush=True)\n"))
    first = api.start("secretive", {"who": "ops", "token": "s3cr3t-value", "loud": True})
    api.wait(first["id"])
    page.goto(f"/jobs/{first['id']}")
    button = page.locator("#rerun-job")
    expect(button).to_have_text("Run again: published version 1, same parameters")
    button.click()
    page.wait_for_url("**/jobs/*")
    assert first["id"] not in page.url
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=30_000)
    expect(page.locator("#records .rec.st-Output")).to_contain_text(
        "ops has a token of 12 characters")  # the secret came from the server, not the page
    page.goto(f"/jobs/{first['id']}")
    page.click("#start-from-job")
    page.wait_for_url("**/runbooks/secretive?from_job=*")
    expect(page.locator("#p_who")).to_have_value("ops")
    expect(page.locator("#p_token")).to_have_value("")
    expect(page.locator("#p_loud")).to_be_checked()
    expect(page.locator(".flash.ok")).to_contain_text("Type the secret value of token again")
    page.click("#start-form button[type=submit]")
    assert page.locator("#err-p_token").inner_text() == "Required."  # asked for again
    page.fill("#p_token", "abc")
    page.click("#start-form button[type=submit]")
    page.wait_for_url("**/jobs/*")
    expect(page.locator("#records .rec.st-Output")).to_contain_text(
        "ops has a token of 3 characters", timeout=30_000)
