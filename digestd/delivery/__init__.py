"""Delivery: the ledger that sends each digest exactly once, and the transports it sends with.

    plan_digests(runtime, now)      rows for every subscriber who is due (see ledger.py)
    send_pending(runtime, now)      claim, send, settle; retries with backoff (see sender.py)
    make_transport(config)          the Maildir outbox (default) or SMTP

Only `digestd.delivery.smtp` imports smtplib.
"""

from __future__ import annotations

from digestd.delivery.ledger import PlannedDigest, PlanReport, plan_digests, preview_digest
from digestd.delivery.sender import PendingDigest, SendReport, TransportHealth, send_pending
from digestd.delivery.transport import Transport, make_transport

__all__ = [
    "PendingDigest",
    "PlanReport",
    "PlannedDigest",
    "SendReport",
    "Transport",
    "TransportHealth",
    "make_transport",
    "plan_digests",
    "preview_digest",
    "send_pending",
]
