"""When a schedule fires: pure functions of its settings, no database.

Times go in and come out as aware UTC datetimes. Calendar frequencies (Day, Week, Month,
Cron) are reckoned in the schedule's IANA time zone, so a daily 09:00 in Europe/Paris stays
at 09:00 local across daylight-saving changes; Minute and Hour count elapsed time. A local
time that does not exist on a day (the hour skipped in spring) fires at the same offset as
just before the change (02:30 becomes 03:30); a local time that happens twice (autumn)
fires once, the first time.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FREQUENCIES = ("OneTime", "Minute", "Hour", "Day", "Week", "Month", "Cron")
WEEK_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
OCCURRENCES = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
# an interval spans at most about a century (and a Minute or Hour one the API's 100,000):
# beyond it the search for the next fire day would run for seconds, then off the calendar
MAX_INTERVAL = {"Minute": 100_000, "Hour": 100_000, "Day": 36_500, "Week": 5_200,
                "Month": 1_200}
_SEARCH_DAYS = 366 * 12  # far enough for a yearly cron on 29 February, or every 12 months
_MAX_SEARCH_DAYS = 366 * 150  # a fire day further away than this is no fire day


class RecurrenceError(ValueError):
    """A schedule setting that cannot work; the message says which and why."""


@dataclass(frozen=True)
class Recurrence:
    frequency: str
    start_time: datetime                       # aware
    interval: int = 1
    time_zone: str = "UTC"
    expiry_time: datetime | None = None
    week_days: tuple[str, ...] = ()            # Week: default the start's week day
    month_days: tuple[int, ...] = ()           # Month: 1..31, -1 for the last day
    occurrences: tuple[tuple[int, str], ...] = ()  # Month: (1..4 or -1, "Tuesday")
    cron: str = ""
    _cron: CronSpec | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = check(self)
        if problems:
            raise RecurrenceError(" ".join(problems))
        if self.frequency == "Cron":
            object.__setattr__(self, "_cron", CronSpec.parse(self.cron))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (and not before the start), or None
        when the schedule has no more (one-time and done, or past its expiry)."""
        after = max(after, self.start_time - timedelta(microseconds=1))
        found = self._next(after.astimezone(UTC))
        if found is None or (self.expiry_time is not None and found > self.expiry_time):
            return None
        return found

    def last_at_or_before(self, moment: datetime, since: datetime) -> datetime | None:
        """The latest fire time in (since - 1 µs, moment]: what a late beat fires once."""
        current, last = since - timedelta(microseconds=1), None
        for _ in range(1_000_000):
            nxt = self.next_after(current)
            if nxt is None or nxt > moment:
                return last
            last = current = nxt
            if self.frequency in ("Minute", "Hour"):  # jump: one step before `moment`
                step = self._step()
                skip = int((moment - current) / step) - 1
                if skip > 0:
                    current += step * skip
                    last = current
        return last

    # --- frequencies -------------------------------------------------------------------

    def _step(self) -> timedelta:
        return timedelta(minutes=self.interval) if self.frequency == "Minute" \
            else timedelta(hours=self.interval)

    def _next(self, after: datetime) -> datetime | None:
        start = self.start_time.astimezone(UTC)
        if self.frequency == "OneTime":
            return start if start > after else None
        if self.frequency in ("Minute", "Hour"):
            step = self._step()
            if after < start:
                return start
            return start + step * (int((after - start) / step) + 1)
        zone = self.zone
        local_after = after.astimezone(zone)
        if self.frequency == "Cron":
            return self._cron.next_after(local_after, zone)  # type: ignore[union-attr]
        anchor = self.start_time.astimezone(zone)
        wall = anchor.time().replace(tzinfo=None)
        day = max(anchor.date(), local_after.date() - timedelta(days=1))
        for _ in range(min(_SEARCH_DAYS * self.interval, _MAX_SEARCH_DAYS)):
            if self._matches(day, anchor.date()):
                instant = _instant(day, wall, zone)
                if instant > after:
                    return instant
            if day == date.max:
                return None  # the end of the calendar
            day += timedelta(days=1)
        return None

    def _matches(self, day: date, anchor: date) -> bool:
        if day < anchor:
            return False
        if self.frequency == "Day":
            return (day - anchor).days % self.interval == 0
        if self.frequency == "Week":
            weeks = ((day - timedelta(days=day.weekday()))
                     - (anchor - timedelta(days=anchor.weekday()))).days // 7
            days = self.week_days or (WEEK_DAYS[anchor.weekday()],)
            return weeks % self.interval == 0 and WEEK_DAYS[day.weekday()] in days
        # Month
        months = (day.year - anchor.year) * 12 + day.month - anchor.month
        if months % self.interval:
            return False
        last = calendar.monthrange(day.year, day.month)[1]
        if not self.month_days and not self.occurrences:
            return day.day == anchor.day
        if day.day in self.month_days or (-1 in self.month_days and day.day == last):
            return True
        for nth, weekday in self.occurrences:
            if WEEK_DAYS[day.weekday()] != weekday:
                continue
            if nth == -1 and day.day + 7 > last:
                return True
            if nth > 0 and (day.day - 1) // 7 + 1 == nth:
                return True
        return False


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time; see the module's note on DST gaps and folds."""
    local = datetime.combine(day, wall, tzinfo=zone)  # fold=0: the first of two
    return local.astimezone(UTC)


