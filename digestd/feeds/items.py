"""A stored paper as a feed item: its arrival time, its links and topics, its HTML content.

Pure. Every piece of text from a dump reaches the HTML through `html.escape` (or as an
attribute value that is a checked web URL), so no reader ever renders an element a dump
carried. New kinds of paper links or authors are added in `paper_links` and `paper_authors`,
and every format shows them.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Mapping, Sequence

from digestd import links
from digestd.feeds.model import Category, FeedItem, Link, entry_id, is_web_url, utc, xml_safe
from digestd.store import PaperRecord


def arrival(paper: PaperRecord, batch_first_id: int) -> dt.datetime:
    """When the paper arrived, one second earlier per place after the first in its dump.

    All papers of a batch were stored at once; readers that sort by date (most of them) would
    otherwise show them in any order. Counting back from the batch's time keeps every date at
    or before the moment digestd really had the paper.
    """
    place = max(0, paper.id - batch_first_id)
    return utc(paper.first_seen_at) - dt.timedelta(seconds=place)


_LINK_TITLES = {
    "abs": "arXiv abstract", "pdf": "PDF", "hf": "Hugging Face paper page", "code": "Code",
    "project": "Project page", "doi": "DOI",
}


def paper_links(paper: PaperRecord) -> tuple[Link, ...]:
    """The paper's links other than its page here: arXiv, PDF, code and project pages the
    sources named, then the web URLs written in the abstract."""
    found: dict[str, str] = {}
    for kind, url in paper.page_links.items():
        if is_web_url(url):
            found.setdefault(url, _LINK_TITLES.get(kind, ""))
    for url in paper.links:
        if is_web_url(url):
            found.setdefault(url, "")
    return tuple(Link(url, title) for url, title in found.items())


def paper_authors(paper: PaperRecord) -> tuple[str, ...]:
    """Names that may stand as the item's author: the authors' names when a source gave them,
    else the organisation. An author count is not a name."""
    names = tuple(name for name in (xml_safe(a).strip() for a in paper.authors) if name)
    if names:
        return names
    organization = xml_safe(paper.organization or "").strip()
    return (organization,) if organization else ()


def abstract_segments(text: str, urls: Sequence[str]) -> list[tuple[str, str | None]]:
    """The abstract cut into (text, url-or-None) pieces, so URLs in it can be linked safely."""
    safe = sorted({u for u in urls if is_web_url(u) and u in text}, key=len, reverse=True)
    if not safe:
        return [(text, None)]
    pieces = re.split("(" + "|".join(map(re.escape, safe)) + ")", text)
    return [(piece, piece if piece in safe else None) for piece in pieces if piece]


def _anchor(url: str, text: str) -> str:
    return f'<a href="{html.escape(url)}">{html.escape(text)}</a>'


def item_html(
    text: str, paper: PaperRecord, page_url: str, item_links: Sequence[Link],
    categories: Sequence[Category],
) -> str:
    """The item's content: escaped abstract, facts, links, topics and the paper page."""
    parts = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if paragraph:
            pieces = abstract_segments(paragraph, [link.url for link in item_links])
            body = "".join(_anchor(url, piece) if url else html.escape(piece)
                           for piece, url in pieces)
            parts.append(f"<p>{body}</p>")
    if paper.ai_summary:
        summary = html.escape(xml_safe(paper.ai_summary))
        parts.insert(0, f"<p><b>TL;DR</b> (Hugging Face's AI summary): {summary}</p>")
    facts = []
    if paper.published:
        facts.append(f"Published {paper.published.isoformat()}")
    if paper.arxiv_id:
        facts.append(f"arXiv:{html.escape(paper.arxiv_id)}")
    if paper.authors:
        facts.append(html.escape(xml_safe(", ".join(paper.authors))))
    if paper.organization:
        facts.append(html.escape(xml_safe(paper.organization)))
    if paper.authors_count and not paper.authors:
        facts.append(f"{paper.authors_count} author{'s' if paper.authors_count != 1 else ''}")
    if facts:
        parts.append(f"<p>{' · '.join(facts)}</p>")
    if item_links:
        listed = "".join(f"<li>{_anchor(link.url, link.title or link.url)}</li>"
                         for link in item_links)
        parts.append(f"<p>Links:</p><ul>{listed}</ul>")
    if categories:
        topics = ", ".join(_anchor(c.url, c.name) for c in categories)
        parts.append(f"<p>Topics: {topics}</p>")
    parts.append(f"<p>{_anchor(page_url, 'The paper on digestd')}</p>")
    return "\n".join(parts)


def feed_item(
    paper: PaperRecord, topics: Sequence[str], batch_first_id: int, base_url: str,
    topic_names: Mapping[str, str],
) -> FeedItem:
    """The item of `paper`, which matched the topics of slugs `topics` (best first)."""
    page_url = links.paper_url(base_url, paper.slug)
    text = xml_safe(paper.abstract).strip()
    item_links = paper_links(paper)
    categories = tuple(
        Category(
            slug=slug,
            name=xml_safe(topic_names.get(slug, slug)),
            url=links.topic_page_url(base_url, slug),
            scheme=links.topics_scheme_url(base_url),
        )
        for slug in topics
    )
    return FeedItem(
        id=entry_id(paper.key),
        title=xml_safe(paper.title).strip() or "(untitled)",
        text=text,
        html=item_html(text, paper, page_url, item_links, categories),
        url=page_url,
        arrived=arrival(paper, batch_first_id),
        published=paper.published,
        authors=paper_authors(paper),
        links=item_links,
        categories=categories,
        changed=utc(max(paper.updated_at, paper.first_seen_at)),
    )
