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
    """Ingest `paths` with topic matching; rebuild the feeds when any dump brought papers."""
    report = ingest_paths(runtime.store, paths, settings, classify=runtime.classify, **kwargs)
    if report.batch_ids:
        publish_feeds(runtime)
    return report


def publish_feeds(runtime: Runtime) -> None:
    """Rebuild the feeds; a failure is logged and never undoes the ingest that preceded it."""
    from digestd.feeds import build_feeds

    try:
        result = build_feeds(runtime)
    except Exception:
        log.exception("feed build failed")
        return
    log.info("feeds built %s", result)
