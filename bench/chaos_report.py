"""After the chaos: every job read through the API and from the database, audited, and the
figures set beside their targets (issue 13)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from chaos_audit import JobAudit, audit_records
from sqlalchemy import create_engine, select

from smacommon.models import Job, JobStatusEvent, JobStream, Runbook

SETTLED = {"Completed", "Failed", "Stopped", "Suspended"}


def read_database(db_url: str, runbook: str) -> dict[str, dict]:
    """Each job of `runbook`: its row, records and status history, from the database."""
    engine = create_engine(db_url)
    jobs: dict[str, dict] = {}
    with engine.connect() as conn:
        rb = conn.scalar(select(Runbook.id).where(Runbook.name == runbook))
        for row in conn.execute(select(Job.id, Job.status, Job.attempt, Job.parameters,
                                       Job.created_at, Job.status_reason, Job.exception)
                                .where(Job.runbook_id == rb)):
            jobs[str(row.id)] = {"status": row.status, "attempt": row.attempt,
                                 "tag": (row.parameters or {}).get("tag"),
                                 "created": row.created_at.timestamp(),
                                 "reason": row.status_reason, "exception": row.exception,
                                 "records": [], "history": []}
        for row in conn.execute(select(JobStream.job_id, JobStream.seq, JobStream.stream,
                                       JobStream.text, JobStream.time)
                                .join(Job, Job.id == JobStream.job_id)
                                .where(Job.runbook_id == rb)
                                .order_by(JobStream.job_id, JobStream.seq)):
            job = jobs[str(row.job_id)]
            job["records"].append((row.seq, row.stream, row.text))
            job.setdefault("times", []).append(row.time.timestamp())
        for row in conn.execute(select(JobStatusEvent.job_id, JobStatusEvent.status,
                                       JobStatusEvent.time, JobStatusEvent.reason,
                                       JobStatusEvent.actor)
                                .join(Job, Job.id == JobStatusEvent.job_id)
                                .where(Job.runbook_id == rb).order_by(JobStatusEvent.id)):
            job = jobs[str(row.job_id)]
            job["history"].append((row.status, row.time.timestamp(), row.reason))
            job.setdefault("actors", []).append(row.actor)
    engine.dispose()
    return jobs


def read_api(session: requests.Session, url: str, ids: list[str]) -> dict[str, dict | None]:
    """Each job through the API (GET /jobs/{id} and all its /streams); None when 404."""
    def one(job_id: str) -> tuple[str, dict | None]:
        resp = session.get(f"{url}/api/v1/jobs/{job_id}", timeout=60)
        if resp.status_code == 404:
            return job_id, None
        resp.raise_for_status()
        job = resp.json()
        records, after = [], 0
        while after is not None:
            page = session.get(f"{url}/api/v1/jobs/{job_id}/streams",
                               params={"after_seq": after, "limit": 10000}, timeout=60)
            page.raise_for_status()
            body = page.json()
            records += [(r["seq"], r["stream"], r["text"]) for r in body["items"]]
            after = body["next_after_seq"]
        job["records"] = records
        return job_id, job

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, ids))


_BEGIN = re.compile(r"^chaos \S+ begin (\d+)/")


def resume_gaps(job: dict) -> list[float]:
    """Seconds from the last record of an attempt to the begin line of the next: how long
    the job stood still after its worker was lost."""
    gaps = []
    records, times = job["records"], job.get("times", [])
    for i, (_seq, _stream, text) in enumerate(records):
        m = _BEGIN.match(text)
        if not m or i == 0:
            continue
        own_warning = f" warning {m.group(1)}/"  # the new attempt's, stored before its begin
        before = [times[j] for j in range(i) if own_warning not in records[j][2]]
        if before:
            gaps.append(times[i] - before[-1])
    return gaps


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pct(p: float) -> float:
        k = (len(ordered) - 1) * p / 100
        lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
        return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 2)

    return {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(ordered[-1], 2),
            "over_10s": sum(v > 10 for v in ordered), "over_30s": sum(v > 30 for v in ordered)}


def audit(db: dict[str, dict], api: dict[str, dict | None], acknowledged: dict[str, str],
          steps: int) -> dict:
    """The audit figures of every job."""
    acked_ids = set(acknowledged.values())
    lost = sorted(i for i in acked_ids if i not in db or api.get(i) is None)
    by_status = Counter(job["status"] for job in db.values())
    stuck = sorted(i for i, job in db.items() if job["status"] not in SETTLED)
    tags = Counter(job["tag"] for job in db.values())
    mismatch = [i for i, job in db.items() if api.get(i) is not None and (
        api[i]["status"] != job["status"] or api[i]["records"] != job["records"])]
    totals: Counter = Counter()
    jobs_with: Counter = Counter()
    other: Counter = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    waits, durations, gaps, attempts = [], [], [], Counter()
    for job_id, job in db.items():
        result: JobAudit = audit_records(job["tag"] or "", steps, job["records"],
                                         job["status"] == "Completed")
        for name in ("missing", "out_of_order", "duplicate_records_beyond",
                     "steps_rerun_beyond", "steps_rerun_within", "behind_stored_records",
                     "checkpoint_regressions", "foreign"):
            value = getattr(result, name)
            totals[name] += value
            if value:
                jobs_with[name] += 1
                if len(examples[name]) < 3:
                    examples[name].append(job_id)
        other.update(result.other)
        gaps += resume_gaps(job)
        attempts[job["attempt"]] += 1
        if result.attempts_seen != job["attempt"]:
            jobs_with["attempts_seen_not_attempt"] += 1
        running = [t for status, t, _ in job["history"] if status == "Running"]
        if running:
            waits.append(running[0] - job["created"])
        if job["status"] == "Completed" and job["history"]:
            durations.append(job["history"][-1][1] - job["created"])
    failed = {i: (db[i]["reason"] or db[i]["exception"] or "")[:200]
              for i in db if db[i]["status"] == "Failed"}
    return {
        "acknowledged": len(acked_ids), "in_database": len(db),
        "by_status": dict(sorted(by_status.items())),
        "lost": len(lost), "lost_ids": lost[:20],
        "stuck": len(stuck), "stuck_ids": stuck[:20],
        "stuck_statuses": dict(Counter(db[i]["status"] for i in stuck)),
        "failed_reasons": dict(Counter(failed.values()).most_common(10)),
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "duplicate_starts": sum(n - 1 for tag, n in tags.items() if n > 1),
        "api_database_mismatch": len(mismatch),
        "records": {name: {"count": totals[name], "jobs": jobs_with[name]}
                    for name in sorted(totals)},
        "attempts_seen_not_attempt": jobs_with["attempts_seen_not_attempt"],
        "records_not_from_runbook": dict(other),
        "examples": dict(examples),
        "wait_start_to_running_s": percentiles(waits),
        "never_ran": len(db) - len(waits),
        "start_to_completed_s": percentiles(durations),
        "resume_gap_s": percentiles(gaps),
    }


def recoveries(db: dict[str, dict], faults: list) -> dict:
    """For each job the reaper resumed: seconds from the kill of the worker that ran it to
    its next Running (lost-worker detection plus requeue); and resumptions with no kill of
    that worker before them (a live worker's job taken over: a stall, an outage)."""
    seconds, without_kill = [], 0
    for job in db.values():
        ran_on = None
        history = job["history"]
        for i, (status, t, _reason) in enumerate(history):
            if status == "Activating":
                ran_on = None
            if status == "Resuming" and ran_on is not None:
                kills = [f.start for f in faults if f.kind == "kill_worker"
                         and f.target == ran_on and f.start <= t]
                later = [u for st, u, _ in history[i:] if st == "Running"]
                if kills and later:
                    seconds.append(later[0] - max(kills))
                else:
                    without_kill += 1
            if status == "Running":
                ran_on = _worker_of(job, i)
    return {"kill_to_running_again_s": percentiles(seconds),
            "resumed_without_kill": without_kill}


def _worker_of(job: dict, index: int) -> str | None:
    actor = job.get("actors", [None] * (index + 1))[index] or ""
    # the stack names its workers chaos-worker-N; the chaos loop's targets are worker-N
    return actor.removeprefix("worker:chaos-") if actor.startswith("worker:") else None


_PATTERNS = {"tracebacks": re.compile(r"^Traceback \(most recent call last\)"),
             "unrecoverable": re.compile(r"Unrecoverable error"),
             "worker_lost_error": re.compile(r"WorkerLostError"),
             "restoring_unacked": re.compile(r"Restoring \d+ unacknowledged message"),
             "errors": re.compile(r"\b(ERROR|CRITICAL)\b")}


def scan_logs(folder: Path) -> dict:
    """How often each process kind logged a traceback (a chain of them counts once), an
    unrecoverable error, an ERROR."""
    found: dict[str, Counter] = defaultdict(Counter)
    for path in sorted(folder.glob("*.log")):
        kind = path.stem.split("-")[0]
        chained = False
        with open(path, errors="replace") as fh:
            for line in fh:
                for name, pattern in _PATTERNS.items():
                    if pattern.search(line) and not (name == "tracebacks" and chained):
                        found[kind][name] += 1
                if line.strip():
                    chained = line.startswith(("During handling of the above exception",
                                               "The above exception was the direct cause"))
    return {kind: dict(counts) for kind, counts in sorted(found.items())}


def targets(report: dict) -> dict:
    """Each figure beside its floor (issue 13), and whether it holds."""
    a, http = report["audit"], report["http"]
    p99 = a["wait_start_to_running_s"].get("p99", float("inf"))
    rec = a["records"]

    def count(name: str) -> int:
        return rec.get(name, {}).get("count", 0)

    rows = {
        "lost_jobs": (a["lost"], "0"),
        "stuck_jobs": (a["stuck"], "0"),
        "failed_jobs": (a["by_status"].get("Failed", 0), "0"),
        "not_completed_jobs": (a["in_database"] - a["by_status"].get("Completed", 0), "0"),
        "missing_lines": (count("missing"), "0"),
        "out_of_order_lines": (count("out_of_order"), "0"),
        "duplicate_lines_beyond_allowance": (count("duplicate_records_beyond"), "0"),
        "steps_rerun_beyond_allowance": (count("steps_rerun_beyond"), "0"),
        "checkpoint_regressions": (count("checkpoint_regressions"), "0"),
        "foreign_lines": (count("foreign"), "0"),
        "api_database_mismatch": (a["api_database_mismatch"], "0"),
        "http_500": (http["http_500"], "0"),
        "worker_exits_not_caused_by_chaos": (
            sum(e["process"].startswith("worker") for e in report["unexpected_exits"]), "0"),
        "p99_start_to_running_s": (p99, "< 10"),
    }
    out = {}
    for name, (value, floor) in rows.items():
        ok = value < 10 if floor == "< 10" else value == 0
        out[name] = {"value": value, "floor": floor, "ok": bool(ok)}
    return out

