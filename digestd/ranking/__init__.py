"""Ranking a subscriber's papers: comparable scores across topics, fair shares of a digest.

Pure: no I/O. :mod:`.normalise` turns raw query scores into per-topic percentiles;
:mod:`.fair` splits a digest's slots between the topics a subscriber follows.
"""

from __future__ import annotations

from digestd.ranking.normalise import Percentiles, TopicNormaliser

__all__ = ["Percentiles", "TopicNormaliser"]
