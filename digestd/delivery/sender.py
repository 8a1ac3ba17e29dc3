"""Sending the queue: claim due deliveries, take each in hand, send it, settle the outcome.

`send_pending` runs one `Worker` (worker.py) per connection; each claims rows in small
batches (see store/claims.py for claims and leases), renders and sends outside any
transaction, then records what the transport said:

- accepted → ``sent`` (and the subscriber's bounce count back to 0);
- a temporary reply about the recipient (a 4xx to RCPT TO or DATA: greylisting, a full
  mailbox) → one attempt more, ``pending`` again after ``retry_backoff * 2**(attempts-1)``
  seconds (at most an hour), ``failed`` after ``delivery.max_attempts`` such replies; the run
  goes on with the other recipients;
- a permanent reply about the recipient → ``failed`` at once and one bounce for the
  subscriber (`record_bounce`), who is paused after ``delivery.pause_after_failures`` in a row;
- the transport is the problem (`TransportError`: cannot connect, dropped, timed out, TLS or
  login failure, 421, or a permanent refusal of digestd itself; or the same permanent reply to
  ``SAME_REFUSAL_LIMIT`` recipients in a row) → the run stops, the message in hand and the
  rest of the claim go back to ``pending`` untouched (no attempt, no bounce), and the
  transport is left alone for a backoff that doubles while it stays down (`TransportHealth`).

Nothing fails for being queued during an outage: a row that was never handed over expires
only after ``delivery.max_queue_hours`` (status ``expired``; `digestd deliveries retry
--expired` queues it again).

**The duplicate window.** A row is recorded as sent only after the server accepted the
message. If the process dies (or the database cannot be reached) between that acceptance and
the ledger's commit, the row stays ``sending``; once its send lease ends another run sends
the same digest again, with the same Message-ID, so most mail clients show it once. The
README gives the measured rate per crash.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from digestd.delivery.papers import PaperCache
from digestd.delivery.report import (
    MAX_TRANSPORT_BACKOFF,
    PendingDigest,
    SendReport,
    TransportHealth,
)
from digestd.delivery.transport import Transport, make_transport
from digestd.delivery.worker import (
    CLAIM_BATCH,
    CLAIM_LEASE,
    SAME_REFUSAL_LIMIT,
    Shared,
    Worker,
    send_lease,
)
from digestd.digest import Composer
from digestd.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = [
    "CLAIM_BATCH",
    "CLAIM_LEASE",
    "MAX_TRANSPORT_BACKOFF",
    "SAME_REFUSAL_LIMIT",
    "PendingDigest",
    "SendReport",
    "TransportHealth",
    "send_lease",
    "send_pending",
]


def send_pending(
    runtime: Runtime,
    now: dt.datetime,
    *,
    transport: Transport | None = None,
    dry_run: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    health: TransportHealth | None = None,
) -> SendReport:
    """Claim the deliveries that are due (new, or retries whose time has come) and send them.

    Only active subscribers are sent to; rows of unconfirmed, paused or unsubscribed ones are
    settled as failed. `transport` defaults to the configured one (closed at the end). With
    `dry_run` nothing is claimed, rendered or sent; the report lists what would be sent.
    `should_stop` is asked before each message: a daemon being stopped sends no more and
    gives the rest of its claim back at once, so no one waits for a lease to run out.
    `health` carries the transport's state from one run to the next (the daemon keeps one);
    while it is down nothing is claimed.
    """
    store = runtime.store
    report = SendReport()
    if dry_run:
        for delivery in store.claimable_deliveries(now):
            subscriber = store.subscriber_by_id(delivery.subscriber_id)
            if subscriber is not None and subscriber.status == "active":
                report.pending.append(
                    PendingDigest(
                        delivery.id, subscriber.email, delivery.digest_key,
                        len(delivery.paper_ids), delivery.attempts,
                    )
                )
        return report

    health = health if health is not None else TransportHealth()
    max_age = dt.timedelta(hours=runtime.config.delivery.max_queue_hours)
    report.expired = store.expire_deliveries(now, max_age=max_age)
    if report.expired:
        log.warning(
            "deliveries expired count=%d: queued longer than delivery.max_queue_hours=%g "
            "(digestd deliveries retry --expired queues them again)",
            report.expired, runtime.config.delivery.max_queue_hours,
        )
    if health.is_down(now):
        report.transport_down = health.last_error
        return report

    owned = transport is None
    workers = runtime.config.smtp.connections if owned and _is_smtp(runtime) else 1
    transports = (
        [transport] if transport is not None
        else [make_transport(runtime.config) for _ in range(workers)]
    )
    _share_pace(transports)
    composer = Composer(runtime.config)
    started = time.monotonic()

    def clock() -> dt.datetime:
        # `now` moved on by the time spent, so long runs take fresh leases and backoffs.
        return now + dt.timedelta(seconds=time.monotonic() - started)

    def stop() -> bool:
        # one worker finding the transport down stops the others' claiming too
        return should_stop() or health.is_down(clock())

    shared = Shared(composer, PaperCache(runtime.store))
    senders = [
        Worker(runtime, each, shared, clock, SendReport(), stop, health)
        for each in transports
    ]
    try:
        if len(senders) == 1:
            senders[0].run()
        else:
            _run_side_by_side(senders)
    finally:
        for sender in senders:
            report.merge(sender.report)
        report.renders = composer.renderer.renders
        if owned:
            for each in transports:
                each.close()
    if report.sent or report.failed or report.retrying or report.deferred:
        log.info("digests sent %s", report)
    return report


def _is_smtp(runtime: Runtime) -> bool:
    return runtime.config.mail.transport == "smtp"


def _share_pace(transports: list[Transport]) -> None:
    """One rate limit for all of a run's connections."""
    pacers = [t.pacer for t in transports if hasattr(t, "pacer")]
    for each in transports[1:]:
        if hasattr(each, "pacer") and pacers:
            each.pacer = pacers[0]


def _run_side_by_side(senders: list[Worker]) -> None:
    """Each sender on its own connection in its own thread; the first error is raised."""
    errors: list[BaseException] = []

    def work(sender: Worker) -> None:
        try:
            sender.run()
        except BaseException as exc:  # re-raised in the calling thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(sender,), name=f"smtp-{number}", daemon=True)
        for number, sender in enumerate(senders, 1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
