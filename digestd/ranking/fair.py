"""A fair digest: every followed topic gets its share of the slots, best papers first in each.

Ordering all of a subscriber's papers by one score and cutting at ``max_papers`` lets the
topic with the highest-scoring query fill the digest. Instead:

1. Each topic's candidates are the due papers it matched, best first by normalised score
   (the percentile within the topic, see .normalise), then raw score, then upvotes (a tie
   breaker only), then newest.
2. Topics take turns, like a draft: in each round every topic that still has candidates takes
   its best paper not yet taken, until the slots are filled. So each of *k* topics gets
   ``max_papers / k`` slots, and a topic with fewer papers leaves its unused slots to the
   others. A paper in several topics is shown once, in the section of the topic that took it.
3. Within a section papers are best first; sections come in the order of their best paper.
4. Every due paper not shown is counted under its best topic: "and 40 more on KV cache".
5. Papers in none of the topics (a topic left the configuration) come last, in a section
   with the slug "", if slots are left.

Pure: it takes the papers the store selected and returns the plan the digest is built from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from digestd.store import SelectedPaper

__all__ = ["Section", "paper_key", "plan_sections"]


#: an optional per-paper adjustment added to the normalised score (a reader's feedback model)
Boost = Callable[[SelectedPaper], float]


@dataclass(frozen=True, slots=True)
class Section:
    slug: str
    papers: tuple[SelectedPaper, ...]
    #: due papers of this topic (counted under their best topic) that the digest leaves out
    more: int
    #: those papers, best first: what "and 40 more on KV cache" leads to
    rest: tuple[SelectedPaper, ...] = ()


def _normalised(item: SelectedPaper, slug: str) -> float:
    for match in item.matches:
        if match.slug == slug:
            return match.normalised
    return 0.0


def _raw(item: SelectedPaper, slug: str) -> float:
    for match in item.matches:
        if match.slug == slug:
            return match.score
    return 0.0


def paper_key(item: SelectedPaper, slug: str, boost: float = 0.0) -> tuple[float, ...]:
    """Sort key (ascending = best first) of a paper within one topic."""
    return (
        -(_normalised(item, slug) + boost),
        -_raw(item, slug),
        -(item.paper.upvotes if item.paper.upvotes is not None else -1),
        -item.paper.first_seen_at.timestamp(),
        -item.paper.id,
    )


def plan_sections(
    selected: Sequence[SelectedPaper],
    topics: Sequence[str],
    max_papers: int,
    *,
    boost: Boost | None = None,
) -> list[Section]:
    """Split up to ``max_papers`` slots fairly between ``topics`` (the subscriber's, in order)."""
    boosts = {item.paper.id: boost(item) for item in selected} if boost else {}
    candidates: dict[str, list[SelectedPaper]] = {slug: [] for slug in topics}
    for item in selected:
        for match in item.matches:
            if match.slug in candidates:
                candidates[match.slug].append(item)
    for slug, items in candidates.items():
        items.sort(key=lambda item, slug=slug: paper_key(item, slug, boosts.get(item.paper.id, 0)))

    taken: dict[str, list[SelectedPaper]] = {slug: [] for slug in topics}
    shown: set[int] = set()
    cursors = dict.fromkeys(topics, 0)
    active = [slug for slug in topics if candidates[slug]]
    while active and len(shown) < max_papers:
        still = []
        for slug in active:
            if len(shown) >= max_papers:
                break
            items, cursor = candidates[slug], cursors[slug]
            while cursor < len(items) and items[cursor].paper.id in shown:
                cursor += 1
            if cursor < len(items):
                taken[slug].append(items[cursor])
                shown.add(items[cursor].paper.id)
                cursor += 1
            cursors[slug] = cursor
            if cursor < len(items):
                still.append(slug)
        active = still

    rest: dict[str, list[SelectedPaper]] = {slug: [] for slug in topics}
    more = dict.fromkeys(topics, 0)
    for item in selected:
        if item.paper.id in shown or not item.matches:
            continue
        home = min(
            (m.slug for m in item.matches if m.slug in more),
            key=lambda slug: paper_key(item, slug, boosts.get(item.paper.id, 0)),
            default=None,
        )
        if home is not None:
            more[home] += 1
            rest[home].append(item)
    for slug, items in rest.items():
        items.sort(key=lambda item, slug=slug: paper_key(item, slug, boosts.get(item.paper.id, 0)))

    sections = [
        Section(slug, tuple(taken[slug]), more[slug], tuple(rest[slug]))
        for slug in topics if taken[slug]
    ]
    # papers in none of the topics (one left the configuration): after the rest, if room
    homeless = [item for item in selected if not any(m.slug in more for m in item.matches)]
    room = max(0, max_papers - len(shown))
    if homeless and room:
        sections.append(
            Section("", tuple(homeless[:room]), max(0, len(homeless) - room),
                    tuple(homeless[room:]))
        )
    # taken in order already (each topic took its best remaining); sections by their best paper
    order = {slug: index for index, slug in enumerate(topics)}
    order[""] = len(order)
    sections.sort(
        key=lambda s: (
            paper_key(s.papers[0], s.slug, boosts.get(s.papers[0].paper.id, 0))[:3],
            order[s.slug],
        )
    )
    return sections
