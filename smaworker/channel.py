"""The record channel rides the runbook's stdout pipe, so lines and records arrive in the
order the runbook wrote them.

The worker hands the job a second descriptor of its stdout pipe (SMA_RECORD_FD) and a
random tag (SMA_RECORD_TAG). The runbook helpers (smarunbook, sma.sh, SmaRunbook.psm1)
flush what was printed, then write a record as one line: the byte 0x1E (ASCII "record
separator"), the tag, the JSON object, a newline. With one pipe the kernel keeps the order
of every write, which two pipes read in turns cannot; a record written to that descriptor
still reaches the worker when the runbook has redirected its own stdout. Output that
happens to hold 0x1E stays output: without the tag (which the runbook's input cannot know)
it is not a record.
"""

from __future__ import annotations

import secrets

TEXT = "text"
RECORD = "record"
TOO_LONG = "too long"
_MARK = b"\x1e"


def new_tag() -> str:
    """A fresh tag for one run: 32 hex digits."""
    return secrets.token_hex(16)


class Demux:
    """Cuts what is read from the stdout pipe into output text and record lines, in order.

    `feed` returns (TEXT, bytes) and (RECORD, bytes) pieces: text as it came (lines are cut
    later), each record without its marker and newline. A record longer than `max_record`
    bytes is refused (a TOO_LONG piece) and the rest of it skipped, so memory stays
    bounded. A marker cut across two reads waits for the next one."""

    def __init__(self, tag: str, max_record: int) -> None:
        self.marker = _MARK + tag.encode("ascii")
        self.max_record = max_record
        self.held = b""  # the start of what may be a marker, at the end of the last read
        self.record: list[bytes] | None = None  # a record begun in an earlier read
        self.record_bytes = 0
        self.too_long = False

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """The pieces of `data`; empty `data` is the end of the pipe."""
        if not data:
            return self._end()
        if self.held:
            data, self.held = self.held + data, b""
        pieces: list[tuple[str, bytes]] = []
        pos, size = 0, len(data)
        while pos < size:
            if self.record is not None:
                pos = self._record_part(data, pos, pieces)
                continue
            mark = data.find(_MARK, pos)
            if mark < 0:
                pieces.append((TEXT, data[pos:]))
                break
            if data.startswith(self.marker, mark):
                if mark > pos:
                    pieces.append((TEXT, data[pos:mark]))
                self.record, self.record_bytes, self.too_long = [], 0, False
                pos = mark + len(self.marker)
            elif size - mark < len(self.marker) and self.marker.startswith(data[mark:]):
                if mark > pos:
                    pieces.append((TEXT, data[pos:mark]))
                self.held = data[mark:]
                break
            else:  # 0x1E in output, not a marker
                pieces.append((TEXT, data[pos:mark + 1]))
                pos = mark + 1
        return pieces

    def _record_part(self, data: bytes, pos: int, pieces: list[tuple[str, bytes]]) -> int:
        end = data.find(b"\n", pos)
        part = data[pos:] if end < 0 else data[pos:end]
        if not self.too_long:
            self.record_bytes += len(part)
            if self.record_bytes > self.max_record:
                self.too_long, self.record = True, []
            else:
                self.record.append(part)
        if end < 0:
            return len(data)
        pieces.append(self._whole())
        return end + 1

    def _end(self) -> list[tuple[str, bytes]]:
        pieces: list[tuple[str, bytes]] = []
        if self.held:
            pieces.append((TEXT, self.held))
            self.held = b""
        if self.record is not None:  # a last record without its newline
            pieces.append(self._whole())
        return pieces

    def _whole(self) -> tuple[str, bytes]:
        record, self.record = self.record, None
        return (TOO_LONG, b"") if self.too_long else (RECORD, b"".join(record))
