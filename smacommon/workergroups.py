"""Worker groups: the one rule for their names, and the broker queue each one is.

A group's queue lives in sma's own namespace (`sma.q.<group>`): the Redis database it
shares with kombu's bookkeeping (`unacked`, `unacked_index`, `_kombu.binding.*`, the
pidbox and event exchanges) holds nothing a group name could land on, so no name an
operator gives can push a message onto a key of another type and stop the worker.
"""

from __future__ import annotations

import re

from smacommon.errors import ValidationFailed

QUEUE_PREFIX = "sma.q."
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-' (not '.' or '..')"
# "." and "..": no name of any kind may be one (smacommon.names)
_NAME = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9_.-]{1,64}")


def is_valid_worker_group(name: object) -> bool:
    """Whether `name` may name a worker group (and so a queue)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def validate_worker_group(name: str) -> str:
    """`name` when it may name a worker group; ValidationFailed saying what to fix."""
    if not is_valid_worker_group(name):
        raise ValidationFailed(f"Invalid worker group {name!r}: use {NAME_RULE}.",
                               {"worker_group": [f"Use {NAME_RULE}."]})
    return name


def queue_name(group: str) -> str:
    """The Celery queue of worker group `group`; ValueError for a name no queue may have."""
    if not is_valid_worker_group(group):
        raise ValueError(f"{group!r} is not a valid worker group: no queue carries it")
    return QUEUE_PREFIX + group
