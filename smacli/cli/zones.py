"""Time zones on the command line: this machine's IANA zone for a new schedule, and times
shown in a schedule's own zone."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from smacli.cli.common import UsageError


def _zone(name: str | None) -> str | None:
    name = (name or "").strip().lstrip(":")
    if not name or name.startswith("/"):
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def local_zone() -> str | None:
    """This machine's IANA zone: TZ when set (it then decides alone), else /etc/timezone,
    else where /etc/localtime points; None when it cannot be told."""
    if "TZ" in os.environ:
        return _zone(os.environ["TZ"])
    try:
        found = _zone(Path("/etc/timezone").read_text(encoding="utf-8"))
    except OSError:
        found = None
    if found:
        return found
    target = os.path.realpath("/etc/localtime")
    return _zone(target.split("zoneinfo/", 1)[1]) if "zoneinfo/" in target else None


def zone_for(start: str | None) -> str | None:
    """The zone a new schedule gets without --time-zone: this machine's. None (the service's
    UTC) when it cannot be told and --start has no offset other than UTC's; a UsageError
    when --start's offset would otherwise be taken for a zone."""
    zone = local_zone()
    offset = None
    if start:
        try:
            offset = datetime.fromisoformat(start).utcoffset()
        except ValueError:
            return zone  # the service says what is wrong with it
    if zone is None:
        if offset:
            raise UsageError("--start has an offset but no time zone, and this machine's "
                             "zone is unknown: add --time-zone (e.g. Europe/Paris) so its "
                             "local hour holds across daylight saving")
        return None
    if offset is not None:
        moment = datetime.fromisoformat(start)
        if moment.astimezone(ZoneInfo(zone)).utcoffset() != offset:
            raise UsageError(f"--start's offset is not this machine's zone {zone} at that "
                             "time: add --time-zone to say which zone the schedule follows")
    return zone


def in_zone(value: str | None, zone: str | None) -> str | None:
    """An ISO time from the API, as the wall clock of `zone` (e.g. 2026-12-01 02:00 Europe/
    Paris)."""
    if not value:
        return value
    try:
        moment = datetime.fromisoformat(value).astimezone(ZoneInfo(zone or "UTC"))
    except (ValueError, ZoneInfoNotFoundError):
        return value
    return f"{moment:%Y-%m-%d %H:%M} {zone or 'UTC'}"
