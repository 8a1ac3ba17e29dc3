"""Prometheus metrics: what the store holds, read at scrape time, and what this process counted.

Figures about the data (papers, deliveries, the queue) come from the database when /metrics is
scraped, so every instance sharing one database reports the same numbers and a restart loses
nothing. Events only a process sees (HTTP requests, failed jobs) are counters of that process;
Prometheus sums them across instances. Each `Metrics` has its own registry, so several servers
in one process (tests, benchmarks) never mix their counters.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from digestd import __version__
from digestd.errors import StoreError

if TYPE_CHECKING:
    from digestd.store import Store

log = logging.getLogger(__name__)

#: the delivery statuses always reported, so a rate() over a status that is zero works
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "expired")
#: seconds over which the send rate is averaged
SEND_RATE_WINDOW = 300.0


class StoreCollector(Collector):
    """Reads the store's figures at each scrape; a database that does not answer is reported
    as `digestd_database_up 0` rather than failing the whole scrape."""

    def __init__(self, store: Callable[[], Store], leader: Callable[[], bool | None]) -> None:
        self._store = store
        self._leader = leader

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        yield InfoMetricFamily("digestd_build", "digestd's version", value={"version": __version__})
        leader = self._leader()
        if leader is not None:
            yield GaugeMetricFamily(
                "digestd_leader",
                "1 when this instance holds the scheduler's leadership (plans and sends)",
                value=1 if leader else 0,
            )
        now = dt.datetime.now(dt.UTC)
        try:
            stats = self._store().stats(now, window=SEND_RATE_WINDOW)
        except StoreError as exc:
            log.warning("metrics: database not answering error=%r", str(exc))
            yield GaugeMetricFamily("digestd_database_up", "1 when the database answers", value=0)
            return
        yield GaugeMetricFamily("digestd_database_up", "1 when the database answers", value=1)
        yield GaugeMetricFamily("digestd_papers", "papers stored", value=stats.papers)
        yield GaugeMetricFamily(
            "digestd_batches", "batches of new papers ingested so far", value=stats.batches
        )
        if stats.last_ingest_at is not None:
            yield GaugeMetricFamily(
                "digestd_last_ingest_age_seconds",
                "seconds since a dump last brought papers in",
                value=max(0.0, (now - stats.last_ingest_at).total_seconds()),
            )
        dumps = GaugeMetricFamily(
            "digestd_dumps", "dumps in the ledger by status", labels=["status"]
        )
        for status in ("ingested", "unchanged", "failed"):
            dumps.add_metric([status], stats.dumps.get(status, 0))
        yield dumps
        deliveries = GaugeMetricFamily(
            "digestd_deliveries", "digests in the delivery ledger by status", labels=["status"]
        )
        for status in sorted({*DELIVERY_STATUSES, *stats.deliveries}):
            deliveries.add_metric([status], stats.deliveries.get(status, 0))
        yield deliveries
        yield GaugeMetricFamily(
            "digestd_delivery_queue_depth",
            "digests being sent, or pending and due now",
            value=stats.queue_depth,
        )
        yield GaugeMetricFamily(
            "digestd_send_rate_per_second",
            f"digests sent per second over the last {SEND_RATE_WINDOW:.0f} seconds",
            value=stats.sent_recently / stats.window,
        )
        subscribers = GaugeMetricFamily(
            "digestd_subscribers", "subscribers by status", labels=["status"]
        )
        for status, count in sorted(stats.subscribers.items()):
            subscribers.add_metric([status], count)
        yield subscribers


class Metrics:
    """The registry of one server: request and job counters, and the store's figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http_requests = Counter(
            "digestd_http_requests", "HTTP requests answered, by route and status",
            ["route", "method", "status"], registry=self.registry,
        )
        self.job_failures = Counter(
            "digestd_job_failures", "scheduled jobs that raised, by job", ["job"],
            registry=self.registry,
        )
        self._leader: Callable[[], bool | None] = lambda: None
        self._collector: StoreCollector | None = None

    def watch_store(self, store: Callable[[], Store]) -> None:
        """Report the figures of whatever store `store()` returns at scrape time."""
        if self._collector is None:
            self._collector = StoreCollector(store, lambda: self._leader())
            self.registry.register(self._collector)

    def watch_leadership(self, leader: Callable[[], bool]) -> None:
        """Report `digestd_leader` from `leader()` (the daemon; a bare server has no role)."""
        self._leader = leader

    def render(self) -> bytes:
        return generate_latest(self.registry)
