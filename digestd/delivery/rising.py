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
        #: every paper of the histories, with its topics (None: deleted meanwhile)
        self._papers: dict[int, tuple[PaperRecord | None, list[PaperMatch]]] = {}

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
            # a sending run reads them once per hour of window start, not once per reader,
            # with the topics of every paper in them
            histories = self.store.upvote_histories(earliest)
            self._histories = {earliest: histories}
            self._load(list(histories))
        due = {item.paper.id for item in selected}
        followed = set(subscriber.topics)
        rises = rising(
            (
                (pid, counts) for pid, counts in histories.items()
                if pid not in due and any(m.slug in followed for m in self._papers[pid][1])
            ),
            start, min_gain=self.config.min_gain,
        )
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
        self._papers = {i: (None, []) for i in ids}
        if not ids:
            return
        matches = self.store.paper_matches(ids)
        for paper in self.store.papers_by_ids(ids):
            self._papers[paper.id] = (paper, matches.get(paper.id, []))
