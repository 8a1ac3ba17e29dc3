"""The daemon: APScheduler as a clock, the HTTP server beside it, signals and sd_notify.

The scheduler holds no state of its own: what was ingested and what was sent lives in the
database, so a restart at any moment resumes correctly. Jobs coalesce, never overlap
themselves, and a job that raises is logged and the daemon goes on. Only the main thread
touches the scheduler (jobs ask it to bring another job forward), which keeps a stop from
deadlocking on APScheduler's locks.

Several daemons may share one PostgreSQL database. Each scans its seeds directory and serves
HTTP; only the leader (see digestd.store.leadership) plans and sends digests, retries and
keeps house. The others have those jobs paused, try for leadership on every pass of the main
loop, and nudge the leader when a batch of theirs wants dispatching. On SQLite every daemon
leads.

Signals: SIGTERM/SIGINT let the running job finish its transaction, then stop (exit 0);
SIGHUP reloads configuration, topics and templates, keeping the old ones when the new
configuration does not validate.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from digestd.config import Config
from digestd.config_load import load_config
from digestd.errors import ConfigError, DigestdError
from digestd.jobs import DISPATCH_INTERVAL, HOUSEKEEPING_INTERVAL, RETRY_INTERVAL, DaemonJobs
from digestd.metrics import Metrics
from digestd.pipeline import ensure_feeds
from digestd.runtime import Runtime
from digestd.store import open_leadership
from digestd.systemd import SystemdNotifier, Waker, watchdog_interval
from digestd.watch import SeedsWatcher

if TYPE_CHECKING:
    from digestd.web.server import ServerThread

log = logging.getLogger(__name__)

#: seconds a job may start late (after a suspend, or a busy pool) and still run, once
MISFIRE_GRACE = 300
#: seconds the HTTP server gets to start listening before start-up fails
HTTP_START_TIMEOUT = 15.0
STATUS_FILE = "daemon-status.json"
#: seconds between passes of the main loop at most: how stale the status file gets, and how
#: soon a follower takes over from a leader that stopped or died
TICK_SECONDS = 2.0
#: jobs that run in one process only: the leader's
LEADER_JOBS = ("dispatch", "retry", "housekeeping", "bounces")
#: seconds a daemon that just lost leadership waits before trying again, so that a healthy
#: follower takes over rather than the one whose connection just broke
LEADERSHIP_BACKOFF = 10.0


def check_templates(directory: Path) -> None:
    """Parse every template under `directory`; raise ConfigError naming the first broken one.

    Syntax only (the renderers add their own filters): enough to refuse a reload that would
    make every digest or page fail.
    """
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)))
    for name in env.list_templates(extensions=["html", "txt"]):
        try:
            source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
            env.parse(source, name, filename)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"template {directory / name} line {exc.lineno}: {exc.message}"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"template {directory / name}: cannot read: {exc}") from exc


def _check_sender(config: Config) -> None:
    """Refuse a sender that cannot send real mail (ConfigError); log what only weakens it."""
    from digestd.delivery.identity import check_sender

    for note in check_sender(config):
        log.warning("sender: %s", note)


class Daemon(DaemonJobs):
    def __init__(self, config: Config, *, config_path: str | None = None):
        self.config_path = config_path
        _check_sender(config)
        self.runtime = Runtime.open(config)
        self.notifier = SystemdNotifier()
        from digestd.delivery import TransportHealth

        #: whether the mail transport was found down, and until when it is left alone
        self.transport_health = TransportHealth()
        #: set once the daemon is on its way out; jobs check it between dumps
        self.stopping = threading.Event()
        # Written by signal handlers, which must take no lock (see Waker): a flag only ever
        # set, and a counter only they (and request_reload) move.
        self._stop_requested = False
        self._reloads_requested = 0
        self._reloads_done = 0
        self._signals: list[str] = []
        #: set by signal handlers so the main loop acts at once
        self.wake = Waker()
        self.last_status: dict[str, str] = {}
        # Guards _run_at and _busy, which job threads fill and the main loop reads.
        self._lock = threading.Lock()
        self._database_answers = True
        #: jobs to bring forward (see _run_soon), applied by the main loop
        self._run_at: dict[str, dt.datetime] = {}
        #: jobs running now
        self._busy: set[str] = set()
        self._shut_down = False
        self._last_ping = -float("inf")
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={
                "coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE,
            },
            timezone=dt.UTC,
        )
        self.scheduler.add_listener(self._job_finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.server: Any = None
        self._server_thread: ServerThread | None = None
        self._watcher: SeedsWatcher | None = None
        self.leadership = open_leadership(self.runtime.store)
        #: whether the once-only jobs run here; read by job threads, changed by the main loop
        self.is_leader = False
        self._lead_again_at = 0.0
        self.metrics = Metrics()
        self.metrics.watch_leadership(lambda: self.is_leader)
        #: the scheduler's state as the main loop last saw it, for /healthz (read there)
        self._scheduler_state = "starting"
        self._last_tick = time.monotonic()
        #: what the status file holds now, less its time stamp (rewritten only on a change)
        self._status_written: dict[str, Any] | None = None

    # Lifecycle -------------------------------------------------------------------------------

    def _schedule(self) -> None:
        now = dt.datetime.now(dt.UTC)
        jobs: list[tuple[str, Callable[[], None], float]] = [
            ("scan", self.scan, self.config.ingest.scan_interval),
            ("dispatch", self.dispatch, DISPATCH_INTERVAL),
            ("retry", self.retry, RETRY_INTERVAL),
            ("housekeeping", self.housekeeping, HOUSEKEEPING_INTERVAL),
            ("bounces", self.bounces, self.config.bounces.check_interval),
        ]
        for job_id, func, seconds in jobs:
            # A follower's once-only jobs are added paused (next_run_time None); see _lead.
            first = now if self.is_leader or job_id not in LEADER_JOBS else None
            self.scheduler.add_job(
                self._tracked(job_id, func), "interval", seconds=seconds, id=job_id, name=job_id,
                next_run_time=first, replace_existing=True,
                coalesce=True, max_instances=1, misfire_grace_time=MISFIRE_GRACE,
            )

    def _tracked(self, job_id: str, func: Callable[[], None]) -> Callable[[], None]:
        """`func`, remembered as running while it runs (see tick)."""

        def run() -> None:
            if job_id in LEADER_JOBS and not self.is_leader:
                return  # submitted just before leadership was lost
            with self._lock:
                self._busy.add(job_id)
            try:
                func()
            finally:
                with self._lock:
                    self._busy.discard(job_id)
                    asked = job_id in self._run_at
                if asked:
                    self.wake.set()

        return run

    def start(self) -> None:
        from digestd.web.server import ServerThread, make_server

        self.config.paths.seeds_dir.mkdir(parents=True, exist_ok=True)
        try:
            # The key that signs forms and links, made now: a disk or database that cannot
            # take it stops start-up here, rather than failing the first page view.
            self.runtime.store.site_key("web")
        except DigestdError as exc:
            raise DigestdError(f"cannot create the web signing key: {exc}") from exc
        self.server = make_server(
            self.runtime, metrics=self.metrics, daemon_health=self.health
        )
        host, port = self.config.http_host_port
        try:
            # READY=1 only once the port is really listening: a taken port fails start-up.
            self._server_thread = ServerThread(self.server).start(HTTP_START_TIMEOUT)
        except (RuntimeError, TimeoutError) as exc:
            raise DigestdError(
                f"the HTTP server could not listen on {host}:{port}: {exc}"
            ) from exc
        self._lead()  # before the jobs are added: a follower adds its once-only jobs paused
        self._schedule()
        self.scheduler.start()
        self._watch()
        log.info(
            "started seeds=%s database=%s http=%s:%d leader=%s",
            self.config.paths.seeds_dir, self.runtime.store.engine.url.render_as_string(),
            host, port, str(self.is_leader).lower(),
        )
        self._write_status_file()
        role = "leader" if self.is_leader else "follower"
        self.notifier.notify("READY=1", f"STATUS=serving on {host}:{port} as {role}")

    def reload(self) -> None:
        """Apply a new configuration, topics and templates; keep the old ones if it is broken."""
        try:
            config = load_config(self.config_path)
            if config.database_url != self.config.database_url:
                raise DigestdError("database.url changed; restart digestd to use it")
            if config.http_host_port != self.config.http_host_port:
                # The listening socket is opened once; moving it while requests are in flight
                # is a restart's job.
                raise DigestdError(
                    f"http.address changed from {self.config.http.address} to "
                    f"{config.http.address}; restart digestd to listen there"
                )
            check_templates(config.templates_dir)
            _check_sender(config)
            runtime = Runtime.open(config, store=self.runtime.store)
        except Exception as exc:
            # Whatever is wrong with the new configuration, the running one stays in force.
            log.error(
                "reload refused, keeping the running configuration error=%r", str(exc),
                exc_info=not isinstance(exc, DigestdError),
            )
            self._status(f"reload refused: {exc}")
            return
        self.runtime = runtime
        if self.server is not None:
            self.server.config.app.state.runtime = runtime
        self.scheduler.reschedule_job(
            "scan", trigger="interval", seconds=config.ingest.scan_interval
        )
        self._watch()
        # Feeds carry base_url in every link: written for another one, they are rebuilt now.
        ensure_feeds(runtime)
        log.info("reloaded config=%s topics=%d", config.source, len(runtime.topics))
        self._status("configuration reloaded")

    def serve_forever(self) -> int:
        watchdog = watchdog_interval()
        try:
            self.start()
            while not self.stopping.is_set():
                # At least every TICK_SECONDS: the status file's next run times stay fresh,
                # and a follower tries for leadership.
                self.wake.wait(min(watchdog or TICK_SECONDS, TICK_SECONDS))
                self.wake.clear()
                while self._signals:
                    log.info("signal=%s", self._signals.pop(0))
                if self._stop_requested:
                    self.stopping.set()
                if self.stopping.is_set():
                    break
                self.tick(watchdog=watchdog is not None, ping_every=watchdog or 0.0)
        finally:
            self.shutdown()
        return 0

    def tick(self, *, watchdog: bool, ping_every: float = 0.0) -> None:
        """One pass of the main loop: a requested reload, leadership checked or tried for,
        jobs brought forward, the status file, then the watchdog ping (at most every
        `ping_every` seconds, however often jobs wake the loop). Only this thread touches
        the scheduler."""
        if self._reloads_requested != self._reloads_done:
            # A SIGHUP landing between these two lines is not lost: the counts differ again.
            self._reloads_done = self._reloads_requested
            self.notifier.notify("RELOADING=1")
            self.reload()
            self.notifier.notify("READY=1")
        self._lead()
        with self._lock:
            if self.is_leader and self.leadership.take_nudged():
                # A follower ingested a batch: dispatch as if it had been ingested here.
                self._run_at["dispatch"] = dt.datetime.now(dt.UTC)
            # A job asked for while it runs would be skipped (max_instances=1) and wait a whole
            # interval: keep the request until it has finished.
            run_at = {j: at for j, at in self._run_at.items() if j not in self._busy}
            for job_id in run_at:
                del self._run_at[job_id]
        if self.scheduler.running:
            for job_id, at in run_at.items():
                if job_id in LEADER_JOBS and not self.is_leader:
                    # Paused here; the leader plans for every process's batches.
                    if job_id == "dispatch":
                        self.leadership.nudge()
                    continue
                self.scheduler.modify_job(job_id, next_run_time=at)
        self._write_status_file()
        self._check_scheduler()
        if not watchdog or time.monotonic() - self._last_ping < ping_every:
            return
        answers = self.runtime.store.ping()
        if answers:
            # Only while the database answers: a wedged database gets us restarted.
            self.notifier.notify("WATCHDOG=1")
            self._last_ping = time.monotonic()
        elif self._database_answers:
            log.error("database not answering; watchdog not pinged")
            self._status("database not answering")
        self._database_answers = answers

    def _lead(self) -> None:
        """Check leadership (leader) or try for it (follower); on a change, resume or pause
        the once-only jobs. Main thread only, like every scheduler call."""
        if self.is_leader:
            leading = self.leadership.held
        elif time.monotonic() >= self._lead_again_at:
            leading = self.leadership.try_acquire()
        else:
            leading = False
        if leading == self.is_leader:
            return
        self.is_leader = leading
        jobs = [job_id for job_id in LEADER_JOBS if self.scheduler.get_job(job_id)]
        if leading:
            log.info("leadership acquired jobs=%s", ",".join(LEADER_JOBS))
            self._status("leadership acquired")
            now = dt.datetime.now(dt.UTC)
            for job_id in jobs:  # whatever the last leader left undone, at once
                self.scheduler.modify_job(job_id, next_run_time=now)
        else:
            self._lead_again_at = time.monotonic() + LEADERSHIP_BACKOFF
            log.warning("leadership lost error=%r", self.leadership.error)
            self._status("leadership lost")
            for job_id in jobs:
                self.scheduler.pause_job(job_id)

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        self.stopping.set()  # a running scan stops after its current dump
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        log.info("stopping")
        if self._watcher is not None:
            self._watcher.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # the running job finishes its transaction
        # Only now: a dispatch still running was the leader's. Another daemon takes over
        # at its next tick.
        self.leadership.release()
        if self.is_leader:
            self.is_leader = False
            log.info("leadership released")
        if self._server_thread is not None:
            self._server_thread.stop(timeout=10)
        self._write_status_file()
        self.runtime.close()
        self.notifier.close()
        self.wake.close()
        log.info("stopped")

    def request_stop(self) -> None:
        """Ask the main loop to stop. Takes no lock: safe in a signal handler."""
        self._stop_requested = True
        self.wake.set()

    def request_reload(self) -> None:
        """Ask the main loop to reload. Takes no lock: safe in a signal handler."""
        self._reloads_requested += 1
        self.wake.set()

    def install_signal_handlers(self) -> None:
        # The handlers run in the main thread between two bytecodes, possibly while it holds
        # a lock (inside Event.clear(), a logging call, ...): they only set flags and write
        # to the wake-up pipe; the main loop logs and acts.
        def stop(signum: int, _frame: Any) -> None:
            self._signals.append(signal.Signals(signum).name)
            self.request_stop()

        def hup(_signum: int, _frame: Any) -> None:
            self._signals.append("SIGHUP")
            self.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    # Status ----------------------------------------------------------------------------------

    def _check_scheduler(self) -> None:
        """Note whether the scheduler keeps time (main thread; /healthz reads the result).

        On the leader a once-only job overdue by more than its grace time means the job pool
        is stuck: digests would silently stop going out.
        """
        self._last_tick = time.monotonic()
        if not self.scheduler.running:
            self._scheduler_state = "stopped"
            return
        late = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=MISFIRE_GRACE)
        stuck = [
            job.id for job in self.scheduler.get_jobs()
            if job.next_run_time is not None and job.next_run_time < late
            and (self.is_leader or job.id not in LEADER_JOBS)
        ]
        self._scheduler_state = f"stuck ({','.join(stuck)} overdue)" if stuck else "ok"

    def health(self) -> tuple[str, str]:
        """(role, scheduler state) for /healthz; called from the HTTP server's threads."""
        role = "leader" if self.is_leader else "follower"
        if self._shut_down:
            return role, "stopped"
        if time.monotonic() - self._last_tick > 5 * TICK_SECONDS + MISFIRE_GRACE / 10:
            return role, "main loop not running"
        return role, self._scheduler_state

    def _status(self, text: str) -> None:
        # A new dict, not an update: the main loop may be serialising the old one.
        self.last_status = {"message": text, "at": dt.datetime.now(dt.UTC).isoformat()}
        self.notifier.notify(f"STATUS={text}")

    def _write_status_file(self) -> None:
        """Where `digestd status` reads the next run of each job (atomic replace).

        Written by the main thread only (and at shutdown, once the jobs are done)."""
        data = {
            "pid": os.getpid(),
            "last": self.last_status,
            "leader": self.is_leader,
            "jobs": {
                job.id: job.next_run_time.isoformat() if job.next_run_time else None
                for job in self.scheduler.get_jobs()
            }
            if self.scheduler.running
            else {},
        }
        path = Path(self.config.paths.data_dir) / STATUS_FILE
        if data == self._status_written:
            return  # no write (and no disk wake-up) every tick while nothing happens
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(
                json.dumps({**data, "updated": dt.datetime.now(dt.UTC).isoformat()}, indent=2)
            )
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write status file path=%s error=%r", path, exc.strerror)
            return
        self._status_written = data


def run(config: Config, *, config_path: str | None = None) -> int:
    daemon = Daemon(config, config_path=config_path)
    daemon.install_signal_handlers()
    return daemon.serve_forever()
