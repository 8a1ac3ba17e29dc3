"""Digests: selection → Jinja2 → premailer (once per distinct body) → MIME message.

Pure: no database, no network. `digestd.delivery` feeds it the papers the store selected
and hands the messages it composes to a transport.

    composer = Composer(config)                      # one per sending run: it caches bodies
    composed = composer.compose(subscriber, selected, topic_names, digest_key=..., now=...)
    composed.message                                 # an EmailMessage, ready for a transport
"""

from __future__ import annotations

from digestd.digest.compose import Composed, Composer
from digestd.digest.message import build_message, header_text, message_id
from digestd.digest.render import Body, DigestRenderer, Personal, highlight, inline_css
from digestd.digest.select import Digest, DigestPaper, TopicSection, build_digest, shorten

__all__ = [
    "Body",
    "Composed",
    "Composer",
    "Digest",
    "DigestPaper",
    "DigestRenderer",
    "Personal",
    "TopicSection",
    "build_digest",
    "build_message",
    "header_text",
    "highlight",
    "inline_css",
    "message_id",
    "shorten",
]
