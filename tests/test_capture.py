"""Output capture pieces: line splitting, record parsing, the batch writer."""

from __future__ import annotations

import time

from smaworker.excerpt import ErrorExcerpt
from smaworker.lines import LineSplitter, parse_record
from smaworker.masking import Masker


def test_line_splitter_joins_chunks_and_bounds_lines():
    s = LineSplitter(max_line=8)
    assert s.feed(b"ab") == []
    assert s.feed(b"c\nde") == [b"abc"]
    assert s.feed(b"fghijklmnop\nq") == [b"defghijk", b"lmnop"]
    assert s.rest() == [b"q"]
    assert s.rest() == []
    assert s.feed(b"x" * 20) == [b"x" * 8, b"x" * 8]
    assert s.rest() == [b"xxxx"]


def test_masker_forms_overlaps_and_values():
    m = Masker()
    assert not m and m.text("1234") == "1234" and m.value({"a": 1}) == {"a": 1}
    m.add("abc")  # too short: it would mask ordinary text
    assert not m
    m.add("abcd")
    m.add("cdef")
    assert m.text("xxabcdefyy") == "xx***yy"  # overlapping secrets are masked as one
    m.add("line-one\nlines-here\r\nab")  # each line of 4 characters or more
    assert m.text("lines-here") == "***" and m.text("ab line-one") == "ab ***"
    assert m.text('"line-one\\nlines-here\\r\\nab"') == '"***"'  # as JSON text has it
    assert m.bytes(b"a lines-here b") == b"a *** b"
    m.add("1234")
    assert m.value({"order": 12345, "1234": "x1234", "k": [1234, 7, True, None]}) == \
        {"order": "***5", "***": "x***", "k": ["***", 7, True, None]}
    assert m.value({"abcd": 1, "cdef": 2}) == {"***": 1, "****": 2}  # both keys stay


def test_line_splitter_masks_a_secret_across_every_cut():
    import random

    rng = random.Random(12)
    for secret in (b"SECRET-VALUE", b"L" + b"o" * 300 + b"NG"):
        masker = Masker()
        masker.add(secret.decode())
        for _ in range(500):
            pre = rng.randint(0, 700)
            data = (b"x" * pre + secret + b"y" * rng.randint(0, 600) + b"\n"
                    + b"z" * rng.randint(0, 300) + secret + secret)
            splitter, lines, at = LineSplitter(256, masker), [], 0
            while at < len(data):
                step = rng.randint(1, 400)
                lines += splitter.feed(data[at:at + step])
                at += step
            lines = [masker.bytes(line) for line in lines + splitter.rest()]  # as add_lines
            joined = b"|".join(lines)
            assert secret[:6] not in joined and secret[-6:] not in joined
            assert joined.count(b"x") == pre and all(len(line) <= 258 for line in lines)


def test_error_excerpt_keeps_head_and_end_within_its_length():
    short = ErrorExcerpt()
    for line in ("a", "", "b"):
        short.add(line)
    assert short.text() == "a\n\nb"  # nothing left out, nothing marked
    wide = ErrorExcerpt()
    for i in range(100):
        wide.add(f"line {i} " + "x" * 300)
    text = wide.text(limit=4000)
    assert len(text) <= 4000
    assert text.startswith("line 0 ") and text.endswith("line 99 " + "x" * 300)
    assert "… (70 lines omitted) …" in text
    assert wide.tail[-1].startswith("line 99 ") and len(wide.tail) == 20  # for the limits
    one = ErrorExcerpt()  # a single huge line keeps its start, in the whole length
    one.add("y" * 10_000)
    assert one.text(limit=4000) == "y" * 4000 + "…"


def test_parse_record_kinds():
    assert parse_record(b'{"stream":"Warning","text":"w"}') == {"stream": "Warning", "text": "w"}
    assert parse_record(b'{"stream":"Output","text":"1","value":[1]}')["value"] == [1]
    assert parse_record(b'{"type":"checkpoint","data":{"i":3}}')["data"] == {"i": 3}
    bad = parse_record(b"not json")
    assert bad["stream"] == "Error" and "Malformed record" in bad["text"]
    unknown = parse_record(b'{"stream":"Shout","text":"x"}')
    assert unknown["stream"] == "Error" and "unknown stream" in unknown["text"]
    assert parse_record(b'{"stream":"Verbose","text":5}')["text"] == "5"
    assert parse_record(b'[1,2]')["stream"] == "Error"


