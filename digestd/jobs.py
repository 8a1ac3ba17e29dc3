"""The daemon's jobs: what each timed run does (scan, dispatch, retry, housekeeping, bounces).

Mixed into `digestd.daemon.Daemon`, which owns the clock, leadership and signals. A job never
touches the scheduler: it asks the main loop to bring another job forward (`_run_soon`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.events import JobExecutionEvent

from digestd.config import Config
from digestd.ingest import IngestSettings, discover
from digestd.metrics import Metrics
from digestd.pipeline import ingest_and_publish
from digestd.runtime import Runtime
from digestd.systemd import Waker
from digestd.watch import SeedsWatcher

if TYPE_CHECKING:
    from digestd.delivery import TransportHealth

# The daemon's logger: job lines have always been logged under it.
log = logging.getLogger("digestd.daemon")

DISPATCH_INTERVAL = 60.0
RETRY_INTERVAL = 300.0
HOUSEKEEPING_INTERVAL = 3600.0


class DaemonJobs:
    # Set by Daemon.__init__; declared here for the jobs that use them.
    runtime: Runtime
    stopping: threading.Event
    wake: Waker
    metrics: Metrics
    transport_health: TransportHealth
    _lock: threading.Lock
    _run_at: dict[str, dt.datetime]
    _watcher: SeedsWatcher | None

    @property
    def config(self) -> Config:
        return self.runtime.config

    def _status(self, text: str) -> None:
        raise NotImplementedError  # the daemon's: systemd STATUS= and the status file

    def scan(self) -> None:
        """Ingest new dumps from the seeds directory; wake the dispatcher after a batch."""
        seeds = self.config.paths.seeds_dir
        if not seeds.is_dir():
            log.warning("seeds directory missing path=%s", seeds)
            return
        settings = IngestSettings(
            settle_seconds=self.config.ingest.settle_seconds,
            max_dump_bytes=self.config.ingest.max_dump_bytes,
        )
        # One dump is one transaction: on SIGTERM stop between dumps, not after the whole scan.
        files = self._until_stopping(discover([seeds]))
        report = ingest_and_publish(self.runtime, [seeds], settings, files=files)
        ingested = [d for d in report.dumps if d.status == "ingested"]
        if ingested or report.deferred:
            self._status(
                f"scan: {len(ingested)} dumps ingested, {report.new_papers} new papers, "
                f"{len(report.deferred)} deferred"
            )
        if report.batch_ids:
            self._run_soon("dispatch", 0.0)
        if report.deferred:
            # A dump is still being written: look again once it has had time to settle.
            self._run_soon("scan", max(self.config.ingest.settle_seconds, 0.5))

    def _run_soon(self, job_id: str, delay: float) -> None:
        """Ask the main loop to bring a job forward.

        Jobs never call the scheduler themselves: APScheduler's shutdown holds the job-store
        lock while it waits for running jobs, so a job touching the scheduler then would
        deadlock the stop.
        """
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
        with self._lock:
            earlier = self._run_at.get(job_id)
            self._run_at[job_id] = min(at, earlier) if earlier else at
        self.wake.set()

    def _watch(self) -> None:
        """(Re)start the seeds watcher as the configuration says (ingest.watch)."""
        seeds, wanted = self.config.paths.seeds_dir, self.config.ingest.watch
        if self._watcher is not None and wanted and self._watcher.directory == seeds:
            return
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if wanted:
            # A copy in progress sends an event per write: asking for a scan one settle time
            # later (the earliest request wins) lets most dumps be read once, whole.
            delay = self.config.ingest.settle_seconds
            watcher = SeedsWatcher(seeds, lambda: self._run_soon("scan", delay))
            if watcher.start():
                self._watcher = watcher

    def _until_stopping(self, files: Iterable[Path]) -> Iterator[Path]:
        for path in files:
            if self.stopping.is_set():
                log.info("scan interrupted by shutdown; the rest waits for the next start")
                return
            yield path

    def dispatch(self) -> None:
        """Plan the digests that are due and send them."""
        from digestd.delivery import plan_digests, send_pending

        now = dt.datetime.now(dt.UTC)
        planned = plan_digests(self.runtime, now)
        sent = send_pending(
            self.runtime, now, should_stop=self.stopping.is_set, health=self.transport_health
        )
        self._status(f"dispatch: {planned}; {sent}")
        self._retry_when_due()

    def retry(self) -> None:
        """Send deliveries whose retry time has come (temporary failures)."""
        from digestd.delivery import send_pending

        send_pending(
            self.runtime, dt.datetime.now(dt.UTC), should_stop=self.stopping.is_set,
            health=self.transport_health,
        )
        self._retry_when_due()

    def _retry_when_due(self) -> None:
        """Bring the retry job forward to when the next delivery can go: a backoff's end, or
        a dead process's claim running out, so neither waits for the job's own cadence."""
        now = dt.datetime.now(dt.UTC)
        due = self.runtime.store.next_delivery_due(now)
        if due is not None and due - now < dt.timedelta(seconds=RETRY_INTERVAL):
            # a second late, so the lease or backoff has surely ended by then
            self._run_soon("retry", (due - now).total_seconds() + 1.0)

    def housekeeping(self) -> None:
        """Trim the SQLite write-ahead log; forget sign-ups never confirmed in time; apply the
        retention keys."""
        from digestd.retention import apply_retention

        self.runtime.store.checkpoint()
        self.runtime.store.purge_expired_signups(self.config.subscribe.confirm_hours)
        apply_retention(self.config, self.runtime.store, dt.datetime.now(dt.UTC))

    def bounces(self) -> None:
        """Read the envelope sender's mailbox: bounces, complaints, unsubscribe mails."""
        if not self.config.reads_bounces:
            return
        from digestd.delivery.intake import read_bounces

        report = read_bounces(self.runtime)
        if report.read:
            self._status(f"bounces: {report}")

    def _job_finished(self, event: JobExecutionEvent) -> None:
        if event.exception is not None:
            self.metrics.job_failures.labels(event.job_id).inc()
            log.error(
                "job failed job=%s error=%r", event.job_id, str(event.exception),
                # APScheduler's event.traceback is text; the exception carries the real one.
                exc_info=event.exception,
            )
            self._status(f"{event.job_id} failed: {event.exception}")
