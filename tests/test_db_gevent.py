"""SQLite under gevent (the web worker): a write waiting for another process's lock yields
to the other greenlets instead of freezing the process in SQLite's busy handler."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import sqlite3, sys, time
    import gevent
    from sqlalchemy import text
    from smacommon.db import make_engine

    path = sys.argv[1]
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)  # another writer holds the lock
    holder.execute("BEGIN IMMEDIATE")
    ticks = []

    def write():
        with engine.begin() as conn:  # waits for the lock
            conn.execute(text("INSERT INTO t VALUES (1)"))
        return time.monotonic()

    def tick():
        while len(ticks) < 50:
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    began = time.monotonic()
    writer, ticker = gevent.spawn(write), gevent.spawn(tick)
    ticker.join()  # the other greenlet ran while the write waited
    assert not writer.ready(), "the write did not wait"
    holder.execute("COMMIT")
    done = writer.get(timeout=10)
    print(round(ticks[-1] - began, 2), round(done - began, 2))
""")


def test_a_waiting_sqlite_write_lets_other_greenlets_run(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "db.sqlite")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ticked, written = map(float, out.stdout.split())
    assert ticked < 5 and written >= ticked  # 50 ticks in ~0.5 s, then the write went in
