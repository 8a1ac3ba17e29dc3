"""What one digest shows: the subscriber's papers in one section per topic, fairly capped.

Pure: it takes the papers the store selected (ranked best first) and returns a `Digest`, the
one value the templates are rendered from. Two subscribers whose digests compare equal get
the same body, which is what lets the renderer inline CSS once per body.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from digestd.ranking.fair import Boost, plan_sections
from digestd.store import PaperMatch, PaperRecord, SelectedPaper

#: the slug of the "you might also like" section (not a topic slug: those have no "*")
ALSO_LIKE = "*also-like"
#: the slug of the "rising" section: papers of the reader's topics gaining upvotes
RISING = "*rising"

#: a title longer than this is cut (dumps are untrusted; one huge title must not blow the mail)
MAX_TITLE_CHARS = 300
#: the abstract is shortened to about this many words, cut on a word
ABSTRACT_WORDS = 60
#: ... and never more characters than this, whatever the words look like
ABSTRACT_CHARS = 480
#: code and project links shown per paper
MAX_LINKS = 3
MAX_LINK_CHARS = 300

# Control characters would end a header line or upset the HTML parser; they carry no meaning.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text: str) -> str:
    """One line of text: control characters gone, runs of whitespace made one space."""
    return " ".join(_CONTROL.sub(" ", text).split())


def truncate(text: str, limit: int) -> str:
    """`text` cut on a word to at most `limit` characters, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-") + "…"


def shorten(
    text: str, words: int = ABSTRACT_WORDS, limit: int = ABSTRACT_CHARS
) -> tuple[str, bool]:
    """The first `words` words of `text` (at most `limit` characters); and whether it was cut."""
    all_words = text.split()
    short = " ".join(all_words[:words])
    if len(short) > limit:
        short = truncate(short, limit).removesuffix("…")
    if short == " ".join(all_words):
        return short, False
    return short.rstrip(" ,;:-") + "…", True


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    label: str


def _links(urls: Sequence[str]) -> tuple[Link, ...]:
    links = []
    for url in urls:
        url = url.strip()
        parts = urlsplit(url)
        # Only plain web links: a javascript: or data: URL has no business in an e-mail.
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_LINK_CHARS:
            continue
        if _CONTROL.search(url) or any(c in url for c in ' "<>\\`'):
            continue
        label = (parts.netloc.removeprefix("www.") + parts.path).rstrip("/")
        links.append(Link(url, truncate(label, 60)))
        if len(links) == MAX_LINKS:
            break
    return tuple(links)


@dataclass(frozen=True, slots=True)
class DigestPaper:
    id: int
    slug: str
    title: str
    #: the abstract shortened to a readable length
    abstract: str
    abstract_cut: bool
    #: "NVIDIA", "9 authors" or ""
    byline: str
    published: dt.date | None
    upvotes: int | None
    links: tuple[Link, ...]
    #: names of the subscriber's other topics this paper is also in
    also_in: tuple[str, ...]
    #: the query terms that matched, for "why"
    terms: tuple[str, ...]
    #: verbatim pieces of the title and abstract to highlight
    highlights: tuple[str, ...]
    #: the arXiv id and the paper's arXiv pages: abstract, PDF, Hugging Face
    arxiv_id: str | None = None
    arxiv_links: tuple[Link, ...] = ()
    #: the source's own one-line summary (Hugging Face's AI summary), shown labelled as such
    ai_summary: str | None = None
    #: for a "you might also like" paper: the title of the liked paper it is closest to
    close_to: str = ""
    #: upvotes gained, with since when: "+12 since Tuesday" ("" when none)
    gain: str = ""


