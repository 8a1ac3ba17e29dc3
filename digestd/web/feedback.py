""""More like this" / "less like this": the pages behind the links in digests.

Scanner-safe: mail scanners and link previews follow every link in a message, so a GET only
shows the paper and a button; only the button's POST, to the reader's private token and with
the site's CSRF field, records the rating. The POST lands on the manage page, which lists the
reader's ratings, each with an undo button posting "clear" the same way.

    /feedback/<token>/<paper>/up|down|clear      <paper>: the paper's id or its page slug
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digestd import links
from digestd.digest.select import clean, shorten
from digestd.runtime import Runtime
from digestd.store import PaperRecord, SubscriberRecord
from digestd.web.render import runtime_of
from digestd.web.security import CSRF_FIELD, PRIVATE_PAGE_HEADERS, Csrf
from digestd.web.subscription import page, read_form, site_key

RATINGS = {"up": 1, "down": -1, "clear": 0}
DONE = {1: "rated-up", -1: "rated-down", 0: "rating-cleared"}


def feedback_service(runtime: Runtime):  # type: ignore[no-untyped-def]
    """The app's one Feedback (its TF-IDF cache serves every request)."""
    from digestd.feedback import Feedback

    found = getattr(runtime, "_feedback", None)
    if found is None or found.store is not runtime.store:
        found = Feedback(runtime.store, runtime.config.feedback)
        runtime._feedback = found  # type: ignore[attr-defined]
    return found


def _target(request: Request, runtime: Runtime) -> tuple[SubscriberRecord, PaperRecord, int]:
    """The reader (by their token), the paper and the rating a URL names; 404 otherwise."""
    params = request.path_params
    rating = RATINGS.get(params["rating"])
    subscriber = runtime.store.subscriber_by_token(params["token"])
    if rating is None or subscriber is None or subscriber.status == "pending":
        raise HTTPException(404)
    paper = _paper(runtime, params["paper"])
    if paper is None:
        raise HTTPException(404)
    return subscriber, paper, rating


def _paper(runtime: Runtime, name: str) -> PaperRecord | None:
    if name.isdigit():
        found = runtime.store.papers_by_ids([int(name)])
        if found:
            return found[0]
    return runtime.store.paper_by_slug(name)


async def rating_page(request: Request) -> Response:
    runtime = runtime_of(request)
    csrf = Csrf.of(request, await site_key(request))

    def show() -> Response:
        subscriber, paper, rating = _target(request, runtime)
        abstract, _ = shorten(clean(paper.abstract), words=80)
        current = {r.paper_id: r.value for r in runtime.store.ratings(subscriber.id)}
        context = {
            "paper": paper, "abstract": abstract, "rating": rating,
            "current": current.get(paper.id, 0), "action": request.url.path,
            "paper_url": links.paper_url(runtime.config.base_url, paper.slug),
            "manage_url": links.manage_url(runtime.config.base_url, subscriber.token),
        }
        return page(request, "feedback.html", context, csrf, headers=PRIVATE_PAGE_HEADERS)

    return await run_in_threadpool(show)


async def rate(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await read_form(request)
    csrf = Csrf.of(request, await site_key(request))

    def apply() -> Response:
        subscriber, paper, rating = _target(request, runtime)
        if not csrf.valid(str(form.get(CSRF_FIELD, "")), request.url.path):
            raise HTTPException(403)
        feedback_service(runtime).rate(subscriber.id, paper.id, rating)
        manage = links.manage_url(runtime.config.base_url, subscriber.token)
        return RedirectResponse(f"{manage}?done={DONE[rating]}#ratings", status_code=303)

    return await run_in_threadpool(apply)
