"""The portal in a real browser: Debian's Chromium, headless, driven by Playwright.

Screenshots of the main pages go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import ADMIN_TOKEN, ROOT
from tests.modulefiles import upload

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ROOT / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make test installs Debian's chromium as root)")

COUNTER = ("import time\n"
           "def main(count: int = 3):\n"
           "    for i in range(count):\n"
           "        print(f'tick {i}', flush=True)\n"
           "        time.sleep(0.6)\n")


# every Content-Security-Policy violation, whatever refused it, as a console error
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} in ${e.sourceFile}`));
"""


@pytest.fixture
def page(services):
    """A signed-in tab; the test fails on any console error, script error or CSP violation."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(base_url=services["api_url"],
                                      viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        context.add_init_script(REPORT_VIOLATIONS)
        tab = context.new_page()
        tab.problems = []
        tab.on("console", lambda m: tab.problems.append(f"{tab.url}: {m.text}")
               if m.type == "error" else None)
        tab.on("pageerror", lambda e: tab.problems.append(f"{tab.url}: {e}"))
        tab.goto("/login")
        tab.fill("#token", ADMIN_TOKEN)
        tab.click("button[type=submit]")
        tab.wait_for_url("**/")
        yield tab
        problems = list(tab.problems)
        context.close()
        browser.close()
    assert not problems, "\n".join(problems)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _type_into_editor(page, text: str) -> None:
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)  # as a paste: no auto-indent or closing brackets


def test_write_publish_start_and_watch_it_live(page, worker):
    shot(page, "dashboard")
    page.click("text=Runbooks")
    page.click("text=New runbook")
    page.fill("input[name=name]", "from-browser")
    _type_into_editor(page, COUNTER)
    page.click("button:has-text('Create draft')")
    page.wait_for_url("**/runbooks/from-browser/edit")
    assert page.locator(".cm-editor").count() == 1  # the code editor, not a bare textarea
    assert "tick" in page.locator(".cm-content").inner_text()
    shot(page, "editor")
    page.click("#publish")
    page.wait_for_url("**/runbooks/from-browser")
    assert "Published version 1" in page.content()
    # the start form comes from the declared parameters; the browser checks it first
    page.fill("#p_count", "1.5")
    page.click("#start-form button[type=submit]")
    assert page.locator("#err-p_count").inner_text() == "Must be a whole number."
    assert "/runbooks/from-browser" in page.url  # nothing was sent
    page.fill("#p_count", "5")
    shot(page, "runbook")
    page.click("#start-form button[type=submit]")
    page.wait_for_url("**/jobs/*")
    records = page.locator("#records .rec.st-Output")
    records.first.wait_for()
    seen_while_running = page.locator("#job-status").inner_text()
    first_count = records.count()
    assert first_count < 5 and seen_while_running in ("Running", "Activating")
    records.nth(first_count).wait_for()  # more lines arrive without a reload
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=30_000)
    assert [r.strip() for r in records.all_inner_texts()] == [f"tick {i}" for i in range(5)]
    shot(page, "job")
    page.click("text=Jobs")
    page.wait_for_url("**/jobs")  # the click navigates: the page is read once it loaded
    expect(page.locator("body")).to_contain_text("from-browser")
    shot(page, "jobs")


def test_stop_a_long_job(page, api, worker):
    api.create_runbook(name="sleeper", content="import time\nprint('up', flush=True)\n"
                                               "time.sleep(1000)\n")
    job = api.start("sleeper")
    page.goto(f"/jobs/{job['id']}")
    page.locator("#records .rec").first.wait_for()
    page.click("#stop-job")
    expect(page.locator("#job-status")).to_have_text("Stopped", timeout=30_000)
    assert api.get(f"/api/v1/jobs/{job['id']}").get_json()["status"] == "Stopped"
    assert page.locator("#stop-job").count() == 0


def test_secret_field_stays_empty_after_save(page):
    page.goto("/assets/credentials")
    page.fill("input[name=name]", "Db")
    page.fill("input[name=username]", "app")
    page.fill("input[name=password]", "pw-123456")
    page.click("button:has-text('Create')")
    page.click("a:text-is('Db')")
    assert page.input_value("#secret-password") == ""
    page.fill("input[name=username]", "app2")
    page.click("#save-asset")
    page.wait_for_selector("text=Saved Db.")
    assert page.input_value("#secret-password") == ""
    assert page.input_value("input[name=username]") == "app2"
    assert "pw-123456" not in page.content()
    shot(page, "credential")
    for path, name in (("/assets/variables", "assets"), ("/schedules", "schedules"),
                       ("/webhooks", "webhooks"), ("/workers", "workers")):
        page.goto(path)
        shot(page, name)


def test_phone_width_and_keyboard(page):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/runbooks")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400  # no sideways scrolling of the page itself
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert "Skip to content" in focused
    shot(page, "runbooks-phone")


def test_nothing_loads_from_outside(page, services):
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
        services["api_url"]) and not r.url.startswith("data:") else None)
    for path in ("/", "/runbooks", "/runbooks/new", "/jobs", "/assets/variables",
                 "/modules", "/schedules", "/webhooks", "/workers"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    time.sleep(0.2)
    assert outside == []




def test_jobs_list_refreshes_live_rows(page, api):
    rb = api.create_runbook(name="waits-here")
    job = api.start(rb["name"], worker_group="nobody-serves-this")
    page.goto("/jobs")
    row = page.locator(f"#job-{job['id']} .status")
    assert row.inner_text() == "New"
    api.post(f"/api/v1/jobs/{job['id']}/stop")
    # no reload: htmx polls the rows of live jobs
    expect(row).to_have_text("Stopped", timeout=15_000)


def test_every_page_works_under_the_content_security_policy(page, api, worker):
    """Each kind of page loads with the strict CSP, and nothing on it is refused (the
    fixture fails the test on any violation or script error)."""
    rb = api.create_runbook(name="csp-walk", content=COUNTER)
    api.put("/api/v1/runbooks/csp-walk/draft", json={"content": COUNTER + "# changed\n"})
    api.post("/api/v1/credentials", json={"name": "CspDb", "username": "u", "password": "pw-123456"})
    api.post("/api/v1/schedules", json={"name": "csp-daily", "frequency": "Day",
                                        "start_time": "2030-01-01T09:00:00+00:00"})
    api.post("/api/v1/schedules/csp-daily/runbooks", json={"runbook": rb["name"]})
    api.post("/api/v1/webhooks", json={"name": "csp-hook", "runbook": rb["name"]})
    upload(api, b"# version: 1.0\ngreet() { echo hi; }\n", "csp-lib.sh")
    for path in ("/", "/runbooks", "/runbooks/csp-walk", "/runbooks/csp-walk/diff", "/jobs",
                 "/assets/variables", "/assets/credentials/CspDb", "/modules",
                 "/modules/csp-lib/1.0", "/schedules", "/schedules/csp-daily", "/webhooks",
                 "/workers"):
        response = page.goto(path)
        assert response.status == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        page.wait_for_load_state("networkidle")
    page.goto("/runbooks/csp-walk/edit")  # CodeMirror, its <style> admitted by the nonce
    editor = page.locator(".cm-editor")
    expect(editor).to_have_css("display", "flex")  # CodeMirror's own styles took effect
    assert page.evaluate("() => document.querySelector('meta[name=csp-nonce]').nonce") != ""
    job = api.start(rb["name"], {"count": 4})
    page.goto(f"/jobs/{job['id']}")  # live output over server-sent events
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=30_000)
    expect(page.locator("#records .rec.st-Output")).to_have_count(4)
    page.goto("/api/docs")  # Swagger UI, started from a file, its assets from this server
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("sma", timeout=20_000)
    page.wait_for_load_state("networkidle")
    assert page.problems == []


def test_upload_download_and_delete_a_module(page, tmp_path):
    """The Modules page in the browser: the file input, the flash, the download through the
    session, the delete's confirmation (dismissed first, then accepted)."""
    library = tmp_path / "browser-lib.sh"
    library.write_bytes(b"# version: 0.3\nsay() { echo \"$1\"; }\n")
    page.goto("/modules")
    page.get_by_role("link", name="Modules").and_(page.locator("[aria-current=page]")).wait_for()
    page.locator("#module-file").set_input_files(str(library))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".flash.ok")).to_have_text("Uploaded browser-lib 0.3.")
    row = page.locator("#modules tbody tr").first
    expect(row.locator("td").nth(2)).to_have_text("bash")
    shot(page, "modules")
    with page.expect_download() as download:
        row.get_by_role("link", name="Download browser-lib.sh").click()
    assert download.value.suggested_filename == "browser-lib.sh"
    assert download.value.path().read_bytes() == library.read_bytes()
    row.get_by_role("link", name="browser-lib", exact=True).click()
    # loaded: the Delete form's confirmation is attached on DOMContentLoaded (portal.js), a
    # click on the button before it submits the form unasked
    page.wait_for_url("**/modules/browser-lib/0.3")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("h1")).to_contain_text("Module browser-lib")  # still there
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".flash.ok")).to_have_text("Deleted browser-lib 0.3.")
    expect(page.locator("main")).to_contain_text("No modules yet.")


