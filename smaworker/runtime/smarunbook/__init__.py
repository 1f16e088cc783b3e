"""What a Python runbook sees: helpers that write SMA's other streams and typed output.

Records go as JSON lines to the descriptor whose number is in SMA_RECORD_FD (the job's
stdout pipe, so they keep their place among printed lines), each after the byte 0x1E and
SMA_RECORD_TAG; print() is the Output stream and anything on stderr is the Error stream.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = [
    "checkpoint", "last_checkpoint", "output", "write_debug", "write_error", "write_output",
    "write_progress", "write_verbose", "write_warning", "start_runbook", "wait_for_job",
    "ChildJobFailed", "Secret", "id_token",
]

_channel = None
_prefix = ""


class Secret(str):
    """Annotates a parameter of `main` as secret (`def main(password: Secret)`): its value is
    sealed at rest, shown as *** and masked in the job's output. It arrives as a plain str."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") == "1"


def _record(record: dict[str, Any]) -> None:
    global _channel, _prefix
    if _channel is None:
        fd = os.environ.get("SMA_RECORD_FD")
        if not fd:  # not under a worker (e.g. run by hand): print to stderr for people
            sys.stderr.write(f"[{record.get('stream', record.get('type'))}] "
                             f"{record.get('text', record.get('value', ''))}\n")
            return
        _channel = os.fdopen(int(fd), "w", encoding="utf-8", buffering=1, closefd=False)
        _prefix = "\x1e" + os.environ.get("SMA_RECORD_TAG", "")
    # what was printed before the record goes into the pipe first
    sys.stdout.flush()
    _channel.write(_prefix + json.dumps(record, default=str, ensure_ascii=False) + "\n")
    _channel.flush()


def write_warning(message: Any) -> None:
    """A Warning record."""
    _record({"stream": "Warning", "text": str(message)})


def write_verbose(message: Any) -> None:
    """A Verbose record (kept when the runbook logs verbose records)."""
    if _flag("SMA_LOG_VERBOSE"):
        _record({"stream": "Verbose", "text": str(message)})


def write_debug(message: Any) -> None:
    """A Debug record (kept when the runbook logs debug records)."""
    if _flag("SMA_LOG_DEBUG"):
        _record({"stream": "Debug", "text": str(message)})


def write_progress(activity: Any, status: Any = "", percent: int | None = None) -> None:
    """A Progress record (kept when the runbook logs progress)."""
    if _flag("SMA_LOG_PROGRESS"):
        text = f"{activity}: {status}" if status else str(activity)
        if percent is not None:
            text += f" ({percent}%)"
        _record({"stream": "Progress", "text": text,
                 "value": {"activity": str(activity), "status": str(status), "percent": percent}})


def write_error(message: Any) -> None:
    """An Error record that does not end the runbook."""
    _record({"stream": "Error", "text": str(message)})


def write_output(message: Any) -> None:
    """An Output line, like print()."""
    _record({"stream": "Output", "text": str(message)})


def output(value: Any) -> None:
    """A typed output object (any JSON value), kept with its structure."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    _record({"stream": "Output", "text": text, "value": value})


_MISSING = object()
_restored: Any = _MISSING


def checkpoint(data: Any = None) -> None:
    """Save `data` (any JSON value) as the job's checkpoint: a job suspended, or resumed
    after its worker was lost, starts again with it (see `last_checkpoint`)."""
    global _restored
    _record({"type": "checkpoint", "data": data})
    _restored = data


def last_checkpoint(default: Any = None) -> Any:
    """The data of the job's last checkpoint, or `default` on a first run."""
    global _restored
    if _restored is _MISSING:
        path = os.environ.get("SMA_CHECKPOINT_FILE")
        if not path:
            return default
        with open(path, encoding="utf-8") as fh:
            _restored = json.load(fh)
    return default if _restored is None else _restored


def __getattr__(name: str) -> Any:
    # the asset functions load urllib only when a runbook uses them
    if name in _ASSET_NAMES:
        from smarunbook import assets

        return getattr(assets, name)
    if name == "id_token":
        from smarunbook import identity

        return identity.id_token
    if name in ("start_runbook", "wait_for_job", "ChildJobFailed"):
        from smarunbook import jobs

        return getattr(jobs, name)
    raise AttributeError(name)


_ASSET_NAMES = {
    "get_automation_variable", "set_automation_variable", "get_automation_credential",
    "get_automation_connection", "get_automation_certificate", "AutomationAssetNotFound",
    "AutomationAssetError", "AutomationAssetException",
}
