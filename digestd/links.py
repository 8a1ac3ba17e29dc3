"""Every public URL digestd hands out, built in one place so feeds, e-mails and pages agree."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

FEED_FORMATS = ("rss", "atom", "json")


def path_prefix(base_url: str) -> str:
    """The path part of `base_url` without its trailing slash: `/digest` for
    `https://example.org/digest`, empty at the root of a host."""
    return urlsplit(base_url).path.rstrip("/")


def paper_url(base_url: str, slug: str, reader: str | None = None) -> str:
    """A paper's public page; with `reader` (a subscriber's token), the page offers that
    reader "more/less like this"."""
    return f"{base_url}/papers/{quote(slug)}" + (reader_query(reader) if reader else "")


#: the query parameter of a paper page that names the reader (their private token)
READER_PARAM = "reader"


def reader_query(token: str) -> str:
    return f"?{READER_PARAM}={quote(token)}"


def rising_feed_url(base_url: str, fmt: str) -> str:
    return f"{base_url}/feeds/rising.{fmt}"


def index_url(base_url: str) -> str:
    return f"{base_url}/"


def all_feed_url(base_url: str, fmt: str) -> str:
    return f"{base_url}/feeds/all.{fmt}"


def topic_feed_url(base_url: str, slug: str, fmt: str) -> str:
    return f"{base_url}/feeds/topics/{quote(slug)}.{fmt}"


def private_feed_url(base_url: str, token: str, fmt: str) -> str:
    return f"{base_url}/feeds/private/{quote(token)}.{fmt}"


def all_archive_url(base_url: str, page: int, fmt: str) -> str:
    return f"{base_url}/feeds/archive/all/{page}.{fmt}"


def topic_archive_url(base_url: str, slug: str, page: int, fmt: str) -> str:
    return f"{base_url}/feeds/archive/topics/{quote(slug)}/{page}.{fmt}"


def private_archive_url(base_url: str, token: str, page: int, fmt: str) -> str:
    return f"{base_url}/feeds/private/{quote(token)}/archive/{page}.{fmt}"


def topic_page_url(base_url: str, slug: str) -> str:
    return f"{base_url}/topics/{quote(slug)}"


def subscribe_url(base_url: str, topic: str | None = None) -> str:
    """The sign-up page; with `topic`, that topic ticked."""
    return f"{base_url}/subscribe" + (f"?topic={quote(topic)}" if topic else "")


def topics_scheme_url(base_url: str) -> str:
    """The category scheme of topics in feeds: the prefix of every topic page."""
    return f"{base_url}/topics/"


def icon_url(base_url: str) -> str:
    return f"{base_url}/icon.png"


def favicon_url(base_url: str) -> str:
    return f"{base_url}/favicon.ico"


def opml_url(base_url: str) -> str:
    return f"{base_url}/feeds/topics.opml"


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url}/unsubscribe/{quote(token)}"


def feedback_url(base_url: str, token: str, slug: str | None = None, rating: str = "") -> str:
    """The reader's rating page for a paper ("up", "down", "clear"), or the prefix of them."""
    url = f"{base_url}/feedback/{quote(token)}"
    if slug is not None:
        url += f"/{quote(slug)}/{rating}"
    return url


def manage_url(base_url: str, token: str) -> str:
    return f"{base_url}/manage/{quote(token)}"


def confirm_url(base_url: str, code: str) -> str:
    return f"{base_url}/confirm/{quote(code)}"


def digest_url(base_url: str, token: str, digest_key: str) -> str:
    """The private web view of one digest: every paper it holds, by topic."""
    return f"{base_url}/digests/{quote(token)}/{quote(digest_key)}"


# Envelope addresses (VERP) ---------------------------------------------------------------------


def verp_address(envelope_sender: str, token: str) -> str:
    """bounces@example.org and a token → bounces+<token>@example.org.

    A bounce comes back to the envelope sender, so the address it comes back to names the
    subscriber even when the bounce itself quotes nothing useful.
    """
    local, _, domain = envelope_sender.rpartition("@")
    return f"{local}+{token}@{domain}"


def verp_token(address: str, envelope_sender: str) -> str | None:
    """The token of a VERP address made from `envelope_sender`, or None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = envelope_sender.rpartition("@")
    prefix = f"{base_local}+"
    if domain.lower() != base_domain.lower() or not local.lower().startswith(prefix.lower()):
        return None
    return local[len(prefix):] or None
