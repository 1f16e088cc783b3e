"""Output capture: a job's records, numbered, written in batches and announced live.

Memory stays bounded whatever the job writes: reads are fixed-size chunks, a line longer
than `max_line_bytes` is cut into several records (smaworker/lines.py), and a batch is
written as soon as it holds `batch_lines` records or `_MAX_BATCH_BYTES` of text, or is
`batch_ms` old.

When the database cannot be reached (a restart, a failover, a lost connection), a batch is
kept and written again with backoff, with what came after it; nothing is lost or numbered
twice. While more than `_MAX_HELD_ROWS` records or `_MAX_HELD_BYTES` wait, `backlogged` is
true and the caller stops reading the job's pipes, so the runbook waits on its own writes.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Connection, Engine, func, select

from smacommon.db import is_transient
from smacommon.models import JobStream
from smacommon.streams import ERROR, OPTIONAL_STREAMS, stream_channel
from smaworker.excerpt import ErrorExcerpt
from smaworker.masking import Masker
from smaworker.streamrows import insert_records

log = logging.getLogger(__name__)

_MAX_BATCH_BYTES = 1 << 20
_MAX_HELD_ROWS = 50_000
_MAX_HELD_BYTES = 32 << 20
_MAX_BACKOFF = 5.0
_ANNOUNCE_PAUSE = 1.0


class _Superseded(Exception):
    """The job was taken over by another run: roll back and write nothing."""


class StreamWriter:
    """Numbers records per job and writes them to `job_streams` in batches, each stamped
    with the attempt (run) of the job that wrote it."""

    def __init__(self, engine: Engine, job_id: uuid.UUID, *, next_seq: int = 1, attempt: int = 1,
                 batch_lines: int = 1000, batch_ms: int = 100, publish=None,
                 keep: dict[str, bool] | None = None, transaction=None,
                 before_write: Callable[[Connection], None] | None = None,
                 still_ours: Callable[[Connection, bool], bool] | None = None) -> None:
        self.engine = engine
        self.transaction = transaction or engine.begin  # () -> context manager -> Connection
        self.job_id = job_id
        self.seq = next_seq - 1
        self.attempt = attempt
        self.batch_lines = batch_lines
        self.batch_seconds = batch_ms / 1000.0
        self.publish = publish
        self.keep = keep or {}
        self.sqlite = engine.dialect.name == "sqlite"
        self._job_key: Any = job_id.hex if self.sqlite else job_id
        self._pending: list[tuple] = []
        self._pending_bytes = 0
        self._first_pending = 0.0
        self._stamp_at = -1.0
        self._stamp: Any = None
        self.errors = ErrorExcerpt()  # the Error stream's head and end: the exception
        self.text_bytes = 0  # of the records' text, as the job wrote it (after masking)
        self.masker = Masker()  # the secrets the job holds
        self.before_write = before_write  # called in each batch's transaction, before its rows
        self.dirty = False  # a write is due even with no records (before_write has work)
        self._inflight: list[tuple] = []  # taken by a transaction not yet committed
        self._inflight_bytes = 0
        self._retry_at = 0.0
        self.failures = 0  # writes failed in a row because the database was unreachable
        # called in each write's transaction (asked to check the database after failed
        # writes); False means the job is no longer this run's (taken over meanwhile), so
        # what it holds is dropped. See smaworker.lease.
        self.still_ours = still_ours
        self.superseded = False
        self._announce_after = 0.0  # after a failed announcement: not before this
        self._announce_failing = False

    def _time(self) -> Any:
        # one timestamp per millisecond is plenty, and formatting it once saves the hot path
        now = time.monotonic()
        if now - self._stamp_at >= 0.001:
            self._stamp_at = now
            stamp = datetime.now(UTC).replace(tzinfo=None)
            self._stamp = stamp.strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else stamp
        return self._stamp

    def add(self, stream: str, text: str, value: Any = None, *, has_value: bool = False) -> None:
        """Queue one record; writes a batch when it is full."""
        if stream in OPTIONAL_STREAMS and not self.keep.get(stream, False):
            return
        if self.masker:
            text = self.masker.text(text)
            if has_value:
                value = self.masker.value(value)
        self.text_bytes += len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        self._add(stream, text, value, has_value)

    def _add(self, stream: str, text: str, value: Any, has_value: bool) -> None:
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")
        if has_value:
            encoded = json.dumps(value, default=str, ensure_ascii=False)
            if "\\u0000" in encoded:
                encoded = encoded.replace("\\u0000", "\\ufffd")
        else:
            encoded = None
        if stream == ERROR:
            self.errors.add(text)
        self.seq += 1
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append((self._job_key, self.seq, stream, self._time(), text, encoded,
                              self.attempt))
        self._pending_bytes += len(text)
        if self._batch_full():
            self.flush()

    def _batch_full(self) -> bool:
        """A batch is due now (unless the database is away: then it waits for its retry)."""
        return (len(self._pending) >= self.batch_lines
                or self._pending_bytes >= _MAX_BATCH_BYTES) and not self.failures

    def add_mask(self, secret: str) -> None:
        """From now on, write `***` wherever `secret` appears (see smaworker.masking)."""
        self.masker.add(secret)

    def add_lines(self, stream: str, lines: list[bytes]) -> None:
        """Queue raw lines from a pipe, decoded as UTF-8 (invalid bytes become U+FFFD);
        secrets are masked in the bytes, as the runbook wrote them."""
        if not lines or stream in OPTIONAL_STREAMS and not self.keep.get(stream, False):
            return
        if not self.masker:
            joined = b"\n".join(lines)
            if b"\r" not in joined and b"\x00" not in joined:
                self._add_plain(stream, joined, len(lines))
                return
        masker = self.masker if self.masker else None
        size = 0
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if masker is not None:
                raw = masker.bytes(raw)
            size += len(raw)
            self._add(stream, raw.decode("utf-8", "replace"), None, False)
        self.text_bytes += size

    def _add_plain(self, stream: str, joined: bytes, count: int) -> None:
        """`count` lines joined by newlines, nothing to mask or clean in them (the hot path
        of a job that prints a lot): decoded at once, numbered and queued by the batch, all
        stamped with the time they were read together. What `_add` does line by line."""
        self.text_bytes += len(joined) - count + 1
        texts = joined.decode("utf-8", "replace").split("\n")
        if stream == ERROR:
            for text in texts:
                self.errors.add(text)
        key, attempt, stamp = self._job_key, self.attempt, self._time()
        done = 0
        while done < count:
            if not self._pending:
                self._first_pending = time.monotonic()
            # up to a full batch; while the database is away, all of it waits to be written
            room = count - done if self.failures else self.batch_lines - len(self._pending)
            part = texts[done:done + max(1, room)]
            seq = self.seq
            self._pending += [(key, seq + n, stream, stamp, text, None, attempt)
                              for n, text in enumerate(part, 1)]
            self.seq = seq + len(part)
            self._pending_bytes += sum(map(len, part))
            done += len(part)
            if self._batch_full():
                self.flush()

    @property
    def backlogged(self) -> bool:
        """Too much waits for the database: read no more of the job until some is written."""
        return len(self._pending) >= _MAX_HELD_ROWS or self._pending_bytes >= _MAX_HELD_BYTES

    def due_in(self) -> float | None:
        """Seconds until the pending batch must be written (None when nothing is pending)."""
        if not self._pending and not self.dirty:
            return None
        due = self._retry_at if self.failures else self._first_pending + self.batch_seconds
        return max(0.0, due - time.monotonic())

    def flush_if_due(self) -> None:
        due = self.due_in()
        if due is not None and due <= 0:
            self.flush()

    def flush(self, conn: Connection | None = None, *, retry: bool = False) -> None:
        """Write the pending batch in one short transaction, then announce it. When the
        database is unreachable, keep the batch for the next try (after a backoff).

        With `conn`, insert in the caller's transaction; the caller then calls `committed()`
        once it commits, or `rolled_back()` when it did not. `retry`: an earlier try of
        that transaction failed, and may have committed all the same."""
        if conn is not None:
            if retry:
                self._skip_written(conn)
            self._insert(conn, self._take())
            return
        if not self._pending and not self.dirty:
            return
        if self.failures and time.monotonic() < self._retry_at:
            return
        if self.superseded:
            self.drop()
            return
        try:
            with self.transaction() as own:
                if self.still_ours is not None and not self.still_ours(own,
                                                                       bool(self.failures)):
                    raise _Superseded
                if self.failures:
                    self._skip_written(own)
                if self.before_write is not None:
                    self.before_write(own)
                self._insert(own, self._take())
        except _Superseded:
            log.warning("job %s was taken over while the database was unreachable; the "
                        "records this run held are dropped", self.job_id)
            self.superseded = True
            self.drop()
            return
        except Exception as exc:
            self.rolled_back()
            if not is_transient(exc):
                raise
            self.failed(exc)
            return
        self.committed()

    def _skip_written(self, conn: Connection) -> None:
        """Leave out what is already in the database: a connection lost while COMMIT was on
        its way may have lost only the answer."""
        last = conn.execute(select(func.max(JobStream.seq))
                            .where(JobStream.job_id == self.job_id)).scalar() or 0
        if self._pending and self._pending[0][1] <= last:
            kept = [row for row in self._pending if row[1] > last]
            self._pending_bytes = sum(len(row[4]) for row in kept)
            self._pending = kept

    def drop(self) -> None:
        """Forget what is held: the job is no longer this run's."""
        self._pending, self._pending_bytes, self.dirty = [], 0, False
        self._inflight, self._inflight_bytes, self.failures = [], 0, 0

    def _take(self) -> list[tuple]:
        rows = self._pending
        self._inflight += rows
        self._inflight_bytes += self._pending_bytes
        self._pending, self._pending_bytes = [], 0
        return rows

    def committed(self) -> None:
        """The rows taken are in the database: announce them."""
        self._inflight, self._inflight_bytes, self.dirty = [], 0, False
        if self.failures:
            log.warning("job %s: the database answers again; its held records are written",
                        self.job_id)
            self.failures = 0
        self.announce()

    def rolled_back(self) -> None:
        """The rows taken were not written: they go back in front of what came since."""
        if self._inflight:
            if not self._pending:
                self._first_pending = time.monotonic()
            self._pending = self._inflight + self._pending
            self._pending_bytes += self._inflight_bytes
            self._inflight, self._inflight_bytes = [], 0

    def failed(self, exc: BaseException) -> None:
        """The database could not be reached: try again after a backoff."""
        self.failures += 1
        self._retry_at = time.monotonic() + min(_MAX_BACKOFF, 0.1 * 2 ** self.failures)
        if self.failures == 1:
            log.warning("job %s: the database is unreachable (%s); holding its records and "
                        "trying again", self.job_id, str(exc).splitlines()[0])

    def announce(self) -> None:
        """Tell live readers (over Redis) that records up to `seq` are in the database.
        While Redis is away (a restart), the failure is logged once, and announcing waits
        a second between tries: live readers are a convenience, the rows are safe."""
        if self.publish is None or time.monotonic() < self._announce_after:
            return
        try:
            self.publish(stream_channel(str(self.job_id)), self.seq)
        except Exception as exc:
            self._announce_after = time.monotonic() + _ANNOUNCE_PAUSE
            if not self._announce_failing:
                self._announce_failing = True
                log.warning("job %s: could not announce its records to live readers (%s); "
                            "they poll until Redis answers", self.job_id,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                            exc_info=not isinstance(exc, (RedisError, OSError)))
            return
        self._announce_failing = False

    def _insert(self, conn: Connection, rows: list[tuple]) -> None:
        if not rows:
            return
        insert_records(conn, rows)
