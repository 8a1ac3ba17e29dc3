"""Upvote gains: "+12 since Tuesday" on every paper, and which papers are rising.

Pure. Dumps list a paper again with its count of the day (table ``sightings``); a paper keeps
its first counted sighting (``first_upvotes``/``first_upvotes_at``) and its latest count
(``upvotes``). What is computed:

- **Gain since first seen**: latest count − the count of the first sighting that carried one.
  Shown next to the count wherever upvotes are shown, when it is not zero (counts can go down).
  The day is that first sighting's date in the reader's time zone (UTC where none is known):
  "today", "yesterday", a weekday within the past week, else the date; feeds, which are read
  long after they were written, always give the date.
- **Gain over a window** (rising papers): latest count − the count known when the window
  opened: the last counted sighting at or before its start, or, for a paper first counted
  inside the window, that first count. Only papers with a counted sighting inside the window
  and a positive gain rise; they rank by gain, then latest count, then newest sighting.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

__all__ = ["Count", "Rise", "gain_text", "rising", "since_label", "window_gain"]


def _zone(timezone: str | None) -> dt.tzinfo:
    if not timezone:
        return dt.UTC
    try:
        return ZoneInfo(timezone)
    except (ValueError, KeyError):  # an unknown zone: UTC rather than no label
        return dt.UTC


def since_label(
    at: dt.datetime, now: dt.datetime, timezone: str | None = None, *, relative: bool = True
) -> str:
    """When `at` was, as a reader in `timezone` says it at `now`: "since Tuesday"."""
    zone = _zone(timezone)
    day = at.astimezone(zone).date()
    dated = f"since {day:%b} {day.day}, {day.year}"
    if not relative:
        return dated
    today = now.astimezone(zone).date()
    days = (today - day).days
    if days <= 0:
        return "today"
    if days == 1:
        return "since yesterday"
    if days < 7:
        return f"since {day:%A}"
    return f"since {day:%b} {day.day}" if day.year == today.year else dated


def gain_text(
    gain: int | None, at: dt.datetime | None, now: dt.datetime, timezone: str | None = None,
    *, relative: bool = True,
) -> str:
    """"+12 since Tuesday" ("-3 since …" when the count went down); "" for no or zero gain."""
    if not gain or at is None:
        return ""
    return f"{gain:+d} {since_label(at, now, timezone, relative=relative)}"


@dataclass(frozen=True, slots=True)
class Count:
    """One counted sighting: when digestd saw the paper listed, and its upvotes then."""

    seen_at: dt.datetime
    upvotes: int


@dataclass(frozen=True, slots=True)
class Rise:
    paper_id: int
    gain: int
    #: the latest count
    upvotes: int
    #: when the count the gain is measured from was seen
    since: dt.datetime
    #: the newest counted sighting
    last_seen: dt.datetime


def window_gain(counts: Sequence[Count], start: dt.datetime) -> tuple[int, dt.datetime] | None:
    """(gain, when the baseline was seen) over the window opening at `start`; None when the
    paper has no counted sighting after `start` (nothing new to say about it). `counts` are
    oldest first, as the store hands them out."""
    if not counts or counts[-1].seen_at <= start:
        return None
    first_inside = bisect_right(counts, start, key=lambda c: c.seen_at)
    baseline = counts[first_inside - 1] if first_inside else counts[0]
    return counts[-1].upvotes - baseline.upvotes, baseline.seen_at


def rising(
    histories: Iterable[tuple[int, Sequence[Count]]], start: dt.datetime, *,
    min_gain: int = 1, limit: int | None = None,
) -> list[Rise]:
    """Papers (id, counted sightings, oldest first) that gained at least `min_gain` since
    `start`, best first."""
    found = []
    for paper_id, counts in histories:
        result = window_gain(counts, start)
        if result is None or result[0] < max(1, min_gain):
            continue
        latest = counts[-1]
        found.append(Rise(paper_id, result[0], latest.upvotes, result[1], latest.seen_at))
    found.sort(key=lambda r: (-r.gain, -r.upvotes, -r.last_seen.timestamp(), -r.paper_id))
    return found if limit is None else found[:limit]
