"""The Starlette app: every route in one list (`create_app`); the pages (index, papers,
topics), health. Feeds are served by `digestd.web.feeds` (with `digestd.web.http`'s
validators and gzip); subscribing and confirming, managing and unsubscribing live in
`digestd.web.subscription`, `digestd.web.manage` and `digestd.web.unsubscribe`.

Every unknown path, unknown paper, and invalid or revoked private token gets the same 404 page:
nothing tells a guesser how close a token came. The runtime lives on ``app.state.runtime``;
the daemon swaps it there on reload.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from sqlalchemy.exc import DBAPIError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from digestd import links
from digestd.errors import StoreError
from digestd.feeds import (
    abstract_segments,
    paper_links,
)
from digestd.metrics import Metrics
from digestd.pipeline import ensure_feeds
from digestd.ranking.rising import gain_text
from digestd.runtime import Runtime
from digestd.store import PaperMatch, PaperRecord, Store
from digestd.store.models import utcnow
from digestd.web import digest_view, feedback, icons, manage, ops, subscription, unsubscribe
from digestd.web.conditional import App, ConditionalFeeds
from digestd.web.feeds import (
    ARCHIVE_MAX_AGE,
    FeedFiles,
    all_archive,
    private_archive,
    private_feed,
    public_feed,
    topic_archive,
    topic_or_404,
)
from digestd.web.http import NegotiatedGZip, WeakEtagWhenCompressed
from digestd.web.middleware import PathPrefix, RequestAccounting
from digestd.web.render import render, runtime_of
from digestd.web.security import PRIVATE_PAGE_HEADERS, Csrf

log = logging.getLogger(__name__)

#: papers listed on the index page
INDEX_PAPERS = 30
#: papers per page of a topic's page
TOPIC_PAGE_PAPERS = 25
#: pages change with every batch; a short lifetime keeps proxies from serving stale ones long
PAGE_MAX_AGE = 60


# Pages -----------------------------------------------------------------------------------------


def _creator(paper: PaperRecord) -> str | None:
    named = " · ".join(part for part in (paper.authors_line, paper.organization) if part)
    if named:
        return named
    if paper.authors_count:
        return f"{paper.authors_count} author{'s' if paper.authors_count != 1 else ''}"
    return None


def _date(value: dt.date | None) -> str | None:
    return f"{value:%b} {value.day}, {value.year}" if value else None


def _paper_view(
    paper: PaperRecord, matches: Any, names: Mapping[str, str], *,
    now: dt.datetime | None = None, timezone: str | None = None,
) -> dict[str, Any]:
    return {
        "slug": paper.slug,
        "title": paper.title,
        "creator": _creator(paper),
        "published": _date(paper.published),
        "first_seen": _date(paper.first_seen_at.date()),
        "first_seen_iso": paper.first_seen_at.isoformat(timespec="seconds"),
        "upvotes": paper.upvotes,
        # "+12 since Tuesday", in the reader's zone when the page knows the reader
        "upvote_gain": gain_text(
            paper.upvote_gain, paper.first_upvotes_at, now or utcnow(), timezone
        ),
        "topics": [
            {"slug": m.slug, "name": names.get(m.slug, m.slug), "terms": list(m.terms)}
            for m in matches
        ],
    }


def newest(
    store: Store, slugs: tuple[str, ...] | None, offset: int, limit: int
) -> list[tuple[PaperRecord, list[PaperMatch]]]:
    """Papers newest arrival first (the feeds' order), each with the active topics it matched."""
    ids = store.feed_paper_ids(slugs, newest_first=True, offset=offset, limit=limit)
    papers = {p.id: p for p in store.papers(ids=ids)}
    matches = store.paper_matches(ids)
    return [(papers[i], matches[i]) for i in ids if i in papers]


def index(request: Request) -> Response:
    runtime = runtime_of(request)
    store = runtime.store
    topics = store.topics()
    counts = store.topic_paper_counts()
    recent = store.topic_paper_counts(
        since=utcnow() - dt.timedelta(days=subscription.RECENT_DAYS)
    )
    names = {t.slug: t.name for t in topics}
    papers = [_paper_view(p, m, names) for p, m in newest(store, None, 0, INDEX_PAPERS)]
    topic_views = [
        {"slug": t.slug, "name": t.name, "description": t.description,
         "papers": counts.get(t.slug, 0), "recent": recent.get(t.slug, 0)}
        for t in topics
    ]
    context = {
        "topics": topic_views, "papers": papers, "total": store.count_papers(),
        "recent_days": subscription.RECENT_DAYS,
        "rising_days": runtime.config.rising.window_days,
    }
    if not runtime.config.subscribe.enabled:
        return render(
            request, "index.html", context,
            headers={"Cache-Control": f"max-age={PAGE_MAX_AGE}"},
        )
    # With the sign-up form, the page holds this browser's CSRF token: not for shared caches.
    csrf = Csrf.of(request, subscription.cached_site_key(request))
    return subscription.page(
        request, "index.html", {**context, **subscription.signup_form(runtime)}, csrf
    )


async def paper_page(request: Request) -> Response:
    """A paper's public page. Reached with ``?reader=<token>`` (the links of a subscriber's
    digests and private feed), it also offers that reader "more/less like this": buttons
    posting to their rating URL, as the rating page does. Any other visitor, or a token that
    is not a subscriber's, gets the public page and no buttons."""
    runtime = runtime_of(request)
    token = request.query_params.get(links.READER_PARAM)
    csrf = Csrf.of(request, await subscription.site_key(request)) if token else None
    return await anyio.to_thread.run_sync(_paper_page, request, runtime, token, csrf)


def _paper_page(
    request: Request, runtime: Runtime, token: str | None, csrf: Csrf | None
) -> Response:
    store = runtime.store
    paper = store.paper_by_slug(request.path_params["slug"])
    if paper is None:
        raise HTTPException(404)
    reader = store.subscriber_by_token(token) if token else None
    if reader is not None and (
        reader.status in ("pending", "unsubscribed") or not runtime.config.feedback.enabled
    ):
        reader = None
    names = {t.slug: t.name for t in store.topics()}
    view = _paper_view(
        paper, store.paper_matches([paper.id])[paper.id], names,
        timezone=reader.timezone if reader else None,
    )
    view["abstract"] = abstract_segments(paper.abstract, paper.links)
    view["links"] = paper_links(paper)
    view["authors"] = list(paper.authors)
    view["arxiv_id"] = paper.arxiv_id
    view["arxiv_version"] = paper.arxiv_version
    view["categories"] = list(paper.categories)
    view["keywords"] = list(paper.keywords)
    view["ai_summary"] = paper.ai_summary
    view["github_stars"] = paper.github_stars
    view["comments"] = paper.comments
    if reader is not None and csrf is not None:
        current = {r.paper_id: r.value for r in store.ratings(reader.id)}
        actions = {
            rating: links.feedback_url("", reader.token, paper.slug, rating)
            for rating in ("up", "down")
        }
        context = {"paper": view, "rate": actions, "rated": current.get(paper.id, 0)}
        # the token is in this page's URL: never cached, never sent on as a referrer
        return subscription.page(
            request, "paper.html", context, csrf, headers=PRIVATE_PAGE_HEADERS
        )
    return render(
        request, "paper.html", {"paper": view, "rate": None},
        headers=(
            # a link that named a reader: not for shared caches, nor passed on as a referrer
            PRIVATE_PAGE_HEADERS if token else {"Cache-Control": f"max-age={PAGE_MAX_AGE}"}
        ),
    )


def topic_page(request: Request) -> Response:
    """A topic: what it is, its query, its feeds, its papers a page at a time, and sign-up."""
    runtime = runtime_of(request)
    store = runtime.store
    topic = topic_or_404(runtime, request.path_params["slug"])
    raw_page = request.query_params.get("page", "1")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 100_000:
        raise HTTPException(404)
    page = int(raw_page)
    total = store.feed_paper_count((topic.slug,))
    pages = max(1, -(-total // TOPIC_PAGE_PAPERS))
    if page > pages:
        raise HTTPException(404)
    names = {t.slug: t.name for t in store.topics()}
    offset = (page - 1) * TOPIC_PAGE_PAPERS
    papers = [_paper_view(p, m, names)
              for p, m in newest(store, (topic.slug,), offset, TOPIC_PAGE_PAPERS)]
    context = {
        "topic": {"slug": topic.slug, "name": topic.name, "description": topic.description,
                  "query": topic.query},
        "papers": papers, "total": total, "page": page, "pages": pages,
    }
    return render(request, "topic.html", context,
                  headers={"Cache-Control": f"max-age={PAGE_MAX_AGE}"})


def icon(request: Request) -> Response:
    return Response(icons.icon_png(), media_type="image/png",
                    headers={"Cache-Control": f"public, max-age={ARCHIVE_MAX_AGE}"})


def favicon(request: Request) -> Response:
    return Response(icons.favicon_ico(), media_type="image/x-icon",
                    headers={"Cache-Control": f"public, max-age={ARCHIVE_MAX_AGE}"})


async def not_found(request: Request, exc: Exception) -> Response:
    """The one 404 page, whatever was not found (a path, a paper, a token)."""
    return render(request, "404.html", status_code=404)


ERROR_PAGES = {
    400: ("Bad request", "The form could not be read. Please go back and try again."),
    410: ("This link has expired",
          "Confirmation links work for a limited time. Please sign up again: it only takes "
          "a minute."),
    413: ("Too much", "That was more than any form here sends. Please go back and shorten it."),
    415: ("Bad request", "Please send the form from this site's pages."),
}


async def error_page(request: Request, exc: Exception) -> Response:
    """A page for the other refusals (expired links, oversized forms), same look as the rest."""
    status = getattr(exc, "status_code", 400)
    title, message = ERROR_PAGES.get(status, ERROR_PAGES[400])
    return render(
        request, "message.html",
        {"title": title, "message": message, "signup": status == 410},
        status_code=status, headers={"Cache-Control": "no-store"},
    )


# The app ---------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # A fresh machine (or a new feeds directory) has nothing to serve until the next batch:
    # write the feeds before accepting requests. A failure is logged; pages still work.
    runtime: Runtime = app.state.runtime
    await anyio.to_thread.run_sync(ensure_feeds, runtime)
    yield


def create_app(
    runtime: Runtime,
    *,
    metrics: Metrics | None = None,
    daemon_health: Callable[[], tuple[str, str]] | None = None,
) -> Starlette:
    """The app for `runtime`. `metrics` collects request counts (the daemon passes its own,
    which also counts job failures); `daemon_health` gives (role, scheduler state) to /healthz.
    """
    sub, unsub = subscription, unsubscribe
    routes: list[BaseRoute] = [
        Route("/", index, name="index"),
        Route("/healthz", ops.healthz, name="healthz"),
        Route("/metrics", ops.metrics, name="metrics"),
        Route("/papers/{slug}", paper_page, name="paper"),
        Route("/topics/{slug}", topic_page, name="topic"),
        Route("/icon.png", icon, name="icon"),
        Route("/favicon.ico", favicon, name="favicon"),
        Route("/feeds/private/{name}", private_feed, name="private_feed"),
        Route("/feeds/private/{token}/archive/{page}", private_archive, name="private_archive"),
        Route("/feeds/archive/all/{page}", all_archive, name="all_archive"),
        Route("/feeds/archive/topics/{slug}/{page}", topic_archive, name="topic_archive"),
        Route("/feeds/{path:path}", public_feed, name="feed"),
        # self-service subscription (digestd.web.subscription, digestd.web.unsubscribe)
        Route("/subscribe", sub.subscribe_page, methods=["GET"], name="subscribe_page"),
        Route("/subscribe", sub.subscribe, methods=["POST"], name="subscribe"),
        Route("/confirm/{code}", sub.confirm_page, methods=["GET"], name="confirm_page"),
        Route("/confirm/{code}", sub.confirm, methods=["POST"], name="confirm"),
        Route("/manage/{token}", manage.manage_page, methods=["GET"], name="manage_page"),
        Route("/manage/{token}", manage.manage, methods=["POST"], name="manage"),
        Route("/feedback/{token}/{paper}/{rating}", feedback.rating_page, methods=["GET"],
              name="feedback_page"),
        Route("/feedback/{token}/{paper}/{rating}", feedback.rate, methods=["POST"],
              name="feedback"),
        Route("/unsubscribe/{token}", unsub.unsubscribe_page, methods=["GET"],
              name="unsubscribe_page"),
        Route("/unsubscribe/{token}", unsub.unsubscribe, methods=["POST"], name="unsubscribe"),
        Route("/digests/{token}/{key}", digest_view.digest_page, name="digest"),
    ]
    metrics_ = metrics or Metrics()
    app = App(
        routes=routes,
        middleware=[
            Middleware(
                PathPrefix, prefix=lambda: links.path_prefix(app.state.runtime.config.base_url)
            ),
            Middleware(
                RequestAccounting, metrics=metrics_,
                access_log_on=lambda: app.state.runtime.config.log.access_log,
            ),
            Middleware(WeakEtagWhenCompressed),
            Middleware(NegotiatedGZip, minimum_size=500),
        ],
        exception_handlers={
            404: not_found, **dict.fromkeys(ERROR_PAGES, error_page),
            StoreError: ops.database_unavailable, DBAPIError: ops.database_unavailable,
        },
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.feed_files = FeedFiles()
    app.conditional_feeds = ConditionalFeeds(app, metrics_)
    app.state.templates = {}
    app.state.site_keys = {}
    app.state.metrics = metrics_
    app.state.daemon_health = daemon_health
    app.state.outage_logged_at = -ops.OUTAGE_LOG_INTERVAL
    metrics_.watch_store(lambda: app.state.runtime.store)
    return app
