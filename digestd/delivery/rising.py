"""A reader's "rising" section: the papers of their topics gaining upvotes (preview, sending).

What a section holds, for a reader who asked for one (``subscribers.rising``): papers that
match one of their topics, are not due in this digest (those are new to them anyway and show
their gain inline), and gained at least ``rising.min_gain`` upvotes since the reader's
previous digest was sent, counted back ``rising.window_days`` at most (see
digestd.ranking.rising for how a gain over a window is measured). So a paper the reader was
sent before is news again only when it gained since; best gain first, at most
``rising.section_papers``. A reader with nothing due gets no digest, rising papers or not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from digestd.ranking.rising import Count, gain_text, rising
from digestd.runtime import Runtime
from digestd.store import PaperMatch, PaperRecord, SelectedPaper, SubscriberRecord

#: (paper, "+34 since Monday") pairs of a digest's rising section
RisingPapers = list[tuple[SelectedPaper, str]]


class RisingPicker:
    """Reads the recent upvote histories once per window start, and per reader picks theirs."""

    def __init__(self, runtime: Runtime):
        self.store = runtime.store
        self.config = runtime.config.rising
        self._histories: dict[dt.datetime, dict[int, list[Count]]] = {}
        self._papers: dict[int, tuple[PaperRecord, list[PaperMatch]]] = {}

    def pick(
        self, subscriber: SubscriberRecord, selected: Sequence[SelectedPaper], now: dt.datetime
    ) -> RisingPapers:
        if not subscriber.rising or not subscriber.topics:
            return []
        earliest = (now - dt.timedelta(days=self.config.window_days)).replace(
            minute=0, second=0, microsecond=0
        )
        last = self.store.last_digest_sent_at(subscriber.id)
        start = max(earliest, last) if last is not None else earliest
        histories = self._histories.get(earliest)
        if histories is None:
            # a sending run asks once per hour of window start, not once per reader
            self._histories = {earliest: self.store.upvote_histories(earliest)}
            histories = self._histories[earliest]
        due = {item.paper.id for item in selected}
        rises = rising(
            ((pid, counts) for pid, counts in histories.items() if pid not in due),
            start, min_gain=self.config.min_gain,
        )
        self._load([r.paper_id for r in rises])
        followed = set(subscriber.topics)
        picked: RisingPapers = []
        for rise in rises:
            paper, matches = self._papers.get(rise.paper_id, (None, []))
            mine = tuple(m for m in matches if m.slug in followed)
            if paper is None or not mine:
                continue
            label = gain_text(rise.gain, rise.since, now, subscriber.timezone)
            picked.append((SelectedPaper(paper, mine), label))
            if len(picked) == self.config.section_papers:
                break
        return picked

    def _load(self, ids: Sequence[int]) -> None:
        missing = [i for i in ids if i not in self._papers]
        if not missing:
            return
        matches = self.store.paper_matches(missing)
        for paper in self.store.papers_by_ids(missing):
            self._papers[paper.id] = (paper, matches.get(paper.id, []))
