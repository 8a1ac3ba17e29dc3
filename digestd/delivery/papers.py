"""Papers and their topic matches for composing digests, read once however many hold them."""

from __future__ import annotations

from collections.abc import Sequence

from digestd.store import PaperMatch, PaperRecord, SelectedPaper, Store


class PaperCache:
    """Papers and their topic matches, read once per run however many digests hold them."""

    def __init__(self, store: Store):
        self.store = store
        self.papers: dict[int, PaperRecord | None] = {}
        self.matches: dict[int, list[PaperMatch]] = {}

    def selected(self, paper_ids: Sequence[int], topics: Sequence[str]) -> list[SelectedPaper]:
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


