"""Logs: one JSON object per line (SMA_LOG_FORMAT=json, the default) or text for people.

Structured fields go in `extra=` and come out as keys of the line: a request's method,
path, status and duration; a job transition's job_id, runbook and status.
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


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
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
    for handler in handlers:
        handler.setFormatter(formatter(fmt))
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
