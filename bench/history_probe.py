"""bench/history.py's measurements: each page timed through HTTP, its query (the very
statement the view builds) explained with EXPLAIN (ANALYZE, BUFFERS), its answer checked."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

import requests
from sqlalchemy import ClauseElement, Executable, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles

from bench.common import ms, percentile
from smacommon.models import Job, Runbook
from smaweb.jobpage import page_statement
from smaweb.pagination import encode_cursor
from smaweb.queries import jobs_statement
from smaweb.streampage import in_key_order, stream_statement

EXPLAINS = 5  # the SQL floor: the median execution time of this many EXPLAIN ANALYZE runs


class Explain(Executable, ClauseElement):
    """EXPLAIN (ANALYZE, BUFFERS) of a statement, its parameters bound as the app binds them."""

    inherit_cache = False

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler, **kw) -> str:
    return "EXPLAIN (ANALYZE, BUFFERS) " + compiler.process(element.stmt, **kw)


def cpu_seconds(pid: int | None) -> float:
    """CPU time process `pid` has used (0.0 when there is none to read)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Probe:
    def __init__(self, engine: Engine, base: str, token: str, repeat: int,
                 web_pid: int | None = None) -> None:
        self.engine, self.base, self.repeat, self.web_pid = engine, base, repeat, web_pid
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.web_cpu_ms: float | None = None  # the web process's CPU a request, last timed

    def timed(self, path: str, params: dict) -> tuple[list[float], dict]:
        """Three untimed requests (warm caches, connection), then `repeat` timed ones: from
        the request to the last byte of the answer (the client's JSON parsing after). The
        web process's CPU a timed request goes to `web_cpu_ms`: on a noisy machine a steadier
        figure than the time, to compare two versions by."""
        for _ in range(3):
            self._get(path, params)
        times = []
        cpu = cpu_seconds(self.web_pid)
        for _ in range(self.repeat):
            started = time.perf_counter()
            resp = self._get(path, params)
            times.append(time.perf_counter() - started)
        if self.web_pid is not None:
            self.web_cpu_ms = ms((cpu_seconds(self.web_pid) - cpu) / self.repeat)
        return times, resp.json()

    def _get(self, path: str, params: dict) -> requests.Response:
        resp = self.http.get(self.base + path, params=params)
        resp.raise_for_status()
        resp.content  # noqa: B018 - read it all
        return resp

    def floor(self) -> dict:
        times, _ = self.timed("/health", {})
        return {"p50_ms": ms(percentile(times, 50)), "p95_ms": ms(percentile(times, 95)),
                "web_cpu_ms": self.web_cpu_ms}

    def explain(self, stmt, key: str | None, settings=nullcontext) -> dict:
        """The plan and the median execution time, in a transaction `settings(conn)` sets up
        as the view does."""
        runs = []
        with self.engine.connect() as conn, settings(conn):
            for _ in range(EXPLAINS):
                plan = [row[0] for row in conn.execute(Explain(stmt))]
                runs.append(next(float(line.split(":")[1].split()[0]) for line in plan
                                 if line.startswith("Execution Time")))
        # a seek: no table read whole, and the index started at the page's key when it has
        # one (a Sort over what a bitmap of that seek found, near the end, reads no more)
        seeks = not any("Seq Scan" in line for line in plan) and (
            key is None or any("Index Cond" in line and key in line for line in plan))
        return {"sql_ms": round(statistics.median(runs), 3), "plan_seeks": seeks,
                "plan": plan}

    def case(self, path: str, params: dict, stmt, key: str | None, check,
             settings=nullcontext) -> dict:
        times, body = self.timed(path, params)
        return {"p50_ms": ms(percentile(times, 50)), "p95_ms": ms(percentile(times, 95)),
                "max_ms": ms(max(times)), "web_cpu_ms": self.web_cpu_ms,
                "requests": len(times), "params": params,
                **self.explain(stmt, key, settings), "answer_checked": check(body)}

    def job_pages(self, runbooks: list[str], page: int) -> dict:
        """The jobs list: unfiltered at the first page and deep ones, and by runbook and by
        status from the first page to the last."""
        with self.engine.connect() as conn:
            runbook_id = conn.execute(select(Runbook.id).where(
                Runbook.name == runbooks[len(runbooks) // 2])).scalar_one()
        filters = {"": ({}, jobs_statement()),
                   "runbook": ({"runbook": runbooks[len(runbooks) // 2]},
                               jobs_statement(runbook_id)),
                   "status": ({"status": "Failed"}, jobs_statement(statuses=["Failed"]))}
        results = {}
        for label, (params, base) in filters.items():
            with self.engine.connect() as conn:
                total = conn.execute(select(func.count()).select_from(base.subquery())
                                     ).scalar_one()
            pages = -(-total // page)
            wanted = ([1, *sorted({round(pages * f) for f in (0.1, 0.5, 0.95)})] if not label
                      else [1, max(1, pages // 2), pages])
            for number in wanted:
                cursor, expected = self._position(base, page, number)
                query = {**params, "limit": page, **({"cursor": cursor} if cursor else {})}
                name = f"jobs{' by ' + label if label else ''} page {number:,} of {pages:,}"
                results[name] = self.case(
                    "/api/v1/jobs", query,
                    page_statement(base, page, cursor),
                    "ROW(created_at, id) <" if cursor else None,
                    lambda body, expected=expected: [j["id"] for j in body["items"]] == expected)
        return results

    def _position(self, base, page: int, number: int) -> tuple[str | None, list[str]]:
        """The cursor that asks for page `number` (the last item of the page before it),
        and the ids that page holds (by OFFSET, the slow way, to check the seek)."""
        order = (Job.created_at.desc(), Job.id.desc())
        ordered = base.with_only_columns(Job.created_at, Job.id).order_by(*order)
        with self.engine.connect() as conn:
            cursor = None
            if number > 1:
                stamp, last = conn.execute(ordered.offset((number - 1) * page - 1)
                                           .limit(1)).one()
                cursor = encode_cursor(stamp, last)
            ids = [str(row.id) for row in conn.execute(ordered.offset((number - 1) * page)
                                                       .limit(page))]
        return cursor, ids

    def stream_pages(self, job_id: str, lines: int) -> dict:
        """A big job's records at its start, middle and end, 1,000 and 10,000 a page."""
        results = {}
        for limit in (1000, 10000):
            for where, after in (("start", 0), ("middle", lines // 2),
                                 ("end", max(0, lines - limit))):
                expected = list(range(after + 1, min(lines, after + limit) + 1))
                results[f"streams {where} limit {limit:,}"] = self.case(
                    f"/api/v1/jobs/{job_id}/streams", {"after_seq": after, "limit": limit},
                    stream_statement(uuid.UUID(job_id), after, limit), "seq >",
                    lambda body, expected=expected: [r["seq"] for r in body["items"]]
                    == expected, in_key_order)
        return results