def test_a_new_attempt_is_separated_live(page, api, processes):
    """The job's page is open while its worker is killed: when the resumed run's records
    arrive, a line says which attempt they are, on which worker, from which checkpoint."""
    import uuid

    from tests.test_job_control import STEPS, _running_with

    group = f"g-{uuid.uuid4().hex[:6]}"
    first = processes.worker(group, concurrency=1)
    rb = api.create_runbook(content=STEPS.format(n=10, pause=0.4), worker_group=group)
    job = api.start(rb["name"])
    _running_with(api, job["id"], "step 2")
    page.goto(f"/jobs/{job['id']}")
    page.locator("#records .rec").first.wait_for()
    assert page.locator("#records .attempt-sep").count() == 0
    assert page.locator("#job-attempt").is_hidden()
    first.kill()
    second = processes.worker(group, concurrency=1)
    processes.beat()
    separator = page.locator("#records .attempt-sep")
    expect(separator).to_have_count(1, timeout=60_000)
    expect(separator).to_contain_text(
        f"Attempt 2 — resumed on worker {second.name} from the checkpoint of ",
        timeout=10_000)
    expect(separator).to_contain_text("after its worker was lost")
    expect(page.locator("#job-attempt")).to_have_text("resumed · attempt 2")
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=60_000)
    # what came before the line is attempt 1's, what came after attempt 2's
    drawn = page.evaluate("""() => [...document.querySelectorAll('#records > div')]
        .map((e) => [e.className.split(' ')[0], e.dataset.attempt])""")
    at = drawn.index(["attempt-sep", "2"])
    assert {a for _, a in drawn[:at]} == {"1"} and {a for _, a in drawn[at + 1:]} == {"2"}
    shot(page, "job-resumed")
