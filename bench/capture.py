"""Output capture's own cost, without a runbook: what a worker's pool process spends to take
a job's output from the pipe's reads to rows in SQLite.

300,000 lines (`line N of the output benchmark`, as bench/output.py writes them) cut into
the 64 KiB reads the supervisor makes, through the record channel's Demux, the
LineSplitter and the StreamWriter (the worker's default batch size, foreign keys on) into a
fresh SQLite database in a temporary folder; the CPU time of this process, best of
BENCH_CAPTURE_REPEAT (6). Beside it, its floor measured in the same run: SQLite inserting
the same rows alone, as StreamWriter does (smaworker/streamrows.py: multi-row INSERTs and a
commit a batch, the rows made in advance, its feed excluded), and, for comparison, one
INSERT a row (an `executemany` a batch, how sma wrote them before).
bench/output.py measures the whole path (a real job, its process and the stack) and
carries the target; this one says how much of that is sma's and how much is SQLite's.

    .venv/bin/python bench/capture.py     # BENCH_CAPTURE_LINES=300000
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smacommon.db import get_engine  # noqa: E402
from smacommon.migrate import upgrade  # noqa: E402
from smacommon.settings import Settings  # noqa: E402
from smaworker.capture import StreamWriter  # noqa: E402
from smaworker.channel import Demux, new_tag  # noqa: E402
from smaworker.lines import LineSplitter  # noqa: E402
from smaworker.streamrows import SQLITE_INSERT, insert_records  # noqa: E402

LINES = int(os.environ.get("BENCH_CAPTURE_LINES", "300000"))
REPEAT = int(os.environ.get("BENCH_CAPTURE_REPEAT", "6"))
READ = 65536  # smaworker.supervise reads this much at a time


def _new_job(path: Path) -> uuid.UUID:
    """A job row for the records to belong to (the rest of the stack is not needed)."""
    job_id = uuid.uuid4()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")  # its runbook is left out
        conn.execute("INSERT INTO jobs (id, runbook_id, is_test, status, parameters, "
                     "worker_group, started_by, attempt, created_at, modified_at) VALUES "
                     "(?, ?, 0, 'Running', '{}', 'bench', 'bench', 1, "
                     "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                     (job_id.hex, uuid.uuid4().hex))
    return job_id


def main() -> dict:
    folder = Path(tempfile.mkdtemp(prefix="sma-bench-capture-"))
    try:
        path = folder / "sma.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        engine = get_engine(url)
        settings = Settings(database_url=url)
        data = b"".join(f"line {i} of the output benchmark\n".encode() for i in range(LINES))
        reads = [data[at:at + READ] for at in range(0, len(data), READ)]

        def capture() -> float:
            writer = StreamWriter(engine, _new_job(path), batch_lines=settings.stream_batch_lines,
                                  batch_ms=settings.stream_batch_ms)
            splitter = LineSplitter(settings.max_line_bytes, writer.masker)
            demux = Demux(new_tag(), settings.max_line_bytes)
            started = time.process_time()
            for chunk in reads:
                for _, piece in demux.feed(chunk):
                    writer.add_lines("Output", splitter.feed(piece))
                writer.flush_if_due()
            writer.flush()
            spent = time.process_time() - started
            assert writer.seq == LINES
            return spent

        def sqlite_alone(one_a_row: bool) -> float:
            key, batch = _new_job(path).hex, settings.stream_batch_lines
            stamp = "2026-12-02 10:00:00.123456"
            rows = [(key, n, "Output", stamp, f"line {n} of the output benchmark", None, 1)
                    for n in range(1, LINES + 1)]
            started = time.process_time()
            for at in range(0, LINES, batch):
                with engine.begin() as conn:  # as StreamWriter writes a batch
                    if one_a_row:
                        conn.exec_driver_sql(SQLITE_INSERT, rows[at:at + batch])
                    else:
                        insert_records(conn, rows[at:at + batch])
            return time.process_time() - started

        # in turns, as the database grows
        runs = [(capture(), sqlite_alone(False), sqlite_alone(True)) for _ in range(REPEAT)]
        best, floor, one = (min(r[n] for r in runs) for n in range(3))
        return {
            "benchmark": "capture",
            "lines": LINES,
            "batch_lines": settings.stream_batch_lines,
            "lines_per_cpu_second": round(LINES / best),
            "floor_sqlite_alone_rows_per_cpu_second": round(LINES / floor),
            "share_of_sqlite": round(floor / best, 3),
            "sqlite_one_insert_a_row_rows_per_cpu_second": round(LINES / one),
            "measured": f"CPU time of this process, best of {REPEAT}",
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
