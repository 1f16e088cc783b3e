"""Screenshots of the portal's main pages at desktop and phone width, into screenshots/.

    make screenshots      (or: .venv/bin/python tools/screenshots.py [folder])

Starts a private stack (bench/common.py's start_stack: SQLite, embedded Redis, one worker, in
a temporary folder it removes afterwards), makes a few runbooks, jobs, a schedule and assets,
then drives Chromium as the browser tests do (Playwright, Debian's chromium, headless) and
saves <page>-1280.png and <page>-375.png. Nothing of the stack outlives the run.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import TOKEN, make_runbook, start, start_stack, stop_stack, wait_all  # noqa: E402

WIDTHS = (1280, 375)
REPORT = ("import time\n"
          "def main(servers: int = 3, target: str = 'web', dry_run: bool = False):\n"
          "    for i in range(servers):\n"
          "        print(f'checked {target}{i:02d}: ok', flush=True)\n"
          "        time.sleep(0.1)\n")


def sample_data(session, url: str) -> dict[str, str]:
    """Runbooks (one failing, one never run), finished jobs, a schedule and assets."""
    make_runbook(session, url, "nightly-report", REPORT, description="Checks every server",
                 tags=["ops"])
    make_runbook(session, url, "rotate-keys", "raise SystemExit('vault unreachable')\n")
    make_runbook(session, url, "cleanup-temp", "print('nothing to do')\n")
    jobs = [start(session, url, name) for name in ("nightly-report", "rotate-keys",
                                                   "nightly-report")]
    wait_all(session, url, [j["id"] for j in jobs], 60)
    session.post(f"{url}/api/v1/schedules", json={
        "name": "every-morning", "frequency": "Day", "start_time": "2030-01-01T07:00:00+00:00",
        "time_zone": "Europe/Paris"}).raise_for_status()
    session.post(f"{url}/api/v1/schedules/every-morning/runbooks",
                 json={"runbook": "nightly-report"}).raise_for_status()
    session.post(f"{url}/api/v1/variables", json={"name": "Region", "value": "eu-west"})
    return {"dashboard": "/", "runbooks": "/runbooks", "runbook": "/runbooks/nightly-report",
            "editor": "/runbooks/nightly-report/edit", "jobs": "/jobs",
            "job": f"/jobs/{jobs[0]['id']}", "schedules": "/schedules",
            "schedule": "/schedules/every-morning", "assets": "/assets/variables"}


def shoot(url: str, pages: dict[str, str], folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("make screenshots needs Chromium: as root it installs Debian's "
                         "chromium itself; otherwise install chromium first")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        for width in WIDTHS:
            context = browser.new_context(base_url=url, viewport={"width": width, "height": 900})
            context.set_default_timeout(20_000)
            tab = context.new_page()
            tab.goto("/login")
            tab.fill("#token", TOKEN)
            tab.click("button[type=submit]")
            tab.wait_for_url("**/")
            for name, path in pages.items():
                tab.goto(path)
                tab.wait_for_load_state("networkidle")
                target = folder / f"{name}-{width}.png"
                tab.screenshot(path=str(target), full_page=True)
                print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
            context.close()
        browser.close()


def main() -> None:
    folder = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    stack, session = start_stack(concurrency=2)
    try:
        shoot(stack.api_url, sample_data(session, stack.api_url), folder)
    finally:
        stop_stack(stack)


if __name__ == "__main__":
    main()
