"""digestd ingest: dump files or directories into the store, now."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from digestd.cli.common import Commands, open_runtime, print_json
from digestd.config import Config


def cmd_ingest(args: argparse.Namespace, config: Config) -> int:
    """Ingest dump files, or every dump in the directories given, now.

    Unchanged files are skipped without parsing; the exit status is non-zero when a path
    named on the command line failed, or when any dump failed for a reason that is not its
    content (the database down, the disk full): cron jobs and timers must see those.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from digestd.ingest import IngestSettings, discover
    from digestd.pipeline import ingest_and_publish

    paths = [Path(p) for p in args.paths]
    settings = IngestSettings(
        settle_seconds=args.settle, max_dump_bytes=config.ingest.max_dump_bytes
    )
    files = discover(paths)
    show_bar = not args.json and sys.stderr.isatty() and len(files) > 1
    with open_runtime(config) as runtime, logging_redirect_tqdm(), tqdm(
        total=len(files), unit="dump", file=sys.stderr, disable=not show_bar, leave=False
    ) as bar:
        report = ingest_and_publish(
            runtime, paths, settings, files=files, on_progress=lambda _result: bar.update()
        )
    if args.json:
        print_json(report.as_json())
    else:
        for dump in report.dumps:
            detail = dump.error if dump.status == "failed" else f"{dump.new} new of {dump.papers}"
            print(f"{dump.status:<10} {dump.path}: {detail}")
        for path, reason in report.deferred:
            print(f"{'deferred':<10} {path}: {reason}")
        print(f"{report.papers_total} papers stored")
    if report.machine_faults:
        first = report.machine_faults[0]
        print(f"digestd: ingest failed: {first.path}: {first.error}", file=sys.stderr)
        return 1
    named = {str(p.absolute()) for p in paths if not p.is_dir()}
    failed_named = [d for d in report.dumps if d.status == "failed" and d.path in named]
    missing_dirs = [p for p in paths if not p.exists()]
    if failed_named or missing_dirs:
        first = failed_named[0] if failed_named else None
        cause = f"{first.path}: {first.error}" if first else f"{missing_dirs[0]}: not found"
        print(f"digestd: ingest failed: {cause}", file=sys.stderr)
        return 1
    return 0


ORDER = 30


def register(commands: Commands) -> None:
    ingest = commands.command("ingest", cmd_ingest)
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="dump files or directories")
    ingest.add_argument("--json", action="store_true", help="print one JSON object")
    ingest.add_argument(
        "--settle", type=float, default=0.0, metavar="SECONDS",
        help="leave files modified less than SECONDS ago for later (default 0)",
    )
