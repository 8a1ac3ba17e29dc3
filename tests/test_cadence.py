"""Cadence arithmetic on inputs alone: daily and weekly slots in several zones and across the
daylight-saving changes, and when a subscriber is due."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from digestd.cadence import due_slot, latest_slot, next_slot
from digestd.config import ScheduleConfig

UTC = dt.UTC
EIGHT = ScheduleConfig(daily_time="08:00", weekly_day="monday", weekly_time="08:00")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: str, *args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone), fold=fold)  # type: ignore[misc]


def daily_at(clock: str) -> ScheduleConfig:
    return ScheduleConfig(daily_time=clock, weekly_day="sunday", weekly_time=clock)


# Daily slots in several zones ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # UTC: before 08:00 the slot is yesterday's, at 08:00 sharp it is today's
        ("UTC", utc(2026, 6, 10, 7, 59), utc(2026, 6, 9, 8)),
        ("UTC", utc(2026, 6, 10, 8, 0), utc(2026, 6, 10, 8)),
        ("UTC", utc(2026, 6, 10, 23, 59), utc(2026, 6, 10, 8)),
        # New York in summer (UTC-4) and winter (UTC-5)
        ("America/New_York", utc(2026, 7, 1, 11, 59), utc(2026, 6, 30, 12)),
        ("America/New_York", utc(2026, 7, 1, 12, 0), utc(2026, 7, 1, 12)),
        ("America/New_York", utc(2026, 1, 15, 13, 0), utc(2026, 1, 15, 13)),
        ("America/New_York", utc(2026, 1, 15, 12, 59), utc(2026, 1, 14, 13)),
        # Kolkata, UTC+05:30: 08:00 local is 02:30 UTC
        ("Asia/Kolkata", utc(2026, 6, 10, 2, 29), utc(2026, 6, 9, 2, 30)),
        ("Asia/Kolkata", utc(2026, 6, 10, 2, 30), utc(2026, 6, 10, 2, 30)),
        # Auckland, UTC+13 in January: the local day starts on the previous UTC day,
        # so 08:00 on the 16th local is 19:00 on the 15th UTC
        ("Pacific/Auckland", utc(2026, 1, 15, 18, 59), utc(2026, 1, 14, 19)),
        ("Pacific/Auckland", utc(2026, 1, 15, 19, 0), utc(2026, 1, 15, 19)),
        # ... and UTC+12 in July
        ("Pacific/Auckland", utc(2026, 7, 15, 20, 0), utc(2026, 7, 15, 20)),
    ],
)
def test_daily_latest_slot_in_several_zones(zone: str, now: dt.datetime, expected: dt.datetime):
    slot = latest_slot("daily", zone, now, EIGHT)
    assert slot == expected
    assert slot is not None and slot.tzinfo is UTC
    assert slot.astimezone(ZoneInfo(zone)).time() == dt.time(8, 0)


def test_the_same_instant_is_a_different_local_day_in_auckland_and_new_york():
    now = utc(2026, 1, 15, 20, 0)  # Jan 16 09:00 in Auckland, Jan 15 15:00 in New York
    auckland = latest_slot("daily", "Pacific/Auckland", now, EIGHT)
    new_york = latest_slot("daily", "America/New_York", now, EIGHT)
    assert auckland is not None and new_york is not None
    assert auckland.astimezone(ZoneInfo("Pacific/Auckland")).date() == dt.date(2026, 1, 16)
    assert new_york.astimezone(ZoneInfo("America/New_York")).date() == dt.date(2026, 1, 15)


def test_a_non_utc_now_means_the_same_instant():
    now = local("Asia/Tokyo", 2026, 6, 10, 17, 0)  # 08:00 UTC
    assert latest_slot("daily", "UTC", now, EIGHT) == utc(2026, 6, 10, 8)


def test_a_naive_now_is_refused():
    # A naive datetime would be read in the machine's zone: a silent, host-dependent bug.
    with pytest.raises(ValueError, match="time zone"):
        latest_slot("daily", "UTC", dt.datetime(2026, 6, 10, 8), EIGHT)


def test_immediate_has_no_slots_and_is_always_due():
    now = utc(2026, 6, 10, 8)
    assert latest_slot("immediate", "Europe/Berlin", now, EIGHT) is None
    assert next_slot("immediate", "Europe/Berlin", now, EIGHT) is None
    assert due_slot("immediate", "Europe/Berlin", now, now, EIGHT) == (True, None)


def test_an_unknown_cadence_is_refused():
    with pytest.raises(ValueError, match="hourly"):
        latest_slot("hourly", "UTC", utc(2026, 6, 10), EIGHT)


# Daylight-saving changes -------------------------------------------------------------------------


def _daily_slots(zone: str, clock: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    slots, now = [], start
    for _ in range(count):
        slot = next_slot("daily", zone, now, daily_at(clock))
        assert slot is not None
        slots.append(slot)
        now = slot
    return slots


@pytest.mark.parametrize(
    ("zone", "day", "before", "after"),
    [
        ("Europe/Berlin", dt.date(2026, 3, 29), 1, 2),  # CET -> CEST, 02:00 -> 03:00
        ("America/New_York", dt.date(2026, 3, 8), -5, -4),  # EST -> EDT, 02:00 -> 03:00
        ("Europe/Berlin", dt.date(2026, 10, 25), 2, 1),  # CEST -> CET, 03:00 -> 02:00
        ("America/New_York", dt.date(2026, 11, 1), -4, -5),  # EDT -> EST, 02:00 -> 01:00
    ],
)
def test_a_daily_time_outside_the_change_keeps_its_wall_clock(
    zone: str, day: dt.date, before: int, after: int
):
    """08:00 stays 08:00 local across the change; in UTC the slot moves by the hour."""
    start = dt.datetime.combine(day - dt.timedelta(days=3), dt.time(), tzinfo=UTC)
    slots = _daily_slots(zone, "08:00", start, 6)
    tz = ZoneInfo(zone)
    assert [s.astimezone(tz).date() for s in slots] == [
        day + dt.timedelta(days=n) for n in range(-3, 3)
    ]
    assert all(s.astimezone(tz).time() == dt.time(8, 0) for s in slots)
    offsets = [s.astimezone(tz).utcoffset() for s in slots]
    assert offsets == [dt.timedelta(hours=before)] * 3 + [dt.timedelta(hours=after)] * 3
    gaps = {b - a for a, b in itertools.pairwise(slots)}
    # one day is 23 or 25 hours long; the others are 24
    assert gaps == {dt.timedelta(hours=24), dt.timedelta(hours=24 + before - after)}


@pytest.mark.parametrize(
    ("zone", "day", "clock", "expected_utc", "expected_local"),
    [
        # 02:30 does not exist on these days: it is read with the offset before the change,
        # which puts the slot at 03:30 on the wall clock, once.
        ("Europe/Berlin", dt.date(2026, 3, 29), "02:30", utc(2026, 3, 29, 1, 30), "03:30+0200"),
        ("America/New_York", dt.date(2026, 3, 8), "02:30", utc(2026, 3, 8, 7, 30), "03:30-0400"),
    ],
)
def test_a_daily_time_in_the_spring_gap_fires_once_after_it(
    zone: str, day: dt.date, clock: str, expected_utc: dt.datetime, expected_local: str
):
    start = dt.datetime.combine(day - dt.timedelta(days=2), dt.time(12), tzinfo=UTC)
    slots = _daily_slots(zone, clock, start, 4)
    tz = ZoneInfo(zone)
    on_day = [s for s in slots if s.astimezone(tz).date() == day]
    assert on_day == [expected_utc]
    assert expected_utc.astimezone(tz).strftime("%H:%M%z") == expected_local
    # the days around it keep 02:30
    others = [s.astimezone(tz).strftime("%H:%M") for s in slots if s not in on_day]
    assert others == ["02:30"] * 3
    # one slot per local day, none skipped
    assert len({s.astimezone(tz).date() for s in slots}) == 4


@pytest.mark.parametrize(
    ("zone", "day", "clock", "first", "second"),
    [
        # 02:30 happens twice in Berlin on 2026-10-25, 01:30 twice in New York on 2026-11-01
        ("Europe/Berlin", dt.date(2026, 10, 25), "02:30", utc(2026, 10, 25, 0, 30),
         utc(2026, 10, 25, 1, 30)),
        ("America/New_York", dt.date(2026, 11, 1), "01:30", utc(2026, 11, 1, 5, 30),
         utc(2026, 11, 1, 6, 30)),
    ],
)
def test_a_daily_time_in_the_autumn_overlap_fires_once_at_the_first(
    zone: str, day: dt.date, clock: str, first: dt.datetime, second: dt.datetime
):
    tz = ZoneInfo(zone)
    # both instants are that wall-clock time on that day
    assert first.astimezone(tz).strftime("%H:%M") == second.astimezone(tz).strftime("%H:%M")
    assert first.astimezone(tz).date() == second.astimezone(tz).date() == day
    schedule = daily_at(clock)
    assert latest_slot("daily", zone, first, schedule) == first
    assert latest_slot("daily", zone, second, schedule) == first  # no second slot
    assert next_slot("daily", zone, first - dt.timedelta(seconds=1), schedule) == first
    following = next_slot("daily", zone, first, schedule)
    assert following is not None and following.astimezone(tz).date() == day + dt.timedelta(1)
    # handled at the first: the second occurrence is not due again
    assert due_slot("daily", zone, first, second, schedule) == (False, first)


# Weekly slots --------------------------------------------------------------------------------


def test_weekly_latest_and_next_slot():
    zone = "Europe/Berlin"  # 2026-06-08 is a Monday; CEST, UTC+2
    monday_slot = utc(2026, 6, 8, 6)
    assert latest_slot("weekly", zone, utc(2026, 6, 8, 6), EIGHT) == monday_slot
    assert latest_slot("weekly", zone, utc(2026, 6, 14, 23), EIGHT) == monday_slot
    assert latest_slot("weekly", zone, utc(2026, 6, 8, 5, 59), EIGHT) == utc(2026, 6, 1, 6)
    assert next_slot("weekly", zone, utc(2026, 6, 8, 5, 59), EIGHT) == monday_slot
    assert next_slot("weekly", zone, monday_slot, EIGHT) == utc(2026, 6, 15, 6)
    assert next_slot("weekly", zone, utc(2026, 6, 10), EIGHT) == utc(2026, 6, 15, 6)


def test_weekly_slots_across_the_spring_change_stay_on_sunday_local():
    schedule = ScheduleConfig(daily_time="08:00", weekly_day="Sunday", weekly_time="02:30")
    zone, tz = "Europe/Berlin", ZoneInfo("Europe/Berlin")
    now, slots = utc(2026, 3, 14), []
    for _ in range(4):
        slot = next_slot("weekly", zone, now, schedule)
        assert slot is not None
        slots.append(slot)
        now = slot
    assert [s.astimezone(tz).date() for s in slots] == [
        dt.date(2026, 3, 15), dt.date(2026, 3, 22), dt.date(2026, 3, 29), dt.date(2026, 4, 5)
    ]
    assert [s.astimezone(tz).strftime("%H:%M") for s in slots] == [
        "02:30", "02:30", "03:30", "02:30"
    ]


def test_weekly_in_auckland_is_monday_there_sunday_in_utc():
    slot = latest_slot("weekly", "Pacific/Auckland", utc(2026, 6, 8, 12), EIGHT)
    assert slot == utc(2026, 6, 7, 20)  # Monday 08:00 NZST (UTC+12) is Sunday 20:00 UTC
    assert slot.astimezone(ZoneInfo("Pacific/Auckland")).weekday() == 0


# next_slot and latest_slot agree -------------------------------------------------------------


@pytest.mark.parametrize(
    "zone", ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Auckland", "Europe/Berlin"]
)
@pytest.mark.parametrize("cadence", ["daily", "weekly"])
def test_next_slot_is_the_first_slot_after_now(zone: str, cadence: str):
    # Every 7 hours through a year: the next slot is after now, and nothing lies between.
    now = utc(2026, 1, 1)
    for _ in range(0, 365 * 24, 7 * 24 if cadence == "weekly" else 7):
        upcoming = next_slot(cadence, zone, now, EIGHT)
        assert upcoming is not None and upcoming > now
        assert latest_slot(cadence, zone, upcoming, EIGHT) == upcoming
        assert latest_slot(cadence, zone, upcoming - dt.timedelta(seconds=1), EIGHT) <= now  # type: ignore[operator]
        now += dt.timedelta(hours=7)


# due_slot ---------------------------------------------------------------------------------------


def test_due_when_the_latest_slot_is_after_the_reference():
    now = utc(2026, 6, 10, 9)
    slot = utc(2026, 6, 10, 8)
    # reference before the latest slot (subscribed yesterday, or last handled yesterday)
    assert due_slot("daily", "UTC", utc(2026, 6, 9, 8), now, EIGHT) == (True, slot)
    assert due_slot("daily", "UTC", utc(2026, 6, 9, 17), now, EIGHT) == (True, slot)
    # reference at or after it: handled already (or subscribed after it)
    assert due_slot("daily", "UTC", slot, now, EIGHT) == (False, slot)
    assert due_slot("daily", "UTC", utc(2026, 6, 10, 8, 30), now, EIGHT) == (False, slot)


def test_downtime_over_several_slots_is_one_due_slot_the_newest():
    # Down from Monday 07:00 until Thursday 10:00: one digest, for Thursday's slot.
    last_handled = utc(2026, 6, 7, 8)
    now = utc(2026, 6, 11, 10)
    assert due_slot("daily", "UTC", last_handled, now, EIGHT) == (True, utc(2026, 6, 11, 8))
    # recorded as handled, a restart a minute later is not due
    assert due_slot("daily", "UTC", utc(2026, 6, 11, 8), now + dt.timedelta(minutes=1), EIGHT) \
        == (False, utc(2026, 6, 11, 8))


def test_due_in_a_half_hour_zone():
    # Kolkata: 08:00 IST is 02:30 UTC
    reference = utc(2026, 6, 9, 2, 30)
    assert due_slot("daily", "Asia/Kolkata", reference, utc(2026, 6, 10, 2, 29), EIGHT)[0] is False
    assert due_slot("daily", "Asia/Kolkata", reference, utc(2026, 6, 10, 2, 30), EIGHT) == (
        True, utc(2026, 6, 10, 2, 30)
    )
