"""The pipeline as the CLI and the daemon run it: ingest dumps, then publish what they brought."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from digestd.ingest import IngestReport, IngestSettings, ingest_paths
from digestd.runtime import Runtime

log = logging.getLogger(__name__)


def ingest_and_publish(
    runtime: Runtime, paths: list[Path], settings: IngestSettings, **kwargs: Any
) -> IngestReport:
    """Ingest `paths` with topic matching; rebuild the feeds when any dump was stored: one
    that brought no new paper may still have brought new upvote counts (the rising feed)."""
    report = ingest_paths(runtime.store, paths, settings, classify=runtime.classify, **kwargs)
    if report.batch_ids or any(d.status == "ingested" for d in report.dumps):
        publish_feeds(runtime)
    return report


#: in the feeds directory: the base_url the feed files were written for
BUILT_FOR = ".base_url"


def publish_feeds(runtime: Runtime) -> bool:
    """Rebuild the feeds; a failure is logged and never undoes the ingest that preceded it.

    A full disk (or any other refusal of the file system) is one log line: it is the machine's
    fault, not digestd's, and a traceback per batch would bury the cause.
    """
    from digestd.feeds import build_feeds

    try:
        result = build_feeds(runtime)
        mark_built(runtime)
    except OSError as exc:
        log.error(
            "feed build failed path=%s error=%r", exc.filename or runtime.config.feeds_dir,
            exc.strerror or str(exc),
        )
        return False
    except Exception:
        log.exception("feed build failed")
        return False
    log.info("feeds built %s", result)
    return True


def mark_built(runtime: Runtime) -> None:
    """Record the base_url the feeds were just written for (see ensure_feeds)."""
    (runtime.config.feeds_dir / BUILT_FOR).write_text(runtime.config.base_url + "\n")


def ensure_feeds(runtime: Runtime) -> bool:
    """Build the feeds when there are none yet, or when they were written for another
    base_url (their links would point at the old address). At start-up and on reload."""
    feeds_dir = runtime.config.feeds_dir
    try:
        built_for = (feeds_dir / BUILT_FOR).read_text().strip()
    except OSError:
        built_for = None
    if (feeds_dir / "all.atom").is_file() and built_for == runtime.config.base_url:
        return False
    if built_for is not None:
        log.info("base_url changed; rebuilding feeds old=%s new=%s", built_for,
                 runtime.config.base_url)
    return publish_feeds(runtime)
