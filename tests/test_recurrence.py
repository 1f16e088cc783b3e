"""Schedule math, directly: every frequency, time zones and DST, month ends, leap years."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smacommon.recurrence import CronSpec, Recurrence, RecurrenceError

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fires(r: Recurrence, after: datetime, n: int) -> list[datetime]:
    out = []
    for _ in range(n):
        after = r.next_after(after)
        if after is None:
            break
        out.append(after)
    return out


def test_one_time_fires_once():
    r = Recurrence("OneTime", datetime(2026, 5, 1, 12, tzinfo=UTC))
    assert _fires(r, T0, 3) == [datetime(2026, 5, 1, 12, tzinfo=UTC)]
    assert r.next_after(datetime(2026, 5, 1, 12, tzinfo=UTC)) is None


@pytest.mark.parametrize("frequency,step", [("Minute", timedelta(minutes=15)),
                                            ("Hour", timedelta(hours=15))])
def test_minute_and_hour_count_elapsed_time(frequency, step):
    r = Recurrence(frequency, datetime(2026, 3, 28, 0, 0, tzinfo=UTC), interval=15,
                   time_zone="Europe/Paris")
    fires = _fires(r, T0, 10)
    assert fires[0] == r.start_time
    assert all(b - a == step for a, b in zip(fires, fires[1:], strict=False))


def test_daily_stays_at_local_time_across_dst_both_ways():
    start = datetime(2026, 3, 20, 9, 0, tzinfo=PARIS)
    r = Recurrence("Day", start, time_zone="Europe/Paris")
    fires = _fires(r, start - timedelta(seconds=1), 240)  # past both changes of 2026
    assert {f.astimezone(PARIS).time().isoformat() for f in fires} == {"09:00:00"}
    offsets = {f.astimezone(PARIS).utcoffset() for f in fires}
    assert offsets == {timedelta(hours=1), timedelta(hours=2)}
    assert len({f.astimezone(PARIS).date() for f in fires}) == 240  # one a day


def test_daily_in_the_skipped_hour_fires_once_that_day():
    start = datetime(2026, 3, 27, 2, 30, tzinfo=PARIS)
    r = Recurrence("Day", start, time_zone="Europe/Paris")
    fires = _fires(r, start - timedelta(seconds=1), 4)
    assert [f.astimezone(PARIS).strftime("%d %H:%M") for f in fires] == \
        ["27 02:30", "28 02:30", "29 03:30", "30 02:30"]


def test_daily_in_the_repeated_hour_fires_once():
    start = datetime(2026, 10, 24, 2, 30, tzinfo=PARIS)
    r = Recurrence("Day", start, time_zone="Europe/Paris")
    fires = _fires(r, start - timedelta(seconds=1), 3)
    assert [f.astimezone(PARIS).strftime("%d %H:%M") for f in fires] == \
        ["24 02:30", "25 02:30", "26 02:30"]
    assert fires[1] - fires[0] == timedelta(hours=24)


def test_every_other_week_on_chosen_days():
    start = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # a Monday
    r = Recurrence("Week", start, interval=2, week_days=("Monday", "Friday"))
    fires = _fires(r, start - timedelta(seconds=1), 6)
    assert [f.date().isoformat() for f in fires] == [
        "2026-01-05", "2026-01-09", "2026-01-19", "2026-01-23", "2026-02-02", "2026-02-06"]


def test_monthly_31st_skips_short_months_and_last_day_does_not():
    r = Recurrence("Month", datetime(2026, 1, 31, 6, tzinfo=UTC), month_days=(31,))
    assert [f.month for f in _fires(r, T0, 7)] == [1, 3, 5, 7, 8, 10, 12]
    last = Recurrence("Month", datetime(2026, 1, 1, 6, tzinfo=UTC), month_days=(-1,))
    assert [f.day for f in _fires(last, T0, 3)] == [31, 28, 31]
    leap = Recurrence("Month", datetime(2028, 1, 1, 6, tzinfo=UTC), month_days=(-1,))
    assert [f.day for f in _fires(leap, datetime(2028, 1, 1, tzinfo=UTC), 2)] == [31, 29]


def test_monthly_second_tuesday_and_last_friday():
    r = Recurrence("Month", datetime(2026, 1, 1, 6, tzinfo=UTC),
                   occurrences=((2, "Tuesday"), (-1, "Friday")))
    fires = _fires(r, T0, 4)
    assert [(f.date().isoformat(), f.strftime("%A")) for f in fires] == [
        ("2026-01-13", "Tuesday"), ("2026-01-30", "Friday"),
        ("2026-02-10", "Tuesday"), ("2026-02-27", "Friday")]


def test_cron_in_a_time_zone_and_on_leap_days():
    r = Recurrence("Cron", T0, cron="30 9 * * mon-fri", time_zone="Europe/Paris")
    fires = _fires(r, datetime(2026, 3, 27, tzinfo=UTC), 3)
    assert [f.astimezone(PARIS).strftime("%a %d %H:%M") for f in fires] == \
        ["Fri 27 09:30", "Mon 30 09:30", "Tue 31 09:30"]
    leap = Recurrence("Cron", T0, cron="0 0 29 2 *")
    assert _fires(leap, T0, 2) == [datetime(2028, 2, 29, tzinfo=UTC),
                                   datetime(2032, 2, 29, tzinfo=UTC)]
    steps = Recurrence("Cron", T0, cron="*/20 1 1,15 * *")
    assert [f.strftime("%d %H:%M") for f in _fires(steps, T0, 4)] == \
        ["01 01:00", "01 01:20", "01 01:40", "15 01:00"]


def test_cron_day_fields_are_or_when_both_set():
    spec = CronSpec.parse("0 0 13 * fri")
    assert spec.day_matches(date(2026, 2, 13)) and spec.day_matches(date(2026, 2, 6))
    assert not spec.day_matches(date(2026, 2, 7))
    assert CronSpec.parse("0 0 * * 7").weekdays == frozenset({0})


def test_expiry_ends_a_schedule():
    r = Recurrence("Day", T0, expiry_time=T0 + timedelta(days=2, hours=1))
    assert len(_fires(r, T0 - timedelta(seconds=1), 10)) == 3


def test_missed_window_is_one_fire_time():
    r = Recurrence("Minute", T0, interval=5)
    assert r.last_at_or_before(T0 + timedelta(days=7, minutes=3), T0) == \
        T0 + timedelta(days=7)
    daily = Recurrence("Day", T0 + timedelta(hours=9))
    assert daily.last_at_or_before(T0 + timedelta(days=3, hours=8), T0 + timedelta(hours=9)) \
        == T0 + timedelta(days=2, hours=9)
    assert daily.last_at_or_before(T0, T0 + timedelta(hours=9)) is None


@pytest.mark.parametrize("kwargs,message", [
    ({"frequency": "Yearly"}, "frequency must be one of"),
    ({"frequency": "Day", "time_zone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"frequency": "Day", "interval": 0}, "interval"),
    ({"frequency": "Day", "week_days": ("Monday",)}, "only to the Week"),
    ({"frequency": "Month", "month_days": (32,)}, "1 to 31"),
    ({"frequency": "Cron", "cron": "* * *"}, "five fields"),
    ({"frequency": "Cron", "cron": "61 * * * *"}, "outside 0-59"),
    ({"frequency": "Cron", "cron": "* * * foo *"}, "not a valid month"),
    ({"frequency": "Day", "expiry_time": T0 - timedelta(days=1)}, "after start_time"),
])
def test_bad_settings_say_what_to_fix(kwargs, message):
    with pytest.raises(RecurrenceError, match=message):
        Recurrence(start_time=T0, **kwargs)


# --- properties --------------------------------------------------------------------------

zones = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney",
                         "Asia/Kolkata", "America/Santiago"])
starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(zone=zones, start=starts, interval=st.integers(1, 5),
       hop=st.integers(0, 2000), hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_daily_fires_at_the_wall_time_every_interval_days(zone, start, interval, hop, hour,
                                                          minute):
    tz = ZoneInfo(zone)
    start = start.replace(hour=hour, minute=minute, second=0, microsecond=0, tzinfo=tz)
    r = Recurrence("Day", start, interval=interval, time_zone=zone)
    after = start + timedelta(hours=hop * 7)
    fire = r.next_after(after)
    assert fire > after
    local = fire.astimezone(tz)
    assert (local.date() - start.date()).days % interval == 0
    # the wall time, or the same offset past it on a day the hour does not exist
    naive = datetime.combine(local.date(), start.time().replace(tzinfo=None))
    assert local.replace(tzinfo=None) - naive in (timedelta(0), timedelta(minutes=30),
                                                  timedelta(hours=1))
    previous = r.next_after(fire - timedelta(days=interval, hours=3))
    assert previous is not None and previous <= fire


@settings(max_examples=150, deadline=None, derandomize=True)
@given(start=starts, day=st.sampled_from([29, 30, 31, -1]), interval=st.integers(1, 12))
def test_monthly_day_exists_in_every_fire(start, day, interval):
    start = start.replace(tzinfo=UTC)
    r = Recurrence("Month", start, interval=interval, month_days=(day,))
    fires = _fires(r, start - timedelta(seconds=1), 6)
    assert fires
    for fire in fires:
        last = calendar.monthrange(fire.year, fire.month)[1]
        assert fire.day == (last if day == -1 else day)
        assert ((fire.year - start.year) * 12 + fire.month - start.month) % interval == 0


@settings(max_examples=150, deadline=None, derandomize=True)
@given(zone=zones, after=starts, minute=st.integers(0, 59), hour=st.integers(0, 23))
def test_cron_next_is_the_first_match_after(zone, after, minute, hour):
    tz = ZoneInfo(zone)
    after = after.replace(tzinfo=UTC)
    r = Recurrence("Cron", datetime(2019, 1, 1, tzinfo=UTC), cron=f"{minute} {hour} * * *",
                   time_zone=zone)
    fire = r.next_after(after)
    assert after < fire <= after + timedelta(days=1, hours=2)
    local = fire.astimezone(tz)
    assert local.minute == minute
    assert local.hour in (hour, (hour + 1) % 24)  # +1 only across a DST gap
