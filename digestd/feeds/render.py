"""One entry point for the three feed formats."""

from __future__ import annotations

from digestd.feeds.atom import render_atom
from digestd.feeds.jsonfeed import render_json
from digestd.feeds.model import FeedDoc
from digestd.feeds.rss import render_rss

_WRITERS = {"rss": render_rss, "atom": render_atom, "json": render_json}


def render_feed(doc: FeedDoc, fmt: str) -> bytes:
    """`doc` as RSS 2.0, Atom or JSON Feed 1.1 bytes; the same input gives the same bytes."""
    try:
        writer = _WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown feed format {fmt!r}") from None
    return writer(doc)
