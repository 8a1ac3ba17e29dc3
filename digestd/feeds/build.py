"""Writing the public feeds: every current document and the OPML, atomically, when changed.

Each file is written only when its bytes changed (temporary file in the same directory, then
`os.replace`), so readers never see half a file and unchanged feeds keep their mtime, ETag and
Last-Modified. Archive pages and private feeds are rendered on request by the HTTP server.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from digestd.feeds.model import FORMATS, FeedMeta
from digestd.feeds.opml import render_opml
from digestd.feeds.render import render_feed
from digestd.feeds.select import all_meta, current_docs, rising_doc, topic_meta
from digestd.store import Store
from digestd.store.models import utcnow

if TYPE_CHECKING:
    from digestd.config import Config
    from digestd.runtime import Runtime

log = logging.getLogger(__name__)

#: seconds after which a leftover temporary file in the feeds directory is removed
TEMPORARY_MAX_AGE = 3600
FEED_SUFFIXES = tuple(f".{fmt}" for fmt in FORMATS)


@dataclass
class FeedBuildReport:
    """Files under the feeds directory, relative to it, by what the build did to them."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"written={len(self.written)} unchanged={len(self.unchanged)} "
            f"removed={len(self.removed)}"
        )


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace `path` atomically with `data` unless it holds exactly that; True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a web server in front may serve these
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def public_feed_files(store: Store, config: Config) -> dict[str, bytes]:
    """Every public feed file (relative path -> bytes): all papers, each active topic, the
    rising papers, OPML."""
    topics = store.topics()
    feeds: list[tuple[FeedMeta, tuple[str, ...] | None]] = [(all_meta(config), None)]
    feeds += [(topic_meta(config, topic), (topic.slug,)) for topic in topics]
    names = ["all", *(f"topics/{topic.slug}" for topic in topics)]
    docs = current_docs(store, feeds, config.feeds.max_items, config.base_url,
                        {t.slug: t.name for t in topics})
    # papers gaining upvotes, counted back from this build (each ingested dump rebuilds)
    names.append("rising")
    docs.append(rising_doc(store, config, utcnow(), topics))
    files: dict[str, bytes] = {}
    for name, doc in zip(names, docs, strict=True):
        for fmt in FORMATS:
            files[f"{name}.{fmt}"] = render_feed(doc, fmt)
    files["topics.opml"] = render_opml(topics, config.base_url)
    return files


def build_feeds(runtime: Runtime) -> FeedBuildReport:
    """Render every public feed and write the files whose content changed.

    Feeds of topics no longer configured are removed, so they are not served stale.
    """
    config = runtime.config
    root = config.feeds_dir
    files = public_feed_files(runtime.store, config)
    report = FeedBuildReport()
    for name, data in files.items():
        written = write_if_changed(root / name, data)
        (report.written if written else report.unchanged).append(name)
    _remove_abandoned_temporaries(root)
    topics_dir = root / "topics"
    if topics_dir.is_dir():
        for path in sorted(topics_dir.iterdir()):
            name = f"topics/{path.name}"
            if path.suffix in FEED_SUFFIXES and name not in files:
                path.unlink(missing_ok=True)
                report.removed.append(name)
    log.debug("feeds dir=%s %s", root, report)
    return report


def _remove_abandoned_temporaries(root: Path) -> None:
    """Temporary files of a build that crashed; old enough that no build is still writing them."""
    cutoff = time.time() - TEMPORARY_MAX_AGE
    for path in root.rglob(".*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass
