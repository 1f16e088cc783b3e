"""The portal in Chromium (tests/test_browser.py's driver): the live job page's facts, the
forms' layout, the runbook list's last runs, and every main page at a phone's width."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.test_browser import CHROMIUM, page, shot  # noqa: F401 - `page` is a fixture

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (make test installs Debian's chromium as root)")

TICKS = ("import time\n"
         "def main(count: int = 3, loud: bool = False, name: str = None):\n"
         "    for i in range(count):\n"
         "        print(f'tick {i}', flush=True)\n"
         "        time.sleep(0.4)\n")

# the gaps between the lines of the output box, and between its top and its first line
LINE_GAPS = """() => {
  const box = document.getElementById('records');
  const top = box.getBoundingClientRect().top + parseFloat(getComputedStyle(box).paddingTop);
  let last = top;
  return [...box.children].map((line) => {
    const r = line.getBoundingClientRect();
    const gap = r.top - last;
    last = r.bottom;
    return Math.round(gap);
  });
}"""


def test_the_job_page_follows_every_field_live(page, api, processes):  # noqa: F811
    """Opened while the job waits for a worker: Worker, Started, Ended and the status history
    fill in from the event stream, without a reload, and live lines follow the drawn ones
    with no gap."""
    group = f"g-{uuid.uuid4().hex[:6]}"
    rb = api.create_runbook(content=TICKS, worker_group=group)
    job = api.start(rb["name"], {"count": 6})
    page.goto(f"/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("New")
    assert page.locator("#job-worker").inner_text().startswith("-")
    assert page.locator("#job-started").inner_text() == "-"
    history = page.locator("#job-history li .status")
    assert history.all_inner_texts() == ["New"]
    worker = processes.worker(group, concurrency=1)
    expect(page.locator("#job-worker")).to_contain_text(worker.name, timeout=30_000)
    expect(page.locator("#job-started")).not_to_have_text("-")
    expect(history.last).to_have_text("Running")
    expect(page.locator("#job-ended")).to_have_text("-")
    page.locator("#records .rec").first.wait_for()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=30_000)
    expect(page.locator("#job-ended")).not_to_have_text("-")
    expect(history.last).to_have_text("Completed")
    assert page.locator("#records .rec").all_inner_texts() == [f"tick {i}" for i in range(6)]
    assert all(gap <= 1 for gap in page.evaluate(LINE_GAPS)), page.evaluate(LINE_GAPS)
    # a page opened halfway: the drawn lines and the live ones meet without a blank line
    second = api.start(rb["name"], {"count": 8})
    page.goto(f"/jobs/{second['id']}")
    page.locator("#records .rec").nth(2).wait_for(timeout=30_000)
    page.reload()
    drawn = page.locator("#records .rec").count()
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=30_000)
    assert page.locator("#records .rec").count() == 8 and drawn < 8
    gaps = page.evaluate(LINE_GAPS)
    assert all(gap <= 1 for gap in gaps), gaps
    assert worker.proc.poll() is None


def test_start_form_labels_checkbox_and_the_favicon(page, api):  # noqa: F811
    """A required parameter's `*` sits on its name's line, the bool's checkbox at the left
    edge; the page's icon is the SVG in static/, loaded under the CSP."""
    api.create_runbook(name="formed", content="def main(target: str, loud: bool = False):\n"
                                              "    print(target)\n")
    page.goto("/runbooks/formed")
    label = page.locator("label[for=p_target]")
    star = label.locator(".req").bounding_box()
    name = label.bounding_box()
    assert name["height"] < 1.5 * star["height"], (name, star)  # name, `*` and type: one line
    box = page.locator("#p_loud").bounding_box()
    form = page.locator("#start-form").bounding_box()
    assert box["x"] - form["x"] < 8 and box["width"] < 30
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert icon.endswith("/static/favicon.svg")
    response = page.request.get(icon)
    assert response.ok and response.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in response.text()


def test_the_schedule_form_shows_the_chosen_frequencys_fields(page, api):  # noqa: F811
    page.goto("/schedules")
    shown = lambda: {n: page.locator(f"[name={n}]").first.is_visible()  # noqa: E731
                     for n in ("interval", "week_days", "month_days", "cron", "expiry_time")}
    assert shown() == {"interval": True, "week_days": False, "month_days": False,
                       "cron": False, "expiry_time": True}  # Day
    page.select_option("#frequency", "Week")
    assert shown()["week_days"] and not shown()["cron"] and not shown()["month_days"]
    page.select_option("#frequency", "Cron")
    assert shown() == {"interval": False, "week_days": False, "month_days": False,
                       "cron": True, "expiry_time": True}
    page.select_option("#frequency", "OneTime")
    assert not any(shown().values())
    page.select_option("#frequency", "Month")
    page.fill("input[name=name]", "monthly-two")
    page.fill("input[name=month_days]", "1 15")
    page.fill("input[name=start_time]", "2031-01-01T09:00:00")
    page.click("button:has-text('Create schedule')")
    expect(page.locator("main")).to_contain_text("monthly-two")
    made = api.get("/api/v1/schedules/monthly-two").get_json()
    assert made["frequency"] == "Month" and made["month_days"] == [1, 15]


def test_the_runbook_list_shows_and_filters_last_runs(page, api, worker):  # noqa: F811
    ok = api.create_runbook(name="lr-fine", content="print('fine')\n")
    bad = api.create_runbook(name="lr-broken", content="raise SystemExit(3)\n")
    api.create_runbook(name="lr-idle")
    for rb in (ok, bad):
        api.wait(api.start(rb["name"])["id"])
    page.goto("/runbooks")
    row = page.locator("tr", has=page.locator("a:text-is('lr-broken')"))
    expect(row.locator(".last-run .status")).to_have_text("Failed")
    page.select_option("#last-status", "Completed")
    page.click(".filters button[type=submit]")
    names = page.locator("tbody tr td:first-child a").all_inner_texts()
    assert "lr-fine" in names and "lr-broken" not in names and "lr-idle" not in names
    page.select_option("#last-status", "never")
    page.click(".filters button[type=submit]")
    assert page.locator("tbody tr td:first-child a").all_inner_texts() == ["lr-idle"]


def test_every_main_page_fits_a_phone(page, api, worker):  # noqa: F811
    """At 375 px wide no page scrolls sideways (wide tables scroll inside their box)."""
    rb = api.create_runbook(name="phone-runbook-with-a-rather-long-name", content=TICKS)
    job = api.start(rb["name"], {"count": 2})
    api.wait(job["id"])
    api.post("/api/v1/schedules", json={"name": "phone-daily", "frequency": "Day",
                                        "start_time": "2030-01-01T09:00:00+00:00"})
    api.post("/api/v1/variables", json={"name": "PhoneVar", "value": "x" * 120})
    page.set_viewport_size({"width": 375, "height": 812})
    wide = {}
    for path in ("/", "/runbooks", f"/runbooks/{rb['name']}", f"/runbooks/{rb['name']}/edit",
                 "/runbooks/new", "/jobs", f"/jobs/{job['id']}", "/assets/variables",
                 "/assets/credentials", "/modules", "/schedules", "/schedules/phone-daily",
                 "/webhooks", "/workers"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > 375:
            wide[path] = width
    assert wide == {}
