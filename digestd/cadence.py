"""When a subscriber's next digest is due: pure arithmetic on slots in their time zone.

``immediate`` subscribers are due whenever papers wait for them. ``daily`` and ``weekly``
subscribers have slots (a local time, and for weekly a weekday); a subscriber is due when the
newest slot at or before now is later than the last slot handled for them (or than the
moment they subscribed). So a daemon that was down at 08:00 sends on its next start, once,
and a restart after sending finds the slot handled and sends nothing.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from digestd.config import WEEKDAYS, ScheduleConfig


def _clock(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def _at_local(day: dt.date, clock: dt.time, zone: ZoneInfo) -> dt.datetime:
    # fold=0: in an autumn overlap the first of the two 02:30s counts (one slot a day); a
    # 02:30 that a spring change skips is read with the offset before the change, so the
    # slot is once that day, at 03:30 on the new wall clock.
    return dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    # A naive datetime would silently be read in the host's zone by astimezone().
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone, got naive {value.isoformat()}")
    return value


def latest_slot(
    cadence: str, timezone: str, now: dt.datetime, schedule: ScheduleConfig
) -> dt.datetime | None:
    """The newest slot at or before `now` (UTC), or None for immediate subscribers."""
    _aware(now, "now")
    if cadence == "immediate":
        return None
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    if cadence == "daily":
        clock = _clock(schedule.daily_time)
        for back in range(0, 3):
            slot = _at_local(today - dt.timedelta(days=back), clock, zone)
            if slot <= now:
                return slot
    elif cadence == "weekly":
        clock = _clock(schedule.weekly_time)
        weekday = WEEKDAYS.index(schedule.weekly_day.lower())
        for back in range(0, 15):
            day = today - dt.timedelta(days=back)
            if day.weekday() == weekday:
                slot = _at_local(day, clock, zone)
                if slot <= now:
                    return slot
    else:
        raise ValueError(f"unknown cadence {cadence!r}")
    raise AssertionError("no slot found")  # pragma: no cover - the loops always find one


def next_slot(
    cadence: str, timezone: str, now: dt.datetime, schedule: ScheduleConfig
) -> dt.datetime | None:
    """The first slot after `now` (UTC), or None for immediate subscribers."""
    if cadence == "immediate":
        return None
    step = dt.timedelta(days=1 if cadence == "daily" else 7)
    # Probe forward in hours: DST changes shift local slots by at most an hour or two.
    probe = now + step + dt.timedelta(hours=3)
    candidate = latest_slot(cadence, timezone, probe, schedule)
    assert candidate is not None
    while True:
        earlier = latest_slot(cadence, timezone, candidate - dt.timedelta(seconds=1), schedule)
        assert earlier is not None
        if earlier <= now:
            return candidate
        candidate = earlier


def due_slot(
    cadence: str, timezone: str, reference: dt.datetime, now: dt.datetime,
    schedule: ScheduleConfig,
) -> tuple[bool, dt.datetime | None]:
    """Whether a subscriber is due now, and the slot to record as handled.

    `reference` is the last slot handled for the subscriber, or when they subscribed.
    Immediate subscribers are always due (whether papers wait is for the caller to see).
    """
    _aware(reference, "reference")
    slot = latest_slot(cadence, timezone, now, schedule)
    if slot is None:
        return True, None
    return slot > reference, slot
