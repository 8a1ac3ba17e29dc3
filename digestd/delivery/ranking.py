"""A reader's feedback model applied to the digest being composed (preview and sending)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from digestd.runtime import Runtime
from digestd.store import ClaimedDelivery, PaperRecord, SelectedPaper, SubscriberRecord

if TYPE_CHECKING:
    from digestd.feedback import Feedback, Personalisation


class Ranker:
    """Loads scikit-learn and a reader's model only for readers who have one.

    The "you might also like" candidates are the papers of the digest's batches outside the
    reader's topics (the newest CANDIDATES of them), read once per batch range.
    """

    CANDIDATES = 2000

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.store = runtime.store
        self._feedback: Feedback | None = None
        self._candidates: dict[tuple[int, int], list[PaperRecord]] = {}
        #: whether a subscriber has a model, as a claim read it (`known`)
        self._has_model: dict[int, bool] = {}

    def known(self, claimed: Iterable[ClaimedDelivery]) -> None:
        """Whether these subscribers have a model, as their claim read it, rather than one
        query per message; each answer is used once."""
        if self.runtime.config.feedback.enabled:
            self._has_model = {
                item.subscriber.id: item.has_model for item in claimed
                if item.has_model is not None
            }

    def ranking(
        self, subscriber: SubscriberRecord, selected: Sequence[SelectedPaper],
        since: int, through: int,
    ) -> Personalisation | None:
        config = self.runtime.config.feedback
        if not config.enabled:
            return None
        has_model = self._has_model.pop(subscriber.id, None)
        if has_model is None:
            has_model = self.store.feedback_model(subscriber.id) is not None
        if not has_model:
            return None
        if self._feedback is None:
            from digestd.feedback import Feedback

            self._feedback = Feedback(self.store, config)
        candidates: list[PaperRecord] = []
        if config.also_like > 0:
            key = (since, through)
            if key not in self._candidates:
                self._candidates[key] = [
                    p for p in self.store.papers(since_batch=since, limit=self.CANDIDATES)
                    if p.batch_id <= through
                ]
            candidates = self._candidates[key]
        return self._feedback.personalise(subscriber.id, selected, candidates)
