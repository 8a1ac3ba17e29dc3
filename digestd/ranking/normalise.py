"""Making one topic's query scores comparable with another's.

Raw scores grow with the number of terms a query has (a paper's median score is 7 in a long
reasoning query and 1 in a short training one), so they rank well within a topic and mislead
across topics. The normalised score of a paper in a topic is its percentile among that
topic's recent matches: the share of those matches scoring below it, counting ties as half
(the mid-rank). 0.9 means "better than 90 % of what this topic usually finds", whatever the
topic. Pure: the store supplies the recent scores.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping

__all__ = ["Percentiles", "TopicNormaliser"]


class Percentiles:
    """The mid-rank percentile of a score among a sample of scores."""

    __slots__ = ("_sorted",)

    def __init__(self, scores: Iterable[float]) -> None:
        self._sorted = sorted(scores)

    def __len__(self) -> int:
        return len(self._sorted)

    def __call__(self, score: float) -> float:
        sample = self._sorted
        if not sample:
            return 0.5
        below = bisect_left(sample, score)
        at_or_below = bisect_right(sample, score)
        return (below + at_or_below) / (2 * len(sample))


class TopicNormaliser:
    """Each topic's percentile function, from its recent scores."""

    def __init__(self, scores: Mapping[str, Iterable[float]]) -> None:
        self._topics = {slug: Percentiles(values) for slug, values in scores.items()}

    def __call__(self, slug: str, score: float) -> float:
        percentiles = self._topics.get(slug)
        return percentiles(score) if percentiles is not None else 0.5
