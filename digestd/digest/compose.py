"""One subscriber's digest as a ready-to-send message: select, render (cached), personalise.

Pure apart from reading templates: the caller hands in the papers the store selected. One
`Composer` is meant to serve a whole sending run, so that its renderer's cache spans every
subscriber of the run.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from digestd import links
from digestd.config import Config
from digestd.digest.message import build_message, header_text, message_id, parse_from
from digestd.digest.render import HTML_BUDGET, Body, DigestRenderer, Personal, personal_for
from digestd.digest.select import Digest, GainLabel, build_digest
from digestd.digest.wire import Assembled, Envelope, WireBody, wire_body
from digestd.ranking.rising import gain_text
from digestd.store import PaperRecord, SelectedPaper, SubscriberRecord

if TYPE_CHECKING:
    from digestd.feedback import Personalisation


class Composed:
    """One subscriber's digest: the bytes to send, and (made when asked for) the parts and
    the `EmailMessage` they were assembled from, which flattens to the same bytes."""

    def __init__(
        self, digest: Digest, body: Body, personal: Personal, *, message_id: str,
        envelope_from: str | None, assembled: Assembled | None,
        build: Callable[[], EmailMessage],
    ):
        self.digest = digest
        self.message_id = message_id
        #: the envelope sender (MAIL FROM); None means the From address
        self.envelope_from = envelope_from
        #: the message as bytes, or None when only the email package makes it (see wire.py)
        self.assembled = assembled
        self._body = body
        self._personal = personal
        self._build = build

    @functools.cached_property
    def message(self) -> EmailMessage:
        return self._build()

    @functools.cached_property
    def _parts(self) -> tuple[str, str]:
        return self._body.personalise(self._personal)

    @property
    def html(self) -> str:
        return self._parts[0]

    @property
    def text(self) -> str:
        return self._parts[1]

    @property
    def outgoing(self) -> Assembled | EmailMessage:
        """What a transport takes: the assembled bytes when there are some."""
        return self.assembled if self.assembled is not None else self.message


#: (papers, topics, day) combinations remembered per composer
MEMO_SIZE = 1024
#: no body of more papers than this fits the budget (a paper takes 400 bytes at the very least)
MAX_FITTING = HTML_BUDGET // 400


def _fewer(limit: int, size: float) -> int:
    """Papers to try next when `limit` papers made `size` bytes: proportionally fewer."""
    return max(1, min(limit - 1, int(limit * HTML_BUDGET / size * 0.95)))


def gain_label(now: dt.datetime, timezone: str) -> GainLabel:
    """Each paper's "+12 since Tuesday", as a reader in `timezone` reads it at `now`."""

    def label(paper: PaperRecord) -> str:
        return gain_text(paper.upvote_gain, paper.first_upvotes_at, now, timezone)

    return label


def local_date(now: dt.datetime, timezone: str) -> dt.date:
    try:
        return now.astimezone(ZoneInfo(timezone)).date()
    except (ValueError, KeyError):  # an unknown zone: the subscriber still gets the digest
        return now.astimezone(dt.UTC).date()


