"""arXiv identifiers and the clean-up every structured source needs: ids, names, text, URLs.

An arXiv id is versionless in digestd ("2509.01234"); the version travels beside it. Both
schemes are read: the current one (``YYMM.NNNNN``, four digits after the dot before 2015)
and the old one (``hep-th/9901001``, ``math.AG/0601001``).
"""

from __future__ import annotations

import html
import re

from digestd.parse.text import collapse

_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ID_RE = re.compile(
    rf"(?:arxiv:)?(?P<id>{_NEW_ID}|{_OLD_ID})(?:v(?P<version>\d{{1,4}}))?", re.IGNORECASE
)
# In a URL: arxiv.org/abs/<id>, /pdf/<id>(.pdf), export.arxiv.org, huggingface.co/papers/<id>
_URL_ID_RE = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|huggingface\.co/papers/)"
    rf"(?P<id>{_NEW_ID}|{_OLD_ID})(?:v(?P<version>\d{{1,4}}))?",
    re.IGNORECASE,
)
#: arXiv categories look like "cs.CL", "math.AG", "hep-th", "q-bio.NC", "eess.AS"
CATEGORY_RE = re.compile(r"[a-z][a-z\-]{1,15}(?:\.[A-Za-z][A-Za-z\-]{0,15})?", re.IGNORECASE)
_MAX_FIELD = 2000
_MAX_URL = 2000
_MAX_NAMES = 1000


def split_arxiv_id(text: str | None) -> tuple[str, int | None] | None:
    """``(versionless id, version or None)`` from an id, ``arXiv:`` id or arXiv/HF URL."""
    if not text or not isinstance(text, str) or len(text) > _MAX_URL:
        return None
    text = text.strip()
    match = _ID_RE.fullmatch(text) or _URL_ID_RE.search(text)
    if match is None:
        return None
    arxiv_id = match["id"]
    if "/" in arxiv_id:  # old scheme: the archive is lower case, the subject class upper
        archive, _, number = arxiv_id.partition("/")
        name, dot, subject = archive.partition(".")
        arxiv_id = f"{name.lower()}{dot}{subject.upper()}/{number}"
    version = int(match["version"]) if match["version"] else None
    return arxiv_id, version


def abs_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/abs/{arxiv_id}"


def pdf_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/pdf/{arxiv_id}"


def hf_url(arxiv_id: str) -> str:
    return f"https://huggingface.co/papers/{arxiv_id}"


def clean_text(value: object, *, limit: int | None = None) -> str:
    """A source's text field as plain text: entities decoded, tags dropped, spaces collapsed.

    Titles come with HTML entities (``&amp;``) and LaTeX (``$\\alpha$``); the LaTeX is kept
    as written (it is what the authors typed), markup around it is not.
    """
    if not isinstance(value, str):
        return ""
    text = html.unescape(value)
    if "<" in text:
        text = _TAG_RE.sub(" ", text)
    text = _CONTROL_RE.sub("", text)
    text = collapse(text)
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip()
    return text


_TAG_RE = re.compile(r"</?[A-Za-z][^<>]{0,500}>")
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def short_text(value: object) -> str | None:
    """A one-line field (name, organisation, summary): cleaned, bounded, None when empty."""
    text = clean_text(value, limit=_MAX_FIELD)
    return text or None


def names(values: object) -> tuple[str, ...]:
    """Unique non-empty cleaned names from a list of strings, in order."""
    if not isinstance(values, list | tuple):
        return ()
    seen: dict[str, None] = {}
    for value in values[:_MAX_NAMES]:
        name = short_text(value)
        if name:
            seen.setdefault(name, None)
    return tuple(seen)


def web_url(value: object) -> str | None:
    """An http(s) URL without spaces or markup characters, else None (no javascript: links)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if len(url) > _MAX_URL or not re.fullmatch(r"https?://[^\s<>\"'`\\]+", url, re.IGNORECASE):
        return None
    return url


def count(value: object) -> int | None:
    """A non-negative integer count, or None (strings, floats, booleans and negatives are not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 2**31:
        return None
    return value


def categories(values: object) -> tuple[str, ...]:
    """arXiv categories in order, unique, each looking like one ("cs.CL", "hep-th")."""
    if not isinstance(values, list | tuple):
        return ()
    seen: dict[str, None] = {}
    for value in values[:100]:
        if isinstance(value, str) and CATEGORY_RE.fullmatch(value.strip()):
            seen.setdefault(value.strip(), None)
    return tuple(seen)
