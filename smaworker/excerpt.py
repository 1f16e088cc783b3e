"""A failed job's `exception`: the excerpt of its Error stream that says what went wrong.

A long traceback keeps its head (where it began: the first frames, or the first exception
of a chain) and its end (the exception raised), with the count of lines left out between;
the whole Error stream stays in the job's records. The excerpt starts at the last
"Traceback (most recent call last):" that opens a new report (not one of a chain), so
lines a runbook wrote before it do not crowd it out; without one, at the first line.
"""

from __future__ import annotations

from collections import deque

TRACEBACK = "Traceback (most recent call last):"
# the lines Python writes between the tracebacks of one chain
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")


class ErrorExcerpt:
    """Takes the Error stream's lines one by one; `text()` is the job's exception."""

    def __init__(self, head: int = 10, tail: int = 20) -> None:
        self.head: list[str] = []
        self.after: deque[str] = deque(maxlen=tail)  # the last lines after the head
        self.count = 0  # lines since the excerpt's start
        self.head_lines = head
        self.tail: deque[str] = deque(maxlen=tail)  # the stream's last lines, for limits
        self._last = ""  # the last line that was not empty

    def add(self, line: str) -> None:
        if line == TRACEBACK and self._last not in _CHAINED and self.count:
            self.head, self.count = [], 0
            self.after.clear()
        if len(self.head) < self.head_lines:
            self.head.append(line)
        else:
            self.after.append(line)
        self.count += 1
        self.tail.append(line)
        if line.strip():
            self._last = line.strip()

    def text(self, limit: int = 4000) -> str:
        """The head, "… (N lines omitted) …", the end; at most about `limit` characters,
        a quarter of them for the head when there is an end."""
        omitted = self.count - len(self.head) - len(self.after)
        head, end = "\n".join(self.head), "\n".join(self.after)
        marker = f"… ({omitted} lines omitted) …" if omitted else ""
        if len(head) + len(end) + len(marker) + 2 > limit:
            head_room = limit // 4 if end else limit
            if len(head) > head_room:
                head = head[:head_room] + "…"
            room = max(limit - len(head) - len(marker) - 2, 0)
            if len(end) > room:
                end = "…" + end[len(end) - room + 1:] if room > 1 else ""
        return "\n".join(part for part in (head, marker, end) if part)
