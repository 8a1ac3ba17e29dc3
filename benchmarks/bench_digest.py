"""Digest delivery throughput: thousands of subscribers to a local SMTP sink, next to bare smtplib.

    .venv/bin/python benchmarks/bench_digest.py [--subscribers 10000] [--database URL]

Ingests the sample dumps (444 papers) into a fresh SQLite database (or the PostgreSQL database
named by --database), adds subscribers who each follow one to three of the starter topics at
random (immediate cadence), then times:

- planning: one ledger row per subscriber (`plan_digests`);
- sending: `send_pending` over SMTP to an aiosmtpd sink on loopback, one reused connection —
  claim, render (once per distinct body), personalise, send, record;
- a bare smtplib loop sending one pre-built message of the same size over one connection to the
  same sink: the ceiling the sink and smtplib allow;
- the render cost per message, warm (templates loaded, the process past its first bodies): a
  distinct body rendered (a cache miss), and a message assembled from a cached body (what every
  other subscriber costs), next to the same message built and flattened by the email package.

What "a distinct body" costs: for a subscriber whose digest is not among the cached bodies,
the digest built (plan_sections and the DigestPaper values), both templates rendered and the
body quoted-printable encoded for assembling (`Composer.digest`, then `wire_body`); printed
next to it, what that body's first message then costs (`compose`: its assembly, which makes
the body's template for the subscribers' token shape, see wire.py). What stays cached, as in
a real run once its first bodies are made: the templates (premailer inlined once), each
paper's DigestPaper value, each paper's fragment of both templates (the ``paper`` block) with
its quoted-printable bytes, and the memos of wrap, highlight, matched and the Subject line.
The 500 sampled subscribers' digests are all composed once before the measurement, so every
paper fragment they show is warm. The "run" figure says what those caches save: the same
subscribers composed from empty caches (templates still loaded), the CPU of making each new
body divided by the bodies made, so each fragment is paid once, by the first body showing it.

The sink runs in a process of its own (`sink.py`), so it does not compete for the GIL with what
is measured. Figures are wall time and CPU time of this process; send and bare are compared in
messages per CPU-second of the sending process, which the shared machine disturbs least.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import smtplib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from digestd.config import Config, HttpConfig, MailConfig, PathsConfig, SmtpConfig
from digestd.delivery import plan_digests, send_pending
from digestd.delivery.smtp import SmtpTransport
from digestd.digest import Composer, render, select, wire
from digestd.digest.message import message_bytes
from digestd.digest.wire import SMTP_POLICY, Assembled
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import SelectedPaper, Store, SubscriberRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))
from population import add_subscribers
from sink import SinkProcess

SEEDS = Path(__file__).resolve().parents[1] / "samples" / "seeds"


def bare_smtplib(port: int, message: bytes, count: int) -> tuple[float, float]:
    """(wall s, CPU s) sending one pre-built message `count` times over one connection."""
    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        connection.sendmail("digestd@example.org", ["reader@example.org"], message)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.quit()
    return elapsed, cpu


def forget_everything(composer: Composer) -> None:
    """Every cache of the digest modules emptied; the templates stay loaded."""
    composer.clear()
    composer.renderer.clear_fragments()
    for memo in (
        select._paper_view, wire._encoded_fragment, wire._subject_line, render._highlight,
        render.wrap, render._matched,
    ):
        memo.cache_clear()


class RenderCosts(NamedTuple):
    """Milliseconds of CPU, and the largest HTML part in bytes."""

    distinct: float  # a distinct body, per-paper caches warm
    first: float  # that body's first message
    run: float  # a distinct body, over a run from empty caches
    bodies: int  # bodies made in that run
    cached: float  # a message from a cached body
    package: float  # the same message through the email package
    size: int


def render_costs(runtime: Runtime, samples: int) -> RenderCosts:
    store = runtime.store
    topic_names = {t.slug: t.name for t in store.topics()}
    subscribers = store.subscribers(status="active")[:samples]
    # They were sent their digests above: select as if they had not been.
    selections = [
        (s, store.due_papers(dataclasses.replace(s, since_batch_id=0))) for s in subscribers
    ]
    selections = [(s, sel) for s, sel in selections if sel]
    now = dt.datetime.now(dt.UTC)

    composer = Composer(runtime.config)
    # warm up: templates compiled and loaded, caches of the process filled once
    for subscriber, selected in selections[:20]:
        composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)

    def body(subscriber: SubscriberRecord, selected: list[SelectedPaper]) -> None:
        _, made = composer.digest(subscriber, selected, topic_names, now)
        composer._wire(made)  # the encoding compose() would do first, kept by the composer

    # a run from empty caches: what each new body cost, its papers' first fragments included
    forget_everything(composer)
    run, bodies = 0.0, 0
    for subscriber, selected in selections:
        renders = composer.renderer.renders
        started = time.process_time()
        body(subscriber, selected)
        spent = time.process_time() - started
        if composer.renderer.renders > renders:
            run, bodies = run + spent, bodies + 1
        composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)

    distinct, first = [], []
    for subscriber, selected in selections[:60]:
        composer.clear()  # every body a miss; the per-paper caches stay warm (see above)
        started = time.process_time()
        body(subscriber, selected)
        made = time.process_time()
        composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)
        distinct.append(made - started)
        first.append(time.process_time() - made)

    for subscriber, selected in selections:
        composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)
    cached, package = [], []
    size = 0
    for subscriber, selected in selections:
        started = time.process_time()
        composed = composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)
        outgoing = composed.outgoing
        if not isinstance(outgoing, Assembled):
            message_bytes(outgoing, SMTP_POLICY)
        cached.append(time.process_time() - started)
        # the same message made by the email package (EmailMessage, then its generator)
        started = time.process_time()
        composed = composer.compose(subscriber, selected, topic_names, digest_key="0-5", now=now)
        message_bytes(composed.message, SMTP_POLICY)
        package.append(time.process_time() - started)
        size = max(size, len(composed.html.encode()))
    return RenderCosts(
        statistics.mean(distinct) * 1000, statistics.mean(first) * 1000,
        run / max(bodies, 1) * 1000, bodies,
        statistics.mean(cached) * 1000, statistics.mean(package) * 1000, size,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    sink = SinkProcess().start()
    port = sink.port
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
        started, cpu = time.perf_counter(), time.process_time()
        plan = plan_digests(runtime, now)
        plan_seconds, plan_cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"plan:  {plan.planned} digests planned in {plan_seconds:.1f} s, "
              f"{plan_cpu:.1f} s CPU = {plan_cpu / max(plan.planned, 1) * 1000:.3f} ms CPU "
              f"per subscriber")

        transport = SmtpTransport(config.smtp)
        started, cpu = time.perf_counter(), time.process_time()
        report = send_pending(runtime, now, transport=transport)
        send_seconds, send_cpu = time.perf_counter() - started, time.process_time() - cpu
        transport.close()
        average = sink.bytes / max(sink.count, 1)
        send_per_cpu = report.sent / max(send_cpu, 1e-9)
        print(f"send:  {report.sent} messages in {send_seconds:.1f} s = "
              f"{report.sent / send_seconds:,.0f} messages/s, {send_per_cpu:,.0f} messages per "
              f"CPU-second over {transport.connections} connection(s); {report.renders} "
              f"distinct bodies; average message {average / 1024:.0f} KiB")

        sample = b"x" * int(average)
        message = (
            b"From: digestd@example.org\r\nTo: reader@example.org\r\nSubject: bench\r\n\r\n"
            + b"\r\n".join(sample[i : i + 76] for i in range(0, len(sample), 76))
        )
        count = min(2000, max(report.sent, 100))
        bare_seconds, bare_cpu = bare_smtplib(port, message, count)
        bare_per_cpu = count / max(bare_cpu, 1e-9)
        print(f"bare:  {count / bare_seconds:,.0f} messages/s, {bare_per_cpu:,.0f} messages per "
              f"CPU-second (smtplib, one pre-built {average / 1024:.0f} KiB message, one "
              f"connection, same sink)")
        print(f"ratio: digest send costs {bare_per_cpu / send_per_cpu:.2f}x the bare loop's CPU "
              f"per message")

        costs = render_costs(runtime, 500)
        print(f"render (warm, CPU): {costs.distinct:.2f} ms per distinct body (per-paper caches "
              f"warm; {costs.run:.2f} ms each over a run of {costs.bodies} bodies from empty "
              f"caches), then {costs.first:.2f} ms for its first message; {costs.cached:.3f} ms "
              f"per message from a cached body (assembled bytes), {costs.package:.3f} ms for the "
              f"same message through the email package; largest HTML part "
              f"{costs.size / 1024:.0f} KiB")
        runtime.close()
    sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
