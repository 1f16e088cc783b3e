"""Portal page server time with 100,000 jobs (and 1,000 runbooks) in the database.

Prints JSON: for every main page, the median and worst of 7 requests through the Flask app
(server time: no network, no browser), against the target of 300 ms. SQLite by default;
SMA_BENCH_DATABASE_URL points it at PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

JOBS = int(os.environ.get("BENCH_PORTAL_JOBS", "100000"))
RUNBOOKS = 1000
TOKEN = "sma_bench_portal"


def main(folder: Path) -> None:
    os.environ.update(SMA_DATA_DIR=str(folder), SMA_ADMIN_TOKEN=TOKEN)
    if os.environ.get("SMA_BENCH_DATABASE_URL"):
        os.environ["SMA_DATABASE_URL"] = os.environ["SMA_BENCH_DATABASE_URL"]
    from sqlalchemy import insert

    from smacommon.db import get_engine, utcnow
    from smacommon.migrate import upgrade
    from smacommon.models import Job, JobStream, Runbook, RunbookVersion
    from smacommon.settings import get_settings
    from smaweb.app import create_app

    url = get_settings().effective_database_url
    upgrade(url)
    engine = get_engine(url)
    now = utcnow()
    statuses = ["Completed"] * 8 + ["Failed", "Stopped"]
    runbook_ids = [uuid.uuid4() for _ in range(RUNBOOKS)]
    with engine.begin() as conn:
        conn.execute(insert(Runbook), [
            {"id": rid, "name": f"rb-{i:04d}", "runbook_type": "python", "tags": ["bench"],
             "description": "", "draft_content": None, "created_at": now, "modified_at": now}
            for i, rid in enumerate(runbook_ids)])
        conn.execute(insert(RunbookVersion), [
            {"id": uuid.uuid4(), "runbook_id": rid, "number": 1, "content": "print(1)\n",
             "content_sha256": "0" * 64, "parameters": [], "published_at": now,
             "published_by": "bench"} for rid in runbook_ids])
        for start in range(0, JOBS, 10000):
            conn.execute(insert(Job), [
                {"id": uuid.uuid4(), "runbook_id": runbook_ids[i % RUNBOOKS],
                 "status": statuses[i % len(statuses)], "parameters": {},
                 "worker_group": "default", "started_by": "user:bench",
                 "created_at": now - timedelta(seconds=(JOBS - i) * 5),
                 "start_time": now - timedelta(seconds=(JOBS - i) * 5),
                 "end_time": now - timedelta(seconds=(JOBS - i) * 5 - 1),
                 "modified_at": now, "exception": "Traceback\nValueError: bench"
                 if statuses[i % len(statuses)] == "Failed" else None}
                for i in range(start, min(start + 10000, JOBS))])
        last_job = conn.execute(Job.__table__.select().order_by(
            Job.created_at.desc()).limit(1)).first().id
        conn.execute(insert(JobStream), [
            {"job_id": last_job, "seq": s, "stream": "Output", "time": now,
             "text": f"line {s}"} for s in range(1, 100001)])
    app = create_app()
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
    client.post("/login", data={"token": TOKEN, "csrf_token": csrf})
    pages = {
        "dashboard": "/", "runbooks": "/runbooks", "runbooks tag filter": "/runbooks?tag=bench",
        "runbook": "/runbooks/rb-0500", "jobs": "/jobs",
        "jobs filtered": "/jobs?status=Failed&range=7d", "job (100,000 lines)":
        f"/jobs/{last_job}", "workers": "/workers", "variables": "/assets/variables",
        "schedules": "/schedules", "webhooks": "/webhooks",
    }
    results = {}
    for name, path in pages.items():
        times = []
        for _ in range(7):
            began = time.perf_counter()
            resp = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            assert resp.status_code == 200, (path, resp.status_code)
        results[name] = {"p50_ms": round(statistics.median(times), 1),
                         "max_ms": round(max(times), 1)}
    print(json.dumps({"benchmark": "portal", "jobs": JOBS, "runbooks": RUNBOOKS,
                      "database": engine.dialect.name, "pages": results,
                      "target": "every page < 300 ms server time",
                      "all_under_target": all(r["p50_ms"] < 300 for r in results.values())},
                     indent=2))


if __name__ == "__main__":
    data = Path(tempfile.mkdtemp(prefix="sma-bench-portal-"))
    try:
        main(data)
    finally:  # the 100,000 jobs' database goes with the run (SMA_BENCH_KEEP=1 keeps it)
        if not os.environ.get("SMA_BENCH_KEEP"):
            shutil.rmtree(data, ignore_errors=True)