@dataclass(frozen=True, slots=True)
class TopicSection:
    slug: str
    name: str
    papers: tuple[DigestPaper, ...]
    #: due papers of this topic left out of the digest ("and 40 more on KV cache")
    more: int = 0
    #: those papers themselves, best first, when the digest was built `with_rest` (its web
    #: view); the e-mail only counts them
    rest: tuple[DigestPaper, ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything a digest body shows; nothing personal (links with tokens, names) is in it."""

    #: the day the digest is for, in the subscriber's time zone
    date: dt.date
    sections: tuple[TopicSection, ...]
    #: papers due in all; more than shown when the cap applied
    total: int
    #: names of every topic the subscriber follows, for "you get this because ..."
    topic_names: tuple[str, ...]

    @property
    def shown(self) -> int:
        """Due papers shown (the rising and "also like" sections are extras, not due)."""
        return sum(len(s.papers) for s in self.sections if not s.slug.startswith("*"))

    @property
    def more(self) -> int:
        return self.total - self.shown

    @property
    def papers(self) -> list[DigestPaper]:
        return [p for s in self.sections for p in s.papers]

    @property
    def best(self) -> DigestPaper:
        """The top-ranked paper (the one the subject names)."""
        return self.sections[0].papers[0]


_ARXIV_LABELS = {"abs": "abstract", "pdf": "PDF", "hf": "Hugging Face"}


def _arxiv_links(paper: PaperRecord) -> tuple[Link, ...]:
    pages = paper.page_links
    return tuple(
        Link(pages[kind], label)
        for kind, label in _ARXIV_LABELS.items()
        if kind in pages and _links([pages[kind]])
    )


def _byline(paper: PaperRecord) -> str:
    # Names when a source gave them, shortened to "A, B, C et al."; then the organisation.
    parts = [paper.authors_line or "", paper.organization or ""]
    named = " · ".join(truncate(clean(part), 120) for part in parts if part)
    if named:
        return named
    if paper.authors_count:
        return f"{paper.authors_count} author{'s' if paper.authors_count != 1 else ''}"
    return ""


#: a paper's upvote gain as the reader reads it ("+12 since Tuesday"; see ranking.rising)
GainLabel = Callable[[PaperRecord], str]


def _digest_paper(
    item: SelectedPaper, home: str, topic_names: Mapping[str, str], close_to: str = "",
    gain: str = "",
) -> DigestPaper:
    matches = tuple(m for m in item.matches if m.slug in topic_names)
    names = tuple(topic_names[m.slug] for m in matches)
    return _paper_view(item.paper, matches, names, home, close_to, gain)


@functools.lru_cache(maxsize=4096)
def _paper_view(
    paper: PaperRecord, matches: tuple[PaperMatch, ...], names: tuple[str, ...], home: str,
    close_to: str, gain: str,
) -> DigestPaper:
    """A paper as a digest shows it, made once per run for each way it is shown (the same
    paper is in many digests; the value, not only its text, is then shared, which makes the
    renderer's look-ups by value cheap)."""
    highlights: dict[str, None] = {}
    terms: dict[str, None] = {}
    for match in matches:
        highlights.update(dict.fromkeys(match.highlights))
        terms.update(dict.fromkeys(match.terms))
    abstract, cut = shorten(clean(paper.abstract))
    return DigestPaper(
        id=paper.id,
        slug=paper.slug,
        title=truncate(clean(paper.title), MAX_TITLE_CHARS),
        abstract=abstract,
        abstract_cut=cut,
        byline=_byline(paper),
        published=paper.published,
        upvotes=paper.upvotes,
        # the repository and project page a source named come first, then the abstract's links
        links=_links([u for u in (paper.github_repo, paper.project_page) if u] + list(
            u for u in paper.links if u not in (paper.github_repo, paper.project_page)
        )),
        arxiv_id=paper.arxiv_id,
        arxiv_links=_arxiv_links(paper),
        ai_summary=truncate(clean(paper.ai_summary), 300) if paper.ai_summary else None,
        also_in=tuple(name for m, name in zip(matches, names, strict=True) if m.slug != home),
        terms=tuple(clean(t) for t in terms),
        highlights=tuple(h for h in (clean(h) for h in highlights) if h),
        close_to=truncate(clean(close_to), MAX_TITLE_CHARS) if close_to else "",
        gain=gain,
    )


def build_digest(
    selected: Sequence[SelectedPaper],
    topic_names: Mapping[str, str],
    *,
    date: dt.date,
    max_papers: int,
    boost: Boost | None = None,
    also_like: Sequence[tuple[SelectedPaper, str]] = (),
    gain_label: GainLabel | None = None,
    rising: Sequence[tuple[SelectedPaper, str]] = (),
    with_rest: bool = False,
) -> Digest:
    """One section per topic, each topic given its fair share of `max_papers` slots.

    `topic_names` maps the subscriber's topic slugs to display names, in the order they
    are listed in the configuration. How slots are shared and papers ordered is
    digestd.ranking.fair's job: a paper in several topics appears once, in the section of the
    topic that took it, and names the others; the first section holds the paper the subject
    line names. `boost` is an optional per-paper adjustment (a reader's feedback model);
    `also_like` are (paper, title of the liked paper it is close to) pairs from outside the
    reader's topics, shown last in a section of their own, beyond `max_papers`.
    `gain_label` says each paper's upvote gain; `rising` are (paper, its gain over the rising
    window) pairs of the reader's topics, not due in this digest, shown after the topics.
    `with_rest` also keeps each section's left-out papers (see `TopicSection.rest`).
    """
    if not selected:
        raise ValueError("a digest needs at least one paper")
    plan = plan_sections(selected, list(topic_names), max_papers, boost=boost)
    if not plan:
        raise ValueError("a digest needs at least one paper in the subscriber's topics")
    def gain(item: SelectedPaper) -> str:
        return gain_label(item.paper) if gain_label is not None else ""

    sections = [
        TopicSection(
            section.slug,
            topic_names.get(section.slug, "Other papers"),
            tuple(
                _digest_paper(item, section.slug, topic_names, gain=gain(item))
                for item in section.papers
            ),
            section.more,
            tuple(
                _digest_paper(item, section.slug, topic_names, gain=gain(item))
                for item in section.rest
            ) if with_rest else (),
        )
        for section in plan
    ]
    if rising:
        sections.append(
            TopicSection(
                RISING, "Rising on your topics",
                tuple(
                    _digest_paper(item, RISING, topic_names, gain=label)
                    for item, label in rising
                ),
            )
        )
    if also_like:
        sections.append(
            TopicSection(
                ALSO_LIKE, "You might also like",
                tuple(
                    _digest_paper(item, ALSO_LIKE, topic_names, close_to, gain(item))
                    for item, close_to in also_like
                ),
            )
        )
    return Digest(
        date=date,
        sections=tuple(sections),
        total=len(selected),
        topic_names=tuple(topic_names.values()),
    )
