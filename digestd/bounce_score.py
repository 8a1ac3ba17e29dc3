"""The bounce score: how close a subscriber is to being paused for bouncing (pure).

As list servers keep it (Mailman's bounce score): each bounce adds its weight, a hard bounce
(a permanent refusal, a 5.x.x report) more than a soft one (a 4.x.x report: the remote server
gave up after temporary trouble, a full mailbox say), and the subscriber is paused once the
score reaches the threshold. A score is about a problem that is still going on: once no
bounce has come for the window, it starts again from zero. A delivery known to have succeeded
and a resume reset it too; those resets clear the count, and a score without a count is none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from digestd.config import Config

Severity = Literal["hard", "soft"]


@dataclass(frozen=True)
class BounceRules:
    """The `[delivery]` keys that weigh bounces."""

    #: score at which a subscriber is paused
    threshold: float = 3.0
    hard: float = 1.0
    soft: float = 0.5
    #: a score with no bounce for this long is forgotten
    window: dt.timedelta = dt.timedelta(days=7)

    @classmethod
    def of(cls, config: Config) -> BounceRules:
        delivery = config.delivery
        return cls(
            threshold=float(delivery.pause_after_failures),
            hard=delivery.hard_bounce_score,
            soft=delivery.soft_bounce_score,
            window=dt.timedelta(days=delivery.bounce_window_days),
        )

    def weight(self, severity: Severity) -> float:
        return self.hard if severity == "hard" else self.soft


@dataclass(frozen=True)
class BounceScore:
    """Bounces counted since the score last reset, their weighted sum, and the last one's time."""

    count: int = 0
    score: float = 0.0
    last_at: dt.datetime | None = None

    def current(self, rules: BounceRules, now: dt.datetime) -> BounceScore:
        """This score as it stands at `now`: zero once the window has passed since the last
        bounce (or the count was reset)."""
        if self.count == 0 or self.last_at is None or now >= self.last_at + rules.window:
            return BounceScore()
        return self

    def add(self, severity: Severity, rules: BounceRules, now: dt.datetime) -> BounceScore:
        """The score after one more bounce at `now`."""
        base = self.current(rules, now)
        return BounceScore(base.count + 1, base.score + rules.weight(severity), now)

    def resets_at(self, rules: BounceRules) -> dt.datetime | None:
        """When this score goes back to zero if no bounce comes; None when it is zero."""
        if self.count == 0 or self.last_at is None:
            return None
        return self.last_at + rules.window

    def reaches(self, threshold: float) -> bool:
        # weights like 0.1 do not add up exactly: ten of them still reach 1
        return self.count > 0 and self.score >= threshold - 1e-9
