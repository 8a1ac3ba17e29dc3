"""Readers' "more/less like this" ratings and the per-reader model that learns from them.

:mod:`.model` is the pure part (TF-IDF vectors, training, scoring); :mod:`.service` records
ratings, retrains and personalises a digest through the store.
"""

from __future__ import annotations

from digestd.feedback.service import AlsoLike, Feedback, Personalisation, parse_rating

__all__ = ["AlsoLike", "Feedback", "Personalisation", "parse_rating"]
