"""Logs: one JSON object per line (SMA_LOG_FORMAT=json, the default) or text for people.

Structured fields go in `extra=` and come out as keys of the line: a request's method,
path, status and duration; a job transition's job_id, runbook, status and seconds.

The text log (`sma up`'s console) is for a person at a terminal: one line when a job starts
and one when it ends, warnings and errors, and what each process says once as it starts.
Celery's lines per task, a line per request and a job's other transitions are left to the
JSON log, which keeps every line and field.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


# Celery's INFO lines for every task ("received", "succeeded in ...: {data}")
_PER_TASK = frozenset({"celery.worker.strategy", "celery.app.trace"})
# the transitions a person sees: the start of a run and where it comes to rest
_STARTED = "Running"
_ENDED = frozenset({"Completed", "Failed", "Stopped", "Suspended"})


class ConsoleFilter(logging.Filter):
    """What the text log leaves out: see the module's docstring."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if record.name in _PER_TASK:
            return False
        event = getattr(record, "event", None)
        if event == "request":
            return getattr(record, "status", 0) >= 500
        if event == "job_transition":
            return getattr(record, "status", None) in _ENDED | {_STARTED}
        return True


def _job_line(record: logging.LogRecord) -> str:
    """'job <runbook> <id> started', or '... Completed in 1.2 s'."""
    status = getattr(record, "status", "")
    head = f"job {getattr(record, 'runbook', None) or '?'} {str(record.job_id)[:8]}"
    if status == _STARTED:
        return f"{head} started"
    seconds = getattr(record, "seconds", None)
    return f"{head} {status}" + (f" in {_duration(seconds)}" if seconds is not None else "")


def _duration(seconds: float) -> str:
    """'0.12 s', '42.5 s', '3 min 5 s', '2 h 14 min'."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "event", None) == "job_transition" and hasattr(record, "job_id"):
            return f"{self.formatTime(record)} {record.levelname} {_job_line(record)}"
        text = super().format(record)
        extra = {k: v for k, v in vars(record).items()
                 if k not in _STANDARD and not k.startswith("_")}
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return text


def formatter(fmt: str | None = None) -> logging.Formatter:
    fmt = (fmt or os.environ.get("SMA_LOG_FORMAT") or "json").lower()
    return TextFormatter() if fmt == "text" else JsonFormatter()


def configure(level: int = logging.INFO, fmt: str | None = None,
              handlers: list[logging.Handler] | None = None) -> None:
    """Put sma's formatter on the root logger's handlers (adding one on stderr if none)."""
    root = logging.getLogger()
    if handlers is None:
        handlers = root.handlers or [logging.StreamHandler(sys.stderr)]
        if not root.handlers:
            root.addHandler(handlers[0])
    text = isinstance(formatter(fmt), TextFormatter)
    for handler in handlers:
        handler.setFormatter(formatter(fmt))
        for old in [f for f in handler.filters if isinstance(f, ConsoleFilter)]:
            handler.removeFilter(old)
        if text:
            handler.addFilter(ConsoleFilter())
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
