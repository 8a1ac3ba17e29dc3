"""Every public URL digestd hands out, built in one place so feeds, e-mails and pages agree."""

from __future__ import annotations

from urllib.parse import quote

FEED_FORMATS = ("rss", "atom")


def paper_url(base_url: str, slug: str) -> str:
    return f"{base_url}/papers/{quote(slug)}"


def index_url(base_url: str) -> str:
    return f"{base_url}/"


def all_feed_url(base_url: str, fmt: str) -> str:
    return f"{base_url}/feeds/all.{fmt}"


def topic_feed_url(base_url: str, slug: str, fmt: str) -> str:
    return f"{base_url}/feeds/topics/{quote(slug)}.{fmt}"


def private_feed_url(base_url: str, token: str, fmt: str) -> str:
    return f"{base_url}/feeds/private/{quote(token)}.{fmt}"


def opml_url(base_url: str) -> str:
    return f"{base_url}/feeds/topics.opml"


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url}/unsubscribe/{quote(token)}"


def manage_url(base_url: str, token: str) -> str:
    return f"{base_url}/manage/{quote(token)}"


def confirm_url(base_url: str, code: str) -> str:
    return f"{base_url}/confirm/{quote(code)}"