class Composer:
    def __init__(self, config: Config, renderer: DigestRenderer | None = None):
        self.config = config
        self.renderer = renderer or DigestRenderer(
            config.templates_dir, config.base_url, feedback=config.feedback.enabled
        )
        self.domain = parse_from(config.mail.from_address).domain or "digestd.localhost"
        self._digests: dict[tuple[object, ...], tuple[Digest, Body]] = {}
        #: each body flattened once (keyed by the body's identity; the body is kept alive)
        self._wires: dict[int, tuple[Body, WireBody | None]] = {}
        self._selection_keys: dict[int, tuple[Sequence[SelectedPaper], tuple[object, ...]]] = {}
        mail = config.mail
        self._envelope = Envelope(
            mail.from_address, mail.list_id, mail.feedback_id,
            one_click=links.unsubscribe_url(config.base_url, "x").startswith("https://"),
        )

    def clear(self) -> None:
        """Forget every digest and body built so far (templates stay loaded)."""
        self._digests.clear()
        self._selection_keys.clear()
        self._wires.clear()
        self.renderer.clear()

    def _wire(self, body: Body) -> WireBody | None:
        held = self._wires.get(id(body))
        if held is not None and held[0] is body:
            return held[1]
        if len(self._wires) >= MEMO_SIZE:
            self._wires.clear()
        wire = wire_body(body, self._envelope, body._pattern)
        self._wires[id(body)] = (body, wire)
        return wire

    def digest(
        self,
        subscriber: SubscriberRecord,
        selected: Sequence[SelectedPaper],
        topic_names: Mapping[str, str],
        now: dt.datetime,
        ranking: Personalisation | None = None,
        rising: Sequence[tuple[SelectedPaper, str]] = (),
    ) -> tuple[Digest, Body]:
        """The digest and its body, with as many papers as fit the cap and the size budget.

        `ranking` is the reader's feedback model applied to these papers, if they have one;
        `rising` the papers of their rising section with their gains (see ranking.rising).
        """
        names = {slug: topic_names.get(slug, slug) for slug in subscriber.topics}
        date = local_date(now, subscriber.timezone)
        # Subscribers with the same papers, topics, day and ranking share the digest.
        memo_key = (
            self._papers_key(selected),
            tuple(names.items()),
            date,
            ranking.key if ranking is not None else None,
            # "+12 since Tuesday" is said in the reader's zone
            subscriber.timezone,
            tuple((item.paper.id, label) for item, label in rising),
        )
        memo = self._digests.get(memo_key)
        if memo is not None:
            return memo
        if len(self._digests) >= MEMO_SIZE:
            self._digests.clear()
        memo = self._digests[memo_key] = self._fit(
            selected, names, date, ranking, gain_label(now, subscriber.timezone), rising
        )
        return memo

    def _papers_key(self, selected: Sequence[SelectedPaper]) -> tuple[object, ...]:
        # a sending run hands the same selection object to every subscriber of a digest,
        # though not one after another: remembered by identity (the object kept alive)
        held = self._selection_keys.get(id(selected))
        if held is not None and held[0] is selected:
            return held[1]
        key = tuple((item.paper.id, item.paper.updated_at) for item in selected)
        if len(self._selection_keys) >= MEMO_SIZE:
            self._selection_keys.clear()
        self._selection_keys[id(selected)] = (selected, key)
        return key

    def _fit(
        self, selected: Sequence[SelectedPaper], names: dict[str, str], date: dt.date,
        ranking: Personalisation | None = None, gains: GainLabel | None = None,
        rising: Sequence[tuple[SelectedPaper, str]] = (),
    ) -> tuple[Digest, Body]:
        limit = fitted = min(self.config.delivery.max_papers, len(selected), MAX_FITTING)
        boost = None
        also_like: list[tuple[SelectedPaper, str]] = []
        if ranking is not None:
            boosts = ranking.boost
            boost = lambda item: boosts.get(item.paper.id, 0.0)  # noqa: E731
            also_like = [(a.item, a.close_to) for a in ranking.also_like]
        while True:
            digest = build_digest(
                selected, names, date=date, max_papers=limit, boost=boost,
                also_like=also_like if limit > 1 else (),
                # extras go first when the body must shrink
                gain_label=gains, rising=rising if limit == fitted or limit > 1 else (),
            )
            # One render tells the size: the template is inlined already, so the rendered HTML
            # is the HTML part.
            body = self.renderer.body(digest)
            size = len(body.html.encode())
            if size <= HTML_BUDGET or limit == 1:
                return digest, body
            limit = _fewer(limit, size)

    def compose(
        self,
        subscriber: SubscriberRecord,
        selected: Sequence[SelectedPaper],
        topic_names: Mapping[str, str],
        *,
        digest_key: str,
        now: dt.datetime,
        ranking: Personalisation | None = None,
        rising: Sequence[tuple[SelectedPaper, str]] = (),
    ) -> Composed:
        digest, body = self.digest(subscriber, selected, topic_names, now, ranking, rising)
        personal = personal_for(
            self.config.base_url, email=subscriber.email, name=subscriber.name,
            token=subscriber.token, digest_key=digest_key,
            feedback=self.config.feedback.enabled,
        )
        mail = self.config.mail
        envelope_from = (
            links.verp_address(mail.envelope_sender, subscriber.token)
            if mail.envelope_sender else None
        )
        identifier = message_id(
            subscriber.id, digest_key, subscriber.created_at.isoformat(), self.domain
        )
        # Advertised only when the mailbox it lands in is read (see delivery.intake).
        mailto = envelope_from or "" if self.config.reads_bounces else ""
        wire = self._wire(body)
        assembled = None
        if wire is not None:
            assembled = wire.assemble(
                personal, to_name=subscriber.name, to_email=subscriber.email,
                message_id=identifier, date=now, unsubscribe_mailto=mailto,
                token=subscriber.token,
            )

        def build() -> EmailMessage:
            html, text = body.personalise(personal)
            return build_message(
                subject=body.subject,
                text=text,
                html=html,
                from_address=mail.from_address,
                to_email=subscriber.email,
                to_name=subscriber.name,
                message_id=identifier,
                date=now,
                list_id=mail.list_id,
                unsubscribe_url=personal.unsubscribe_url,
                unsubscribe_mailto=mailto,
                feedback_id=mail.feedback_id,
                boundary=wire.boundary if wire is not None else None,
            )

        return Composed(
            digest, body, personal, message_id=header_text(identifier),
            envelope_from=envelope_from, assembled=assembled, build=build,
        )
