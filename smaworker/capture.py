"""Output capture: a job's pipes -> numbered records, written in batches and announced live.

Memory stays bounded whatever the job writes: reads are fixed-size chunks, a line longer
than `max_line_bytes` is cut into several records, and a batch is written as soon as it
holds `batch_lines` records or `_MAX_BATCH_BYTES` of text, or is `batch_ms` old.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from smacommon.streams import ERROR, OPTIONAL_STREAMS, OUTPUT, STREAMS, stream_channel

log = logging.getLogger(__name__)

_MAX_BATCH_BYTES = 1 << 20
MIN_MASK = 4
_SQLITE_INSERT = ("INSERT INTO job_streams (job_id, seq, stream, time, text, value) "
                  "VALUES (?, ?, ?, ?, ?, ?)")
_PG_COPY = "COPY job_streams (job_id, seq, stream, time, text, value) FROM STDIN"


class StreamWriter:
    """Numbers records per job and writes them to `job_streams` in batches."""

    def __init__(self, engine: Engine, job_id: uuid.UUID, *, next_seq: int = 1,
                 batch_lines: int = 1000, batch_ms: int = 100, publish=None,
                 keep: dict[str, bool] | None = None) -> None:
        self.engine = engine
        self.job_id = job_id
        self.seq = next_seq - 1
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
        self.error_tail: deque[str] = deque(maxlen=20)
        self.written = 0
        self.masks: list[str] = []  # secrets the job fetched, longest first
        self.before_write = None  # called in the transaction of each batch, before its rows

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
        if self.masks:
            text = self.mask(text)
            if has_value:
                value = json.loads(self.mask(json.dumps(value, default=str)))
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")
        if has_value:
            encoded = json.dumps(value, default=str, ensure_ascii=False)
            if "\\u0000" in encoded:
                encoded = encoded.replace("\\u0000", "\\ufffd")
        else:
            encoded = None
        if stream == ERROR:
            self.error_tail.append(text)
        self.seq += 1
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append((self._job_key, self.seq, stream, self._time(), text, encoded))
        self._pending_bytes += len(text)
        if len(self._pending) >= self.batch_lines or self._pending_bytes >= _MAX_BATCH_BYTES:
            self.flush()

    def add_mask(self, secret: str) -> None:
        """From now on, write `***` wherever `secret` appears (too short a secret would mask
        ordinary text, so fewer than MIN_MASK characters are left alone)."""
        if len(secret) >= MIN_MASK and secret not in self.masks:
            self.masks.append(secret)
            self.masks.sort(key=len, reverse=True)
            encoded = json.dumps(secret)[1:-1]  # the same secret inside JSON text
            if encoded != secret and encoded not in self.masks:
                self.masks.append(encoded)
                self.masks.sort(key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.masks:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def add_lines(self, stream: str, lines: list[bytes]) -> None:
        """Queue raw lines from a pipe, decoded as UTF-8 (invalid bytes become U+FFFD)."""
        for raw in lines:
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self.add(stream, raw.decode("utf-8", "replace"))

    def due_in(self) -> float | None:
        """Seconds until the pending batch must be written (None when nothing is pending)."""
        if not self._pending:
            return None
        return max(0.0, self._first_pending + self.batch_seconds - time.monotonic())

    def flush_if_due(self) -> None:
        due = self.due_in()
        if due is not None and due <= 0:
            self.flush()

    def flush(self, conn: Connection | None = None) -> None:
        """Write the pending batch in one short transaction (or in `conn`'s), then announce it."""
        if not self._pending:
            return
        rows, self._pending, self._pending_bytes = self._pending, [], 0
        self.written += len(rows)
        if conn is not None:  # the caller commits, then calls announce()
            self._insert(conn, rows)
            return
        with self.engine.begin() as own:
            if self.before_write is not None:
                self.before_write(own)
            self._insert(own, rows)
        self.announce()

    def announce(self) -> None:
        """Tell live readers (over Redis) that records up to `seq` are in the database."""
        if self.publish is not None:
            try:
                self.publish(stream_channel(str(self.job_id)), self.seq)
            except Exception:  # live readers are a convenience; the rows are safe
                log.warning("could not announce records of job %s", self.job_id, exc_info=True)

    def _insert(self, conn: Connection, rows: list[tuple]) -> None:
        if self.sqlite:
            conn.exec_driver_sql(_SQLITE_INSERT, rows)
            return
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(_PG_COPY) as copy:
            for row in rows:
                copy.write_row(row)


class LineSplitter:
    """Cuts a byte stream into lines, never holding more than `max_line` bytes of one line."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self.buffer + data if self.buffer else data
        lines = buffer.split(b"\n")
        self.buffer = lines.pop()
        if len(self.buffer) > self.max_line:
            while len(self.buffer) > self.max_line:
                lines.append(self.buffer[:self.max_line])
                self.buffer = self.buffer[self.max_line:]
        if any(len(line) > self.max_line for line in lines):
            lines = [part for line in lines for part in _cut(line, self.max_line)]
        return lines

    def rest(self) -> list[bytes]:
        """What is left when the stream ended without a final newline."""
        rest, self.buffer = self.buffer, b""
        return [rest] if rest else []


def _cut(line: bytes, size: int) -> list[bytes]:
    return [line[i:i + size] for i in range(0, len(line), size)] or [b""]


def parse_record(line: bytes) -> dict[str, Any]:
    """One record-channel line -> a dict with `stream`, `text` and maybe `value` or `type`.

    A line that is not a valid record becomes an Error record that says so, so a runbook
    that writes garbage to the channel loses nothing and breaks nothing.
    """
    try:
        record = json.loads(line.decode("utf-8", "replace"), strict=False)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        text = line.decode("utf-8", "replace")
        return {"stream": ERROR, "text": f"Malformed record on the record channel: {text}"}
    if record.get("type") in ("checkpoint", "mask"):
        return record
    stream = record.get("stream", OUTPUT)
    if stream not in STREAMS:
        return {"stream": ERROR, "text": f"Record with unknown stream {stream!r}: "
                                         f"{line.decode('utf-8', 'replace')}"}
    text = record.get("text")
    if not isinstance(text, str):
        text = "" if text is None else json.dumps(text, default=str)
    result: dict[str, Any] = {"stream": stream, "text": text}
    if "value" in record:
        result["value"] = record["value"]
    return result
