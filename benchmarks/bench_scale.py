"""A morning at scale: 100,000 immediate subscribers, one 265-paper batch, end to end.

    .venv/bin/python benchmarks/bench_scale.py [--subscribers 100000] [--papers 265]
        [--database URL] [--sink aiosmtpd|postfix] [--plan-only]

Builds a fresh store (SQLite, or the PostgreSQL database named by --database; give an empty
schema), ingests one batch of ``--papers`` real papers taken from the sample dumps, adds
``--subscribers`` confirmed immediate subscribers on one to three of the starter topics, then
runs what the daemon runs for that batch and reports, for each stage, wall time, CPU time of
this process (digestd's own work: the sink runs elsewhere) and CPU per subscriber:

- plan: `plan_digests`, one delivery row per subscriber with papers waiting;
- send: `send_pending` over SMTP, one connection (``--connections`` more if the transport
  supports them), to a sink in a process of its own: an aiosmtpd sink that counts
  (``--sink aiosmtpd``, the default) or Debian's Postfix with a ``discard`` transport
  (``--sink postfix``, via tests/mta.py; needs root and the postfix package).

Then the totals: minutes, messages per second, CPU per message, and the peak resident memory
of this process.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import os
import resource
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from population import add_subscribers
from sink import SinkProcess

from digestd.config import Config, HttpConfig, MailConfig, PathsConfig, SmtpConfig
from digestd.delivery import plan_digests, send_pending
from digestd.ingest import ingest_paths
from digestd.parse import decode_dump, parse_dump
from digestd.runtime import Runtime
from digestd.store import Store

SEEDS = Path(__file__).resolve().parents[1] / "samples" / "seeds"
HEADER = [
    "new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
    "byAK and the research community", "Dec 30",
]


def batch_dump(papers: int) -> str:
    """A card dump of the first `papers` distinct papers of the sample dumps."""
    blocks = list(HEADER)
    seen: set[str] = set()
    for path in sorted(SEEDS.glob("*.txt")):
        for paper in parse_dump(decode_dump(path.read_bytes())).papers:
            if paper.title in seen or not paper.abstract:
                continue
            seen.add(paper.title)
            blocks += [paper.title, paper.abstract, "  • 5 authors\n·\nDec 29 12"]
            if len(seen) == papers:
                return "\n\n".join(blocks) + "\n"
    raise SystemExit(f"the sample dumps hold only {len(seen)} papers with an abstract")


def stage(label: str, count: int, work):  # type: ignore[no-untyped-def]
    started, cpu = time.perf_counter(), time.process_time()
    result = work()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{label:<8} {wall:8.1f} s wall  {cpu:8.1f} s CPU  "
          f"{cpu / max(count, 1) * 1000:7.3f} ms CPU each ({count:,})")
    return result, wall, cpu


class Progress(threading.Thread):
    """Every `interval` seconds, how far the send is: messages sent, wall and CPU so far, and
    what a run at that pace would take for all planned messages (an extrapolation, marked so),
    for runs that may not be let finish."""

    def __init__(self, store: Store, planned: int, interval: float) -> None:
        super().__init__(name="progress", daemon=True)
        self.store, self.planned, self.interval = store, planned, interval
        self.done = threading.Event()

    def run(self) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        while not self.done.wait(self.interval):
            sent = self.store.delivery_counts().get("sent", 0)
            wall, used = time.perf_counter() - started, time.process_time() - cpu
            if sent:
                print(f"progress {sent:,}/{self.planned:,} sent, {wall:.0f} s wall, {used:.0f} s "
                      f"CPU (this process); at this pace all {self.planned:,} would take "
                      f"{wall * self.planned / sent / 60:.1f} min wall, "
                      f"{used * self.planned / sent / 60:.2f} CPU-min (extrapolated); "
                      f"load {load()}", flush=True)

    def stop(self) -> None:
        self.done.set()


def load() -> str:
    """The machine's load average (1, 5, 15 minutes): how shared it was."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=265)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--sink", choices=["aiosmtpd", "postfix"], default="aiosmtpd")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--progress", type=float, default=60,
                        help="seconds between progress lines while sending")
    parser.add_argument("--profile", metavar="FILE",
                        help="write a cProfile of the send stage (CPU clock) to FILE")
    parser.add_argument("--plan-only", action="store_true",
                        help="stop after planning (no sink, nothing sent)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if args.plan_only:
            sink, port = None, 25
        elif args.sink == "postfix":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from mta import Postfix, unavailable_reason

            reason = unavailable_reason()
            if reason:
                raise SystemExit(f"Postfix is not available: {reason}")
            port = stack.enter_context(Postfix(discard=True)).port
            sink = None
        else:
            sink = stack.enter_context(SinkProcess())
            port = sink.port
        smtp = SmtpConfig(host="127.0.0.1", port=port, timeout=60)
        if args.connections != 1:
            smtp = dataclasses.replace(smtp, connections=args.connections)  # type: ignore[call-arg]
        config = dataclasses.replace(
            Config(),
            paths=PathsConfig(seeds_dir=Path(tmp) / "seeds", data_dir=Path(tmp) / "var"),
            http=HttpConfig(base_url="https://digest.example.org"),
            mail=MailConfig(transport="smtp", from_address="digestd <digestd@example.org>"),
            smtp=smtp,
        )
        url = args.database or f"sqlite:///{Path(tmp) / 'digestd.db'}"
        runtime = Runtime.open(config, store=Store.open(url))
        store = runtime.store
        dump = Path(tmp) / "batch.txt"
        dump.write_text(batch_dump(args.papers), encoding="utf-8")
        ingest_paths(store, [dump], classify=runtime.classify)
        add_subscribers(store, args.subscribers)
        print(f"{store.engine.dialect.name}: {store.count_papers()} papers in the batch, "
              f"{args.subscribers:,} subscribers, sink {args.sink} on its own process; "
              f"load average {load()}")

        now = dt.datetime.now(dt.UTC)
        plan, plan_wall, plan_cpu = stage(
            "plan", args.subscribers, lambda: plan_digests(runtime, now)
        )
        if args.plan_only:
            print(f"planned {plan.planned:,}; peak RSS {peak_rss_mib():,.0f} MiB")
            runtime.close()
            return
        progress = Progress(store, plan.planned, args.progress)
        progress.start()
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        report, send_wall, send_cpu = stage(
            "send", plan.planned,
            lambda: profiler.runcall(send_pending, runtime, now) if profiler
            else send_pending(runtime, now),
        )
        if profiler is not None:
            profiler.dump_stats(args.profile)
        progress.stop()
        if report.sent != plan.planned:
            raise SystemExit(f"sent {report.sent} of {plan.planned} planned: {report}")
        wall, cpu = plan_wall + send_wall, plan_cpu + send_cpu
        print(f"total:   {wall / 60:.1f} minutes wall, {cpu / 60:.2f} CPU-minutes; "
              f"{report.sent / send_wall:,.0f} messages/s sent; "
              f"{cpu / max(report.sent, 1) * 1000:.2f} ms CPU per message (plan + send); "
              f"{report.renders} distinct bodies; peak RSS {peak_rss_mib():,.0f} MiB; "
              f"load average {load()}")
        if sink is not None:
            print(f"sink:    {sink.count:,} messages, {sink.bytes / sink.count / 1024:.0f} KiB "
                  f"average, {sink.cpu_seconds():.1f} s CPU in the sink's process")
        runtime.close()


if __name__ == "__main__":
    main()
