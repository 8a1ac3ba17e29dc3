"""The private web view of one digest: every paper it holds, by topic, a page at a time.

``GET /digests/<token>/<digest key>`` — the e-mail shows at most ``delivery.max_papers``
papers and links here for the rest ("… and N more on the web", and "View in browser" in the
footer). Each section is the e-mail's (the same fair shares, the reader's feedback model as
it is now) followed by the papers the e-mail only counted ("… and 40 more on KV cache"), so
that link, ``?topic=<slug>#topic-<slug>``, opens this page narrowed to that one section, with
every paper of it. The subscriber comes from the token through the store's token lookup, and
the digest is looked up among that subscriber's own deliveries only, so a token opens its
owner's digests and nobody else's; an unknown token or key is the app's 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from digestd import links
from digestd.delivery.ranking import Ranker
from digestd.digest.compose import gain_label
from digestd.digest.select import Digest, DigestPaper, build_digest
from digestd.runtime import Runtime
from digestd.store import SelectedPaper, SubscriberRecord
from digestd.store.models import utcnow
from digestd.web.render import render, runtime_of
from digestd.web.security import PRIVATE_PAGE_HEADERS

#: papers on one page
PAGE_SIZE = 100


@dataclass(frozen=True)
class Section:
    name: str
    papers: list[DigestPaper]
    #: the topic's slug: the section's anchor ("topic-<slug>")
    slug: str = ""


def _selected(
    runtime: Runtime, paper_ids: tuple[int, ...], topics: tuple[str, ...]
) -> list[SelectedPaper]:
    store = runtime.store
    found = {p.id: p for p in store.papers_by_ids(list(paper_ids))}
    matches = store.paper_matches(found)
    wanted = set(topics)
    return [
        SelectedPaper(found[i], tuple(m for m in matches.get(i, ()) if m.slug in wanted))
        for i in paper_ids if i in found
    ]


def _digest(request: Request) -> tuple[SubscriberRecord, Digest]:
    runtime = runtime_of(request)
    store = runtime.store
    subscriber = store.subscriber_by_token(request.path_params["token"])
    if subscriber is None:
        raise HTTPException(404)
    key = request.path_params["key"]
    delivery = next(
        (d for d in store.deliveries(subscriber_id=subscriber.id) if d.digest_key == key), None
    )
    if delivery is None:
        raise HTTPException(404)
    selected = _selected(runtime, delivery.paper_ids, subscriber.topics)
    if not selected:
        raise HTTPException(404)  # its papers are no longer stored
    names = {t.slug: t.name for t in store.topics(include_inactive=True)}
    topic_names = {slug: names.get(slug, slug) for slug in subscriber.topics}
    # Built as the e-mail was, so its sections hold the e-mail's papers, then their rest.
    ranking = Ranker(runtime).ranking(
        subscriber, selected, delivery.since_batch_id, delivery.through_batch_id
    )
    boosts = ranking.boost if ranking is not None else {}
    digest = build_digest(
        selected, topic_names, date=delivery.created_at.date(),
        max_papers=runtime.config.delivery.max_papers,
        boost=(lambda item: boosts.get(item.paper.id, 0.0)) if boosts else None,
        gain_label=gain_label(utcnow(), subscriber.timezone), with_rest=True,
    )
    return subscriber, digest


def _page_number(request: Request, pages: int) -> int:
    raw = request.query_params.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= pages:
        raise HTTPException(404)
    return int(raw)


async def digest_page(request: Request) -> Response:
    subscriber, digest = await run_in_threadpool(_digest, request)
    topic = request.query_params.get("topic")
    chosen = [s for s in digest.sections if topic is None or s.slug == topic]
    if not chosen:
        raise HTTPException(404)
    rows = [(section, paper) for section in chosen for paper in section.papers + section.rest]
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    number = _page_number(request, pages)
    sections: list[Section] = []
    for section, paper in rows[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]:
        if not sections or sections[-1].slug != section.slug:
            sections.append(Section(section.name, [], section.slug))
        sections[-1].papers.append(paper)
    token = request.path_params["token"]
    feedback = runtime_of(request).config.feedback.enabled
    return render(
        request, "digest.html",
        {
            "digest": digest,
            "papers": len(rows),
            "sections": sections,
            "page": number,
            "pages": pages,
            "first": (number - 1) * PAGE_SIZE + 1,
            "last": min(number * PAGE_SIZE, len(rows)),
            "manage_path": links.manage_url(
                links.path_prefix(runtime_of(request).config.base_url),
                request.path_params["token"],
            ),
            "email": subscriber.email,
            "topic": chosen[0] if topic is not None else None,
            "whole_path": request.url.path,
            # links to paper pages offer this reader the rating buttons there
            "reader": token if feedback else None,
        },
        headers=PRIVATE_PAGE_HEADERS,
    )
