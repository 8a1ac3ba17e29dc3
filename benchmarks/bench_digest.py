"""Digest delivery throughput: thousands of subscribers to a local SMTP sink, next to bare smtplib.

    .venv/bin/python benchmarks/bench_digest.py [--subscribers 10000] [--database URL]

Ingests the sample dumps (444 papers) into a fresh SQLite database (or the PostgreSQL database
named by --database), adds subscribers who each follow one to three of the starter topics at
random (immediate cadence), then times:

- planning: one ledger row per subscriber (`plan_digests`);
- sending: `send_pending` over SMTP to an aiosmtpd sink on loopback, one reused connection —
  claim, render (premailer once per distinct body), personalise, send, record;
- a bare smtplib loop sending one pre-built message of the same size over one connection to the
  same sink: the ceiling the sink and smtplib allow;
- the render cost per message: a body rendered and inlined (a cache miss), and a cached body
  personalised and built into a MIME message (what every other subscriber costs).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import random
import smtplib
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import select

from digestd.config import Config, HttpConfig, MailConfig, PathsConfig, SmtpConfig
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.smtp import SmtpTransport
from digestd.digest import Composer
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.store.models import Subscriber, SubscriberTopic, Topic
from digestd.store.subscribers import TOKEN_LOOKUP_CHARS, new_token

SEEDS = Path(__file__).resolve().parents[1] / "samples" / "seeds"


class CountingSink:
    """Accepts everything and keeps only a count, so the sink costs as little as it can."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.count += 1
        self.bytes += len(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_subscribers(store: Store, count: int, seed: int = 1) -> None:
    """`count` subscribers on one to three random starter topics, added in bulk."""
    rng = random.Random(seed)
    with store.write() as session:
        topic_ids = list(session.scalars(select(Topic.id).where(Topic.active.is_(True))))
        now = dt.datetime.now(dt.UTC)
        for start in range(0, count, 1000):
            rows = []
            for number in range(start, min(start + 1000, count)):
                token = new_token()
                rows.append(
                    Subscriber(
                        email=f"reader{number}@example.org",
                        email_key=f"reader{number}@example.org",
                        name=f"Reader {number}",
                        cadence="immediate",
                        timezone="UTC",
                        token=token,
                        token_lookup=token[:TOKEN_LOOKUP_CHARS],
                        status="active",
                        since_batch_id=0,
                        bounce_count=0,
                        created_at=now,
                        updated_at=now,
                        confirmed_at=now,
                    )
                )
            session.add_all(rows)
            session.flush()
            session.add_all(
                SubscriberTopic(subscriber_id=row.id, topic_id=topic_id)
                for row in rows
                for topic_id in rng.sample(topic_ids, rng.randint(1, 3))
            )


def bare_smtplib(port: int, message: bytes, count: int) -> float:
    """Messages per second sending one pre-built message `count` times over one connection."""
    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    for _ in range(count):
        connection.sendmail("digestd@example.org", ["reader@example.org"], message)
    elapsed = time.perf_counter() - started
    connection.quit()
    return count / elapsed


def render_costs(runtime: Runtime, samples: int) -> tuple[float, float, int]:
    """(ms per body rendered and inlined, ms per cached message, HTML bytes of a body)."""
    store = runtime.store
    topic_names = {t.slug: t.name for t in store.topics()}
    subscribers = store.subscribers(status="active")[:samples]
    # They were sent their digests above: select as if they had not been.
    selections = [
        (s, store.due_papers(dataclasses.replace(s, since_batch_id=0))) for s in subscribers
    ]
    selections = [(s, sel) for s, sel in selections if sel]
    now = dt.datetime.now(dt.UTC)

    cold = []
    for subscriber, selected in selections[:40]:
        composer = Composer(runtime.config)  # an empty cache: every body is a miss
        started = time.perf_counter()
        composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)
        cold.append(time.perf_counter() - started)

    composer = Composer(runtime.config)
    for subscriber, selected in selections:
        composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)
    warm = []
    size = 0
    for subscriber, selected in selections:
        started = time.perf_counter()
        composed = composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)
        composed.message.as_bytes()
        warm.append(time.perf_counter() - started)
        size = max(size, len(composed.html.encode()))
    return statistics.median(cold) * 1000, statistics.median(warm) * 1000, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    sink = CountingSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(
            Config(),
            paths=PathsConfig(seeds_dir=Path(tmp) / "seeds", data_dir=Path(tmp) / "var"),
            http=HttpConfig(base_url="https://digest.example.org"),
            mail=MailConfig(transport="smtp", from_address="digestd <digestd@example.org>"),
            smtp=SmtpConfig(host="127.0.0.1", port=port, timeout=30),
        )
        url = args.database or f"sqlite:///{Path(tmp) / 'digestd.db'}"
        runtime = Runtime.open(config, store=Store.open(url))
        store = runtime.store
        ingest_paths(store, sorted(SEEDS.glob("*.txt")), classify=runtime.classify)
        started = time.perf_counter()
        add_subscribers(store, args.subscribers)
        print(f"setup: {store.count_papers()} papers, {args.subscribers} subscribers added "
              f"in {time.perf_counter() - started:.1f} s ({store.engine.dialect.name})")

        now = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        plan = plan_digests(runtime, now)
        plan_seconds = time.perf_counter() - started
        print(f"plan:  {plan.planned} digests planned in {plan_seconds:.1f} s "
              f"({plan.planned / plan_seconds:,.0f} subscribers/s)")

        transport = SmtpTransport(config.smtp)
        started = time.perf_counter()
        report = send_pending(runtime, now, transport=transport)
        send_seconds = time.perf_counter() - started
        transport.close()
        rate = report.sent / send_seconds
        average = sink.bytes / max(sink.count, 1)
        print(f"send:  {report.sent} messages in {send_seconds:.1f} s = {rate:,.0f} messages/s "
              f"over {transport.connections} connection(s); {report.renders} distinct bodies "
              f"inlined; average message {average / 1024:.0f} KiB")

        sample = b"x" * int(average)
        message = (
            b"From: digestd@example.org\r\nTo: reader@example.org\r\nSubject: bench\r\n\r\n"
            + b"\r\n".join(sample[i : i + 76] for i in range(0, len(sample), 76))
        )
        bare = bare_smtplib(port, message, min(2000, max(report.sent, 100)))
        print(f"bare:  {bare:,.0f} messages/s (smtplib, one pre-built {average / 1024:.0f} KiB "
              f"message, one connection, same sink)")

        cold_ms, warm_ms, size = render_costs(runtime, 500)
        print(f"render: {cold_ms:.1f} ms per distinct body (Jinja2 + premailer), "
              f"{warm_ms:.2f} ms per message from a cached body (personalise + MIME); "
              f"largest HTML part {size / 1024:.0f} KiB")
        runtime.close()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
