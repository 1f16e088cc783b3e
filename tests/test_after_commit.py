"""`when_committed` on a Core connection (smacommon.db): its callbacks run once the COMMIT
has succeeded, never when the transaction rolls back or its COMMIT fails. The worker's
transition logs and run metrics go through it: a COMMIT that failed and was tried again
must not log or count the job's end twice. On the real database of the run (SQLite, and
PostgreSQL in make test's second pass)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from smacommon.db import get_engine, read_connection, when_committed
from smacommon.models import Runbook


@pytest.fixture
def engine(services):
    return get_engine(services["database_url"])


def test_callbacks_run_after_the_commit_is_in(engine):
    name = f"after-commit-{uuid.uuid4().hex[:8]}"
    seen: list[object] = []

    def look() -> None:  # from another connection: only a committed row is there to see
        with read_connection(engine) as other:
            seen.append(other.scalar(select(Runbook.name).where(Runbook.name == name)))

    with engine.begin() as conn:
        conn.execute(Runbook.__table__.insert().values(
            id=uuid.uuid4(), name=name, runbook_type="python", draft_content="print(1)\n"))
        when_committed(conn, look)
        assert seen == []
    assert seen == [name]


def test_callbacks_do_not_run_when_the_transaction_rolls_back(engine):
    ran: list[bool] = []
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        when_committed(conn, lambda: ran.append(True))
        raise RuntimeError("the work failed")
    with engine.begin() as conn:  # the same pooled connection, most likely: nothing left
        conn.execute(text("SELECT 1"))
    assert ran == []


def test_callbacks_do_not_run_when_the_commit_fails(engine):
    """A constraint checked at COMMIT fails it: what waited for it does not run, neither
    then nor with the connection's next transaction."""
    ran: list[bool] = []
    with pytest.raises(IntegrityError), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE TEMP TABLE once (id int UNIQUE DEFERRABLE "
                              "INITIALLY DEFERRED) ON COMMIT DROP"))
            conn.execute(text("INSERT INTO once VALUES (1), (1)"))
        else:  # SQLite defers only foreign keys
            conn.execute(text("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)"))
            conn.execute(text("CREATE TEMP TABLE child (parent_id INTEGER REFERENCES "
                              "parent (id) DEFERRABLE INITIALLY DEFERRED)"))
            conn.execute(text("INSERT INTO child VALUES (99)"))
        when_committed(conn, lambda: ran.append(True))
    for _ in range(3):  # whichever pooled connection comes next
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
    assert ran == []


def test_callbacks_of_a_connection_kept_open_run_by_its_next_transaction(engine):
    ran: list[int] = []
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        when_committed(conn, lambda: ran.append(1))
        conn.commit()
        conn.execute(text("SELECT 1"))  # (begins the next transaction)
        assert ran == [1]
        when_committed(conn, lambda: ran.append(2))
        conn.rollback()
    assert ran == [1]
