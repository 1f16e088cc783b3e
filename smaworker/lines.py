"""A job's output bytes -> lines and records: lines cut to a bounded length (secrets masked
across the cuts), record-channel lines parsed into records.

smaworker/channel.py separates the record lines from the output text on the stdout pipe;
what comes out of here goes to the StreamWriter (smaworker/capture.py) to be numbered and
written.
"""

from __future__ import annotations

import json
from typing import Any

from smacommon import strictjson
from smacommon.errors import JsonRefused
from smacommon.streams import ERROR, OUTPUT, STREAMS
from smaworker.masking import Masker


class LineSplitter:
    """Cuts a byte stream into lines, never holding more than `max_line` bytes of one line.

    With a `masker` that holds secrets, the pieces of a line cut in several are masked
    with what surrounds them, so a secret across a cut is masked on both sides: a piece is
    cut only once the bytes after it that a secret could span are read, and the end of the
    piece before it is kept for the next one.
    """

    def __init__(self, max_line: int, masker: Masker | None = None) -> None:
        self.max_line = max_line
        self.masker = masker
        self.buffer = b""
        self.before = b""  # the end of the last piece cut from the line in `buffer`

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self.buffer + data if self.buffer else data
        lines = buffer.split(b"\n")
        self.buffer = lines.pop()
        if len(self.buffer) > self.max_line or self.before \
                or max(map(len, lines), default=0) > self.max_line:
            return self._cut(lines)
        return lines

    def rest(self) -> list[bytes]:
        """What is left when the stream ended without a final newline."""
        rest, self.buffer = self.buffer, b""
        if not rest:
            self.before = b""
            return []
        return self._pieces(rest, True)

    def _cut(self, lines: list[bytes]) -> list[bytes]:
        result: list[bytes] = []
        for line in lines:
            result += self._pieces(line, True)
        if len(self.buffer) > self.max_line:
            result += self._pieces(self.buffer, False)
        return result

    def _pieces(self, line: bytes, complete: bool) -> list[bytes]:
        """`line` cut in pieces of `max_line`; of a line not `complete`, the rest (what
        may still grow, and the context the last piece needs) stays in `buffer`."""
        size = self.max_line
        masker = self.masker if self.masker else None
        overlap = masker.longest - 1 if masker is not None else 0
        before = self.before
        if complete:
            ends = list(range(size, len(line), size)) + [len(line)]
        else:
            ends = list(range(size, len(line) - overlap, size))
        pieces, start = [], 0
        for end in ends:
            piece = line[start:end]
            if masker is not None:
                head = line[max(0, start - overlap):start]
                if len(head) < overlap and before:
                    head = before[len(head) - overlap:] + head
                piece = masker.piece(head, piece, line[end:end + overlap])
            pieces.append(piece)
            start = end
        if complete:
            self.before = b""
            return pieces
        if start:
            self.before = (before + line[max(0, start - overlap):start])[-overlap:] \
                if overlap else b""
        self.buffer = line[start:]
        return pieces


def parse_record(line: bytes) -> dict[str, Any]:
    """One record-channel line -> a dict with `stream`, `text` and maybe `value` or `type`.

    A line that is not a valid record becomes an Error record that says so, so a runbook
    that writes garbage to the channel loses nothing and breaks nothing.
    """
    try:
        record = strictjson.loads(line.decode("utf-8", "replace"), strict=False)
    except JsonRefused as exc:  # a value no database or reader would take back
        text = line.decode("utf-8", "replace")
        return {"stream": ERROR, "text": f"Record refused ({exc.message}): {text[:1000]}"}
    except ValueError:
        record = None
    if not isinstance(record, dict):
        text = line.decode("utf-8", "replace")
        return {"stream": ERROR, "text": f"Malformed record on the record channel: {text}"}
    if record.get("type") in ("checkpoint", "mask", "suspend"):
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
