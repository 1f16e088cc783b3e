"""The runbook list's last run: each runbook's latest job, and the filter by its status."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import event, insert

from smacommon.db import get_engine, utcnow
from smacommon.models import Job
from smaweb.portal.runbooks import PAGE
from tests.test_portal import sign_in


def _jobs(services, rows: list[tuple[str, str, int, bool]]) -> None:
    """Jobs of (runbook id, status, minutes ago, is a test job)."""
    now = utcnow()
    with get_engine(services["database_url"]).begin() as conn:
        conn.execute(insert(Job), [
            {"id": uuid.uuid4(), "runbook_id": uuid.UUID(rb), "status": status,
             "parameters": {}, "worker_group": "default", "started_by": "user:t",
             "is_test": test, "created_at": now - timedelta(minutes=ago)}
            for rb, status, ago, test in rows])


def _names(html: str) -> list[str]:
    return re.findall(r'<tr><td><a href="/runbooks/([^"]+)"', html)


def test_the_list_shows_each_runbooks_last_run(client, api, services):
    sign_in(client)
    old, new, idle = (api.create_runbook(name=n) for n in ("lr-old", "lr-new", "lr-idle"))
    _jobs(services, [(old["id"], "Completed", 90, False), (old["id"], "Failed", 30, False),
                     (new["id"], "Failed", 50, False), (new["id"], "Completed", 5, False),
                     (new["id"], "Stopped", 1, True)])  # a draft's test run is not a run
    html = client.get("/runbooks").get_data(as_text=True)
    cells = dict(re.findall(r'href="/runbooks/(lr-[a-z]+)".*?<td class="last-run">(.*?)</td>',
                            html, re.S))
    assert 's-Failed">Failed<' in cells["lr-old"] and "30 min ago" in cells["lr-old"]
    assert 's-Completed">Completed<' in cells["lr-new"] and "5 min ago" in cells["lr-new"]
    assert "never" in cells["lr-idle"] and "status" not in cells["lr-idle"]
    assert _names(client.get("/runbooks?last=Failed").get_data(as_text=True)) == ["lr-old"]
    assert _names(client.get("/runbooks?last=never").get_data(as_text=True)) == ["lr-idle"]
    assert _names(client.get("/runbooks?last=Completed&q=new").get_data(as_text=True)) == [
        "lr-new"]
    empty = client.get("/runbooks?last=Suspended").get_data(as_text=True)
    assert "No runbooks match." in empty
    # an unknown status filters nothing, as an unknown type does
    assert len(_names(client.get("/runbooks?last=Bogus").get_data(as_text=True))) == 3


def test_the_filter_pages_and_the_last_runs_take_one_query(client, api, services, app):
    sign_in(client)
    ids = [api.create_runbook(name=f"lp-{i:02d}")["id"] for i in range(PAGE + 10)]
    # every third runbook last failed (after an earlier success), the others completed
    _jobs(services, [(rb, "Completed", 60, False) for rb in ids]
          + [(rb, "Failed" if i % 3 == 0 else "Completed", 10, False)
             for i, rb in enumerate(ids)])
    failed = {f"lp-{i:02d}" for i in range(0, PAGE + 10, 3)}
    completed = {f"lp-{i:02d}" for i in range(PAGE + 10)} - failed
    seen: list[str] = []
    html = client.get("/runbooks?last=Completed").get_data(as_text=True)
    while True:
        names = _names(html)
        assert len(names) <= PAGE
        seen += names
        more = re.search(r'href="(/runbooks\?[^"]*cursor=[^"]+)"', html)
        if not more:
            break
        assert "last=Completed" in more[1]  # the filter goes on to the next page
        html = client.get(more[1].replace("&amp;", "&")).get_data(as_text=True)
    assert len(seen) == len(completed) and set(seen) == completed
    assert set(_names(client.get("/runbooks?last=Failed").get_data(as_text=True))) == failed
    statements: list[str] = []
    engine = app.extensions["sma_db"].factory.kw["bind"]
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, sql, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        client.get("/runbooks")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    on_jobs = [s for s in statements if re.search(r"\bFROM jobs\b", s)]
    assert len(on_jobs) == 1, on_jobs  # one grouped query for the page's runbooks, not N
