"""Planning digests into the ledger, and previewing them.

Planning (`plan_digests`) looks at every active subscriber. One whose cadence slot has come
(immediate subscribers: always) and who has papers waiting gets a delivery row; the row and
the subscriber's advance past those papers are written in one transaction, so a digest is
planned once even when several processes plan at the same moment. A subscriber due with
nothing waiting gets no e-mail; the slot is recorded as handled.

Sending the planned rows is sender.py's job.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from digestd.cadence import due_slot
from digestd.delivery.papers import PaperCache
from digestd.delivery.ranking import Ranker
from digestd.delivery.rising import RisingPicker
from digestd.digest import Composed, Composer
from digestd.errors import StoreError
from digestd.runtime import Runtime
from digestd.store import SubscriberRecord
from digestd.store.plan_rows import PlannedRow

log = logging.getLogger(__name__)

#: digests planned per transaction
PLAN_CHUNK = 1000


@dataclass(frozen=True)
class PlannedDigest:
    subscriber_id: int
    email: str
    digest_key: str
    papers: int


@dataclass
class PlanReport:
    #: active subscribers looked at
    checked: int = 0
    #: delivery rows created (or, in a dry run, that would be)
    planned: int = 0
    #: due, but no new paper matches their topics: no e-mail, slot recorded
    nothing_new: int = 0
    #: planned by another process in the meantime
    raced: int = 0
    errors: int = 0
    digests: list[PlannedDigest] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"planned={self.planned} nothing_new={self.nothing_new} checked={self.checked} "
            f"raced={self.raced} errors={self.errors}"
        )


# Planning ------------------------------------------------------------------------------------


def plan_digests(runtime: Runtime, now: dt.datetime, *, dry_run: bool = False) -> PlanReport:
    """Create a delivery row for every active subscriber who is due and has papers waiting.

    With `dry_run` nothing is written; the report lists what would be planned.
    """
    store, config = runtime.store, runtime.config
    report = PlanReport()
    latest = store.latest_batch_id()
    # Subscribers who follow the same topics since the same batch wait for the same papers;
    # with thousands of subscribers and a few hundred distinct selections, asking the database
    # once per selection instead of once per subscriber is most of the planning time.
    selections: dict[tuple[int, frozenset[str]], list[int]] = {}
    # Rows are written a chunk at a time, each chunk in one transaction (the rows and the
    # subscribers' advance together, as for one subscriber); slots handled with nothing to
    # send are recorded the same way.
    pending: list[tuple[PlannedRow, PlannedDigest]] = []
    handled: list[tuple[int, dt.datetime]] = []

    def flush() -> None:
        planned = store.plan_deliveries([row for row, _ in pending], now=now)
        for row, digest in pending:
            delivery_id = planned.get(row.subscriber_id)
            if delivery_id is None:
                report.raced += 1
                continue
            log.info(
                "digest planned subscriber=%d delivery=%d digest=%s papers=%d",
                row.subscriber_id, delivery_id, digest.digest_key, digest.papers,
            )
            report.planned += 1
            report.digests.append(digest)
        pending.clear()
        store.mark_slots_handled(handled)
        handled.clear()

    for subscriber in store.plan_subscribers():
        report.checked += 1
        try:
            due, slot = due_slot(
                subscriber.cadence, subscriber.timezone,
                subscriber.last_slot_at or subscriber.created_at, now, config.schedule,
            )
            if not due:
                continue
            selection_key = (subscriber.since_batch_id, frozenset(subscriber.topics))
            selected = selections.get(selection_key)
            if selected is None:
                selected = store.due_paper_ids(
                    subscriber.topics, since_batch=subscriber.since_batch_id,
                    through_batch=latest,
                )
                selections[selection_key] = selected
            if not selected:
                report.nothing_new += 1
                if slot is not None and not dry_run:
                    handled.append((subscriber.id, slot))
                continue
            planned = PlannedDigest(
                subscriber.id, subscriber.email, f"{subscriber.since_batch_id}-{latest}",
                len(selected),
            )
            if dry_run:
                report.planned += 1
                report.digests.append(planned)
                continue
            row = PlannedRow(subscriber.id, subscriber.since_batch_id, latest, selected, slot)
            pending.append((row, planned))
            if len(pending) >= PLAN_CHUNK:
                flush()
        except StoreError:
            raise  # the database is away: every other subscriber would fail the same way
        except Exception:
            # One subscriber's bad data (say, a time zone that no longer exists) must not
            # keep digests from everybody else.
            log.exception("digest planning failed subscriber=%d", subscriber.id)
            report.errors += 1
    if not dry_run:
        flush()
        if report.planned >= PLAN_CHUNK:
            store.refresh_ledger_statistics()
    return report


# Preview -------------------------------------------------------------------------------------


def preview_digest(
    runtime: Runtime, subscriber: SubscriberRecord, now: dt.datetime
) -> Composed | None:
    """The digest `subscriber` would get now, without touching the ledger; None if nothing.

    A planned but unsent digest is shown as it will go out; otherwise the papers waiting for
    the subscriber's next digest, whether or not its time has come.
    """
    store = runtime.store
    composer = Composer(runtime.config)
    topic_names = {t.slug: t.name for t in store.topics(include_inactive=True)}
    waiting = [
        d for d in store.deliveries(subscriber_id=subscriber.id)
        if d.status in ("pending", "sending")
    ]
    if waiting:
        delivery = waiting[0]
        selected = PaperCache(store).selected(delivery.paper_ids, subscriber.topics)
        key = delivery.digest_key
        since, through = delivery.since_batch_id, delivery.through_batch_id
    else:
        latest = store.latest_batch_id()
        selected = store.due_papers(subscriber, through_batch=latest)
        key = f"{subscriber.since_batch_id}-{latest}"
        since, through = subscriber.since_batch_id, latest
    if not selected:
        return None
    ranking = Ranker(runtime).ranking(subscriber, selected, since, through)
    rising = RisingPicker(runtime).pick(subscriber, selected, now)
    return composer.compose(
        subscriber, selected, topic_names, digest_key=key, now=now, ranking=ranking,
        rising=rising,
    )

