"""digestd feeds: the public RSS, Atom and JSON feeds and the OPML list."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands, open_runtime
from digestd.config import Config


def cmd_feeds_build(args: argparse.Namespace, config: Config) -> int:
    """Write the current document of every public feed (all papers, each topic) and the OPML now.

    A file is replaced only when its content changed; the output names each file written.
    """
    from digestd.feeds import build_feeds
    from digestd.pipeline import mark_built

    with open_runtime(config) as runtime:
        report = build_feeds(runtime)
        mark_built(runtime)
    for name in report.written:
        print(f"{'written':<10} {config.feeds_dir / name}")
    for name in report.removed:
        print(f"{'removed':<10} {config.feeds_dir / name}")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged, "
          f"{len(report.removed)} removed in {config.feeds_dir}")
    return 0


ORDER = 70


def register(commands: Commands) -> None:
    feeds = commands.group("feeds", "Write the RSS, Atom and JSON feeds and the OPML list.")
    feeds.command("build", cmd_feeds_build)
