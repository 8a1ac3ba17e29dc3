"""Papers and their topic matches for composing digests, read once however many hold them."""

from __future__ import annotations

from collections.abc import Sequence

from digestd.store import PaperMatch, PaperRecord, SelectedPaper, Store

#: distinct selections remembered per run
SELECTIONS = 4096


class PaperCache:
    """Papers and their topic matches, read once per run however many digests hold them."""

    def __init__(self, store: Store):
        self.store = store
        self.papers: dict[int, PaperRecord | None] = {}
        self.matches: dict[int, list[PaperMatch]] = {}
        #: selections already made: the subscribers of one digest share the answer
        self._selections: dict[tuple[tuple[int, ...], tuple[str, ...]], list[SelectedPaper]] = {}

    def selected(self, paper_ids: Sequence[int], topics: Sequence[str]) -> list[SelectedPaper]:
        """The papers with their matches among `topics`, in the order of `paper_ids` (the
        same list object for the same question: treat it as read-only)."""
        key = (tuple(paper_ids), tuple(topics))
        found = self._selections.get(key)
        if found is None:
            if len(self._selections) >= SELECTIONS:
                self._selections.clear()
            found = self._selections[key] = self._select(paper_ids, topics)
        return found

    def _select(self, paper_ids: Sequence[int], topics: Sequence[str]) -> list[SelectedPaper]:
        missing = [i for i in dict.fromkeys(paper_ids) if i not in self.papers]
        if missing:
            found = {p.id: p for p in self.store.papers_by_ids(missing)}
            self.matches.update(self.store.paper_matches(found))
            for paper_id in missing:
                self.papers[paper_id] = found.get(paper_id)
        wanted = set(topics)
        selected = []
        for paper_id in paper_ids:
            paper = self.papers[paper_id]
            if paper is not None:
                matches = tuple(m for m in self.matches.get(paper_id, ()) if m.slug in wanted)
                selected.append(SelectedPaper(paper, matches))
        return selected