def test_held_records_are_dropped_when_the_job_was_taken_over_meanwhile(api, services,
                                                                        settings):
    """After writes failed (the database was away), the next write first checks the job is
    still this run's, with the row locked; a job taken over gets nothing more from it."""
    import uuid

    from sqlalchemy import update
    from sqlalchemy.exc import OperationalError

    from smacommon.db import get_engine
    from smacommon.models import Job
    from smaworker.capture import StreamWriter
    from smaworker.runner import JobRunner

    rb = api.create_runbook()
    job_id = api.start(rb["name"], worker_group="nobody-serves-this")["id"]
    engine = get_engine(services["database_url"])
    with engine.begin() as conn:  # as a claim by worker w1 leaves it
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == uuid.UUID(job_id))
                     .values(status="Running", worker="w1", attempt=1))
    runner = JobRunner(job_id, settings, "w1")
    outage = OperationalError("COMMIT", {}, Exception("server closed the connection"))

    writer = StreamWriter(engine, uuid.UUID(job_id), batch_lines=10_000,
                          still_ours=runner.still_ours)
    writer.add("Output", "held while away")
    writer.failed(outage)
    time.sleep(0.25)  # the first try again is due 0.2 s after a failure
    writer.flush()  # still w1's: written, lease renewed
    assert [r["text"] for r in api.records(job_id)] == ["held while away"]
    assert not writer.superseded

    with engine.begin() as conn:  # the reaper resumed it elsewhere meanwhile
        conn.execute(update(Job.__table__).where(Job.__table__.c.id == uuid.UUID(job_id))
                     .values(attempt=2, worker="w2"))
    writer.add("Output", "held again")
    writer.failed(outage)
    time.sleep(0.25)
    writer.flush()
    assert writer.superseded and writer.due_in() is None
    assert [r["text"] for r in api.records(job_id)] == ["held while away"]


def test_records_whose_commit_lost_only_its_answer_are_not_written_twice(api, services):
    """A connection lost while COMMIT was on its way: the rows may be in the database even
    though the writer heard an error. The next try leaves them out instead of failing on
    their numbers."""
    import uuid

    from sqlalchemy.exc import OperationalError

    from smacommon.db import get_engine
    from smaworker.capture import StreamWriter

    rb = api.create_runbook()
    job_id = api.start(rb["name"], worker_group="nobody-serves-this")["id"]
    engine = get_engine(services["database_url"])
    writer = StreamWriter(engine, uuid.UUID(job_id), batch_lines=10_000)
    writer.add("Output", "one")
    writer.add("Output", "two")
    with engine.begin() as conn:
        writer.flush(conn)  # committed...
    writer.rolled_back()  # ...but the caller only heard its connection was lost
    writer.failed(OperationalError("COMMIT", {}, Exception("server closed the connection")))
    writer.add("Output", "three")
    time.sleep(0.25)
    writer.flush()
    assert writer.failures == 0
    assert [(r["seq"], r["text"]) for r in api.records(job_id)] == [
        (1, "one"), (2, "two"), (3, "three")]
    writer.add("Output", "four")  # the same, in a caller's transaction tried again
    with engine.begin() as conn:
        writer.flush(conn)
    writer.rolled_back()
    with engine.begin() as conn:
        writer.flush(conn, retry=True)
    writer.committed()
    assert [r["text"] for r in api.records(job_id)] == ["one", "two", "three", "four"]


def test_records_are_written_while_redis_is_away_and_said_once(api, services, caplog):
    """Announcing to live readers fails while Redis is away (a restart): the rows are still
    written, the failure is logged once, without a traceback, and tries pause a second."""
    import logging
    import uuid

    import redis

    from smacommon.db import get_engine
    from smacommon.embedded_redis import free_port
    from smaworker.capture import StreamWriter

    away = redis.Redis(host="127.0.0.1", port=free_port(), socket_timeout=1)  # nobody there
    tries = []

    def publish(channel, seq):
        tries.append(seq)
        away.publish(channel, seq)

    rb = api.create_runbook()
    job_id = api.start(rb["name"], worker_group="nobody-serves-this")["id"]
    writer = StreamWriter(get_engine(services["database_url"]), uuid.UUID(job_id),
                          batch_lines=10_000, publish=publish)
    with caplog.at_level(logging.WARNING, logger="smaworker.capture"):
        for text in ("one", "two", "three"):
            writer.add("Output", text)
            writer.flush()
    assert [r["text"] for r in api.records(job_id)] == ["one", "two", "three"]
    assert tries == [1]  # the next two fell within the pause
    said = [r for r in caplog.records if "could not announce" in r.getMessage()]
    assert len(said) == 1 and not said[0].exc_info


