"""Every kind of mail digestd sends, built the way the daemon builds it, for content checks.

A runtime on SQLite with the starter topics and the sample dumps: a reader of every topic has
the large digest (338 papers due), a reader of one narrow topic the small one. The sign-up
mails (confirmation, "you already subscribe") come from the web's own builders.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
from email.message import EmailMessage
from pathlib import Path

from digestd import links
from digestd.config import Config, HttpConfig, MailConfig, PathsConfig
from digestd.delivery import preview_digest
from digestd.digest.message import POLICY
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.subscribers import add_subscriber
from digestd.topics import STARTER_TOPICS
from digestd.web.mail import build_notice

REPO = Path(__file__).resolve().parents[1]
SEEDS = sorted((REPO / "samples" / "seeds").glob("*.txt"))
BASE_URL = "https://papers.example.org"
NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)


def mail_config(tmp_path: Path) -> Config:
    return dataclasses.replace(
        Config(),
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(base_url=BASE_URL),
        mail=MailConfig(
            transport="maildir",
            from_address="Paper digests <digests@papers.example.org>",
            list_id="digest.papers.example.org",
        ),
    )


def seeded_runtime(tmp_path: Path) -> Runtime:
    """The runtime with Ada (every topic) and Bob (one topic) subscribed before the dumps."""
    config = mail_config(tmp_path)
    runtime = Runtime.open(config)
    add_subscriber(
        runtime.store, "ada@example.org", [t.slug for t in STARTER_TOPICS], name="Ada Lovelace",
        cadence="daily",
    )
    add_subscriber(
        runtime.store, "bob@example.org", ["speculative-decoding"], name="Bob", cadence="daily"
    )
    report = ingest_paths(runtime.store, SEEDS, classify=runtime.classify)
    assert all(d.status == "ingested" for d in report.dumps)
    return runtime


def every_kind(runtime: Runtime) -> dict[str, EmailMessage]:
    """{kind: message} for the large and small digests and both sign-up mails."""
    config = runtime.config
    large = runtime.store.subscriber("ada@example.org")
    small = runtime.store.subscriber("bob@example.org")
    assert large is not None and small is not None
    kinds: dict[str, EmailMessage] = {}
    for kind, subscriber in (("digest-large", large), ("digest-small", small)):
        composed = preview_digest(runtime, subscriber, NOW)
        assert composed is not None and composed.assembled is not None, kind
        # the bytes a transport sends (joined from the pre-serialised body), read back
        kinds[kind] = email.message_from_bytes(composed.assembled.data, policy=POLICY)  # type: ignore[assignment]
    kinds["confirmation"] = build_notice(
        config, "confirm", subject="Confirm your subscription",
        to_email="cy@example.org", to_name="", now=NOW,
        context={
            "confirm_url": links.confirm_url(BASE_URL, "x" * 120),
            "topics": ["KV cache", "Agents"], "cadence": "daily",
            "expires": f"{NOW + dt.timedelta(hours=48):%Y-%m-%d %H:%M} UTC",
        },
    )
    kinds["already-subscribed"] = build_notice(
        config, "known", subject="You already get these digests",
        to_email=large.email, to_name=large.name, now=NOW,
        context={"manage_url": links.manage_url(BASE_URL, large.token)},
    )
    return kinds
