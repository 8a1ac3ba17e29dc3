"""Digest bodies: Jinja2 templates whose CSS premailer inlined once, when they were loaded.

Everybody whose digest holds the same papers under the same topics gets the same body; only
the greeting, the address and the private links differ. So the templates are rendered with
placeholders for those, once per distinct `Digest`, and each subscriber's copy is made by
substituting the placeholders, HTML-escaped. premailer (by far the slowest step) runs on the
HTML template itself, not on every body: see `inline_template`. A placeholder carries a
random nonce per renderer, so no paper text can contain one and have personal data
substituted into it. Each paper's part of a body (the templates' ``paper`` block) is rendered
once per renderer and joined into every body that shows the paper: see digest.fragments.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import logging
import re
import secrets
import textwrap
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import premailer
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from digestd import links
from digestd.digest.fragments import FragmentCache
from digestd.digest.select import Digest, DigestPaper, Link, TopicSection, truncate

#: the HTML part stays under this many bytes (Gmail clips messages past 102 KB)
HTML_BUDGET = 90_000
#: distinct bodies kept per renderer
CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Personal:
    """What differs between two subscribers receiving the same digest."""

    greeting: str
    email: str
    name: str
    unsubscribe_url: str
    manage_url: str
    feed_url: str
    #: "<base>/feedback/<token>": a paper's rating links are this + "/<paper id>/up" or "/down"
    feedback_url: str
    #: the private web page of this digest, listing every paper it holds
    view_url: str
    #: "?reader=<token>" after a paper page's URL, so the page offers this reader the rating
    #: buttons ("" when feedback is off)
    reader_query: str = ""


PERSONAL_FIELDS = tuple(f.name for f in fields(Personal))


def personal_for(
    base_url: str, *, email: str, name: str, token: str, digest_key: str,
    feedback: bool = True,
) -> Personal:
    first = name.split()[0] if name.split() else ""
    return Personal(
        greeting=f"Hi {first}," if first else "Hello,",
        email=email,
        name=name,
        unsubscribe_url=links.unsubscribe_url(base_url, token),
        manage_url=links.manage_url(base_url, token),
        feed_url=links.private_feed_url(base_url, token, "atom"),
        feedback_url=links.feedback_url(base_url, token),
        view_url=links.digest_url(base_url, token, digest_key),
        reader_query=links.reader_query(token) if feedback else "",
    )


def highlight(text: str, terms: Sequence[str], *, span: str = '<span class="hl">') -> Markup:
    """`text` HTML-escaped, with every occurrence of `terms` wrapped in a highlight span.

    Matching runs on the plain text and every piece is escaped on its own, so nothing in the
    text can open or close markup; only the span tags are ours. `span` is the opening tag,
    with the inline style the digest's stylesheet gives it (see `inline_template`).
    """
    return _highlight(text, tuple(terms), span)


@functools.lru_cache(maxsize=4096)
def _highlight(text: str, terms: tuple[str, ...], span: str) -> Markup:
    # a paper's title and abstract come back in every fragment that shows the paper
    pattern = _highlight_pattern(terms)
    if pattern is None:
        return escape(text)
    opening = Markup(span)
    pieces: list[Markup] = []
    position = 0
    for match in pattern.finditer(text):
        pieces.append(escape(text[position : match.start()]))
        pieces.append(opening + escape(match.group()) + Markup("</span>"))
        position = match.end()
    pieces.append(escape(text[position:]))
    return Markup("").join(pieces)


@functools.lru_cache(maxsize=4096)
def _highlight_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    """The pattern for one paper's highlight terms, compiled once (title and abstract, and
    every digest that holds the paper, ask for the same)."""
    words = [t.split() for t in terms if t.strip()]
    if not words:
        return None
    alternatives = sorted(
        (r"\s+".join(re.escape(w) for w in term) for term in words), key=len, reverse=True
    )
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


@functools.lru_cache(maxsize=8192)
def wrap(text: str, width: int = 70) -> str:
    """Lines of at most `width` characters, broken at spaces only.

    Jinja's wordwrap also breaks after hyphens, which splits "chain-of-thought" over two
    lines; a long URL stays whole on a line of its own.
    """
    return "\n".join(
        textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    )


#: the "Matched:" line of the text part stays this short
MATCHED_CHARS = 60
_QUERY_SYNTAX = re.compile(r'[*"()]|\b\w+:')


def matched(paper: object) -> str:
    """Why a paper is in the digest, in words of its own text: no query syntax, short.

    The highlights are what was found in the title and abstract; the query terms
    (``math*``, ``title:"…"``) are only the fallback when nothing could be highlighted.
    """
    return _matched(tuple(getattr(paper, "highlights", ())), tuple(getattr(paper, "terms", ())))


@functools.lru_cache(maxsize=4096)
def _matched(highlights: tuple[str, ...], terms: tuple[str, ...]) -> str:
    words = highlights or terms
    seen: dict[str, str] = {}
    for word in words:
        plain = " ".join(_QUERY_SYNTAX.sub(" ", word).split())
        if plain and plain.lower() not in seen:
            seen[plain.lower()] = plain
    shown: list[str] = []
    for word in seen.values():
        if len(", ".join([*shown, word])) > MATCHED_CHARS:
            break
        shown.append(word)
    return ", ".join(shown)


def format_date(value: dt.date | None) -> str:
    return f"{value:%b} {value.day}, {value.year}" if value else ""


def inline_css(document: str) -> str:
    """premailer: CSS of the <style> block moved into style attributes.

    Rules that cannot be inlined (the prefers-color-scheme media query, :hover) stay in a
    <style> block of their own, which is what keeps dark mode working where it is supported.
    """
    inlined = premailer.Premailer(
        document,
        remove_classes=False,
        strip_important=False,
        keep_style_tags=False,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    if not inlined.lstrip()[:9].lower().startswith("<!doctype"):
        inlined = "<!DOCTYPE html>\n" + inlined
    return inlined


_JINJA_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def inline_template(source: str) -> tuple[str, str]:
    """premailer applied to a template instead of to each rendered body.

    Returns the template source with the stylesheet's rules in style attributes, and the
    opening tag premailer gives a highlight span (``<span class="hl" style=... bgcolor=...>``),
    which the highlight filter writes at render time, when premailer is no longer there.
    Jinja tags are swapped for plain words while premailer parses and rewrites the HTML, then
    put back verbatim, so the template renders as before, only already inlined.
    """
    nonce = secrets.token_hex(8)
    tags: list[str] = []

    def protect(match: re.Match[str]) -> str:
        tags.append(match.group())
        return f"jinja{nonce}n{len(tags) - 1}x"

    protected = _JINJA_TAG_RE.sub(protect, source)
    probe = f'<span class="hl" id="probe{nonce}">x</span>'
    at = protected.rfind("</body>")
    if at < 0:
        raise ValueError("the digest template has no </body>")
    inlined = inline_css(protected[:at] + probe + "\n" + protected[at:])
    found = re.search(rf'<span class="hl" id="probe{nonce}"([^>]*)>x</span>\n?', inlined)
    if found is None:
        raise ValueError("premailer dropped the highlight probe")
    inlined = inlined[: found.start()] + inlined[found.end() :]
    restored = re.sub(rf"jinja{nonce}n(\d+)x", lambda m: tags[int(m.group(1))], inlined)
    return restored, f'<span class="hl"{found.group(1)}>'


@dataclass(frozen=True, slots=True)
class Body:
    """A rendered digest body with placeholders for the personal parts."""

    subject: str
    preheader: str
    html: str
    text: str
    _pattern: re.Pattern[str]
    #: `html` and `text` as the pieces they were joined from: a paper's fragment (see
    #: digest.fragments) is one piece, the same object in every body that shows the paper
    html_pieces: tuple[str, ...] = ()
    text_pieces: tuple[str, ...] = ()

    def personalise(self, personal: Personal) -> tuple[str, str]:
        """(html, text) for one subscriber: placeholders replaced, HTML-escaped in the HTML."""
        values = {name: getattr(personal, name) for name in PERSONAL_FIELDS}
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        html_part = self._pattern.sub(lambda m: escaped[m.group(1)], self.html)
        text_part = self._pattern.sub(lambda m: values[m.group(1)], self.text)
        return html_part, text_part


#: subjects are cut to this many characters; inbox lists show less
SUBJECT_CHARS = 90


def subject_for(digest: Digest) -> str:
    noun = "paper" if digest.total == 1 else "papers"
    prefix = f"{digest.total} new {noun}: "
    return prefix + truncate(digest.best.title, SUBJECT_CHARS - len(prefix))


def preheader_for(digest: Digest) -> str:
    titles = [p.title for p in digest.papers[:3]]
    return truncate(" · ".join(titles), 140)


#: what a cached template block may read: immutable values (see digest.fragments)
VALUE_TYPES: tuple[type, ...] = (
    str, Markup, int, float, bool, type(None), dt.date, dt.datetime,
    Digest, TopicSection, DigestPaper, Link, Personal,
)
#: the block of the digest templates that shows one paper
PAPER_BLOCK = "paper"


class DigestRenderer:
    """Renders digests from ``<templates_dir>/email/digest.{html,txt}``; caches bodies, and
    each paper's block of both templates."""

    def __init__(self, templates_dir: Path, base_url: str, *, feedback: bool = True):
        self.base_url = base_url
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir)),
            autoescape=select_autoescape(["html"], default_for_string=False, default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["highlight"] = highlight
        self.env.filters["date"] = format_date
        self.env.filters["wrap"] = wrap
        self.env.filters["matched"] = matched
        self.env.globals["paper_url"] = lambda slug: links.paper_url(base_url, slug)
        #: whether papers carry "more/less like this" links (feedback.enabled)
        self.env.globals["feedback"] = feedback
        # where a section's left-out papers are: the topic's public page (the same for every
        # reader, so the body stays shareable between subscribers)
        self.env.globals["topic_url"] = lambda slug: links.topic_page_url(base_url, slug)
        nonce = secrets.token_hex(8)
        self._pattern = re.compile(rf"digestd{nonce}x({'|'.join(PERSONAL_FIELDS)})x")
        self._placeholders = Personal(
            **{name: f"digestd{nonce}x{name}x" for name in PERSONAL_FIELDS}
        )
        self._cache: OrderedDict[Digest, Body] = OrderedDict()
        #: bodies rendered (cache misses), for reports and tests
        self.renders = 0
        self._html: FragmentCache | None = None
        self._text: FragmentCache | None = None

    @staticmethod
    def cache_key(digest: Digest) -> Digest:
        # A frozen dataclass compares and hashes by every field the templates can see (made
        # of shared values, see select.py: hashing it is cheaper than spelling it out).
        return digest

    def clear(self) -> None:
        """Forget the cached bodies; the papers' fragments stay (they are keyed by value, so
        they cannot go stale: `clear_fragments` is for measuring them)."""
        self._cache.clear()

    def clear_fragments(self) -> None:
        for fragments in (self._html, self._text):
            if fragments is not None:
                fragments.clear()

    @property
    def fragment_renders(self) -> int:
        """Paper blocks rendered (cache misses), both templates."""
        return sum(f.renders for f in (self._html, self._text) if f is not None)

    def is_cached(self, digest: Digest) -> bool:
        return self.cache_key(digest) in self._cache

    def _html_template(self) -> FragmentCache:
        """email/digest.html with its CSS inlined, made once per renderer (see
        `inline_template`); the highlight filter writes the spans' inline style itself."""
        if self._html is None:
            source, _, _ = self.env.loader.get_source(  # type: ignore[union-attr]
                self.env, "email/digest.html"
            )
            inlined, span = inline_template(source)
            self.env.filters["highlight"] = functools.partial(highlight, span=span)
            # from_string would take the environment's default for strings (no escaping):
            # the template is HTML, escaped as when it was loaded by name
            html_env = self.env.overlay(autoescape=True)
            template = html_env.from_string(inlined)
            self._html = FragmentCache(html_env, template, inlined, PAPER_BLOCK, VALUE_TYPES)
        return self._html

    def _text_template(self) -> FragmentCache:
        if self._text is None:
            name = "email/digest.txt"
            source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            template = self.env.get_template(name)
            self._text = FragmentCache(self.env, template, source, PAPER_BLOCK, VALUE_TYPES)
        return self._text

    def _render_html(self, context: dict[str, object]) -> tuple[str, list[str]]:
        pieces = self._html_template().render(context)
        html_part = "".join(pieces)
        if not html_part.lstrip()[:9].lower().startswith("<!doctype"):
            html_part = "<!DOCTYPE html>\n" + html_part
            pieces.insert(0, "<!DOCTYPE html>\n")
        return html_part, pieces

    def _context(self, digest: Digest) -> dict[str, object]:
        return {
            "digest": digest,
            "personal": self._placeholders,
            "subject": subject_for(digest),
            "preheader": preheader_for(digest),
        }

    def body(self, digest: Digest) -> Body:
        """The body for `digest`, rendered and inlined only the first time it is asked for."""
        key = self.cache_key(digest)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        body = self._render(digest)
        self.renders += 1
        self._cache[key] = body
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return body

    def _render(self, digest: Digest) -> Body:
        context = self._context(digest)
        html_part, html_pieces = self._render_html(context)
        text_pieces = self._text_template().render(context)
        return Body(
            subject=str(context["subject"]),
            preheader=str(context["preheader"]),
            html=html_part,
            text="".join(text_pieces),
            _pattern=self._pattern,
            html_pieces=tuple(html_pieces),
            text_pieces=tuple(text_pieces),
        )