def test_a_chunk_of_lines_is_written_as_line_by_line(api, services):
    """Lines with nothing to mask are decoded, numbered and queued a read at a time (the
    hot path of a job that prints a lot): the records, their batches, the error excerpt
    and the byte count are what the line-by-line path makes of the same lines, invalid
    UTF-8, carriage returns and NUL bytes included; while the database is away, all of it
    is held and written once it answers."""
    import uuid

    from sqlalchemy.exc import OperationalError

    from smacommon.db import get_engine
    from smaworker.capture import StreamWriter

    chunks = [
        (b"Output", [b"plain", b"", "caf\u00e9 \u65e5\u672c".encode(), b"cut \xe2\x82", b"\xff bad"]),
        (b"Error", [b"boom 1", b"boom \xe2\x82\xac 2", b"boom 3", b"boom 4"]),
        (b"Output", [b"dos line\r", b"nul \x00 byte", b"after"]),  # line by line in both
        (b"Output", [f"many {i}".encode() for i in range(11)]),
    ]
    engine = get_engine(services["database_url"])
    made = []
    for masked in (False, True):
        rb = api.create_runbook()
        job_id = api.start(rb["name"], worker_group="nobody-serves-this")["id"]
        writer = StreamWriter(engine, uuid.UUID(job_id), batch_lines=3)
        if masked:  # a secret the lines do not hold: every line goes through `_add`
            writer.add_mask("never-printed-secret")
        batches = []
        writer.committed = lambda w=writer, b=batches: (b.append(w.seq),
                                                          StreamWriter.committed(w))
        for stream, lines in chunks:
            writer.add_lines(stream.decode(), list(lines))
        writer.flush()
        made.append(([(r["seq"], r["stream"], r["text"]) for r in api.records(job_id)],
                     batches, writer.errors.text(), writer.text_bytes))
    assert made[0] == made[1]
    records = made[0][0]
    assert [text for _, _, text in records[:5]] == [
        "plain", "", "caf\u00e9 \u65e5\u672c", "cut \ufffd", "\ufffd bad"]
    assert records[6][2] == "boom \u20ac 2" and records[9][2] == "dos line"
    assert records[10][2] == "nul \ufffd byte" and len(records) == 23
    assert made[0][1] == [3, 6, 9, 12, 15, 18, 21, 23]  # full batches of 3, then the rest
    assert made[0][2].startswith("boom 1\nboom \u20ac 2")

    rb = api.create_runbook()
    job_id = api.start(rb["name"], worker_group="nobody-serves-this")["id"]
    writer = StreamWriter(engine, uuid.UUID(job_id), batch_lines=3)
    writer.failed(OperationalError("INSERT", {}, Exception("server closed the connection")))
    writer.add_lines("Output", [f"held {i}".encode() for i in range(7)])
    assert api.records(job_id) == [] and len(writer._pending) == 7  # nothing tried early
    time.sleep(0.25)
    writer.flush()
    assert [r["text"] for r in api.records(job_id)] == [f"held {i}" for i in range(7)]


def test_a_batch_goes_in_as_it_came_whatever_its_runs(api, services):
    """streamrows.insert_records writes every record of a batch exactly as queued: runs of
    plain lines (one stream, time and attempt) of every length around the multi-row
    INSERT's size and its power-of-two rests, broken by another stream, another time,
    another attempt and by records with a value (one INSERT a row on SQLite, COPY on
    PostgreSQL), text beyond ASCII and quotes included."""
    import uuid

    from sqlalchemy import select

    from smacommon.db import get_engine
    from smacommon.models import JobStream
    from smaworker.streamrows import SQLITE_ROWS, insert_records

    engine = get_engine(services["database_url"])
    rb = api.create_runbook()
    job_id = uuid.UUID(api.start(rb["name"], worker_group="nobody-serves-this")["id"])
    key = job_id.hex if engine.dialect.name == "sqlite" else job_id
    stamps = ["2026-12-02 10:00:00.000100", "2026-12-02 10:00:00.002000"]
    if engine.dialect.name != "sqlite":
        from datetime import datetime
        stamps = [datetime.fromisoformat(s) for s in stamps]
    rows, seq = [], 0

    def run(count, stream="Output", stamp=0, attempt=1, value=None):
        nonlocal seq
        for _ in range(count):
            seq += 1
            rows.append((key, seq, stream, stamps[stamp], f"l{seq} 'q' \"d\" caf\u00e9 ?1",
                         value, attempt))

    for count in (1, 2, 3, SQLITE_ROWS - 1, SQLITE_ROWS, SQLITE_ROWS + 1,
                  2 * SQLITE_ROWS + 77):
        run(count)
        run(1, stream="Error")
        run(2, stamp=1)
        run(3, attempt=2)
        run(2, value='{"a": [1, "x"]}')
        run(1, value="null")
    with engine.begin() as conn:
        insert_records(conn, rows)
    with engine.connect() as conn:
        got = conn.execute(select(JobStream.seq, JobStream.stream, JobStream.time,
                                  JobStream.text, JobStream.value, JobStream.attempt)
                           .where(JobStream.job_id == job_id).order_by(JobStream.seq)).all()
    assert len(got) == len(rows) == seq
    values = {None: None, '{"a": [1, "x"]}': {"a": [1, "x"]}, "null": None}
    for (s, stream, at, text, value, attempt), row in zip(got, rows, strict=True):
        assert (s, stream, text, value, attempt) == (row[1], row[2], row[4], values[row[5]],
                                                     row[6])
        assert at.replace(tzinfo=None).isoformat(" ") == str(row[3]).split("+")[0]