def check(r: Recurrence) -> list[str]:
    """What is wrong with a recurrence, as messages naming the setting."""
    problems = []
    if r.frequency not in FREQUENCIES:
        problems.append(f"frequency must be one of {', '.join(FREQUENCIES)}.")
    if r.start_time.tzinfo is None:
        problems.append("start_time needs a time zone offset (e.g. 2026-01-01T09:00:00Z).")
    most = MAX_INTERVAL.get(r.frequency, 100_000)
    if not isinstance(r.interval, int) or not 1 <= r.interval <= most:
        problems.append(f"interval must be a whole number from 1 to {most}"
                        f"{' for ' + r.frequency if r.frequency in MAX_INTERVAL else ''}.")
    try:
        ZoneInfo(r.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"time_zone {r.time_zone!r} is not an IANA time zone "
                        "(e.g. Europe/Paris, UTC).")
    if r.expiry_time is not None and r.expiry_time.tzinfo is None:
        problems.append("expiry_time needs a time zone offset.")
    elif r.expiry_time is not None and r.start_time.tzinfo is not None \
            and r.expiry_time <= r.start_time:
        problems.append("expiry_time must be after start_time.")
    for d in r.week_days:
        if d not in WEEK_DAYS:
            problems.append(f"week_days: {d!r} is not one of {', '.join(WEEK_DAYS)}.")
    if r.week_days and r.frequency != "Week":
        problems.append("week_days apply only to the Week frequency.")
    for d in r.month_days:
        if not isinstance(d, int) or not (1 <= d <= 31 or d == -1):
            problems.append(f"month_days: {d!r} must be 1 to 31, or -1 for the last day.")
    for nth, weekday in r.occurrences:
        if nth not in OCCURRENCES.values() or weekday not in WEEK_DAYS:
            problems.append(f"monthly occurrence ({nth}, {weekday}) must be First..Fourth or "
                            "Last of a week day.")
    if (r.month_days or r.occurrences) and r.frequency != "Month":
        problems.append("month_days and monthly_occurrences apply only to the Month "
                        "frequency.")
    if r.frequency == "Cron":
        try:
            CronSpec.parse(r.cron)
        except RecurrenceError as exc:
            problems.append(str(exc))
    elif r.cron:
        problems.append("cron applies only to the Cron frequency.")
    return problems


# --- cron --------------------------------------------------------------------------------

_MONTH_NAMES = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DOW_NAMES = {d.lower(): (i + 1) % 7 for i, d in enumerate(calendar.day_abbr)}  # sun = 0


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step, stepped = 1, "/" in part
        if stepped:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) < 1:
                raise RecurrenceError(f"cron: bad step {step_text!r} in the {what} field.")
            step = int(step_text)
        if part == "*":
            first, last = low, high
        else:
            bounds = part.split("-")
            if len(bounds) > 2:
                raise RecurrenceError(f"cron: bad range {part!r} in the {what} field.")
            nums = []
            for b in bounds:
                b = b.lower()
                if b in names:
                    nums.append(names[b])
                elif b.isdigit():
                    nums.append(int(b))
                else:
                    raise RecurrenceError(f"cron: {b!r} is not a valid {what}.")
            first, last = nums[0], nums[-1]
            if stepped and len(bounds) == 1:  # 5/15: from 5 to the end, every 15
                last = high
        if not (low <= first <= high and low <= last <= high) or first > last:
            raise RecurrenceError(f"cron: {part!r} is outside {low}-{high} in the {what} "
                                  "field.")
        values.update(range(first, last + 1, step))
    if what == "day of week":
        values = {v % 7 for v in values}  # 7 is Sunday too
    return frozenset(values)


@dataclass(frozen=True)
class CronSpec:
    """Five fields: minute hour day-of-month month day-of-week, as in Vixie cron (when both
    day fields are restricted, a day matching either fires)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]   # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronSpec:
        fields = (text or "").split()
        if len(fields) != 5:
            raise RecurrenceError("cron must have five fields: minute hour day-of-month month "
                                  f"day-of-week (got {text!r}).")
        minute, hour, dom, month, dow = fields
        return cls(_field(minute, 0, 59, {}, "minute"), _field(hour, 0, 23, {}, "hour"),
                   _field(dom, 1, 31, {}, "day of month"),
                   _field(month, 1, 12, _MONTH_NAMES, "month"),
                   _field(dow, 0, 7, _DOW_NAMES, "day of week"),
                   dom == "*", dow == "*")

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.weekday() + 1) % 7 in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow

    def next_after(self, local_after: datetime, zone: ZoneInfo) -> datetime | None:
        after = local_after.astimezone(UTC)
        day = local_after.date() - timedelta(days=1)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for _ in range(_SEARCH_DAYS):
            if self.day_matches(day):
                # the earliest instant of the day: around a DST change, local order and
                # instant order can differ
                later = [i for i in (_instant(day, time(h, m), zone)
                                     for h in hours for m in minutes) if i > after]
                if later:
                    return min(later)
            day += timedelta(days=1)
        return None
