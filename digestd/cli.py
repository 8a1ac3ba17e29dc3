"""The command line: argument handling only; each command calls into the pipeline.

Exit status: 0 on success; 1 when the work failed; 2 for a configuration or usage error. A
failure prints one line with the cause on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digestd import __version__
from digestd.config import Config, load_config
from digestd.errors import DigestdError
from digestd.log import setup_logging

log = logging.getLogger("digestd")

Handler = Callable[[argparse.Namespace, Config], int]


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


@contextmanager
def _store(config: Config):  # type: ignore[no-untyped-def]
    from digestd.store import Store

    config.paths.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(config.database_url)
    try:
        yield store
    finally:
        store.dispose()


@contextmanager
def _runtime(config: Config):  # type: ignore[no-untyped-def]
    from digestd.runtime import Runtime

    runtime = Runtime.open(config)
    try:
        yield runtime
    finally:
        runtime.close()


# Commands ------------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace, config: Config) -> int:
    """Ingest dump files, or every dump in the directories given, now.

    Unchanged files are skipped without parsing; the exit status is non-zero only when a path
    named on the command line (not a file found inside a named directory) failed.
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
    with _runtime(config) as runtime, logging_redirect_tqdm(), tqdm(
        total=len(files), unit="dump", file=sys.stderr, disable=not show_bar, leave=False
    ) as bar:
        report = ingest_and_publish(
            runtime, paths, settings, files=files, on_progress=lambda _result: bar.update()
        )
    if args.json:
        _print_json(report.as_json())
    else:
        for dump in report.dumps:
            detail = dump.error if dump.status == "failed" else f"{dump.new} new of {dump.papers}"
            print(f"{dump.status:<10} {dump.path}: {detail}")
        for path, reason in report.deferred:
            print(f"{'deferred':<10} {path}: {reason}")
        print(f"{report.papers_total} papers stored")
    named = {str(p.absolute()) for p in paths if not p.is_dir()}
    failed_named = [d for d in report.dumps if d.status == "failed" and d.path in named]
    missing_dirs = [p for p in paths if not p.exists()]
    if failed_named or missing_dirs:
        first = failed_named[0] if failed_named else None
        cause = f"{first.path}: {first.error}" if first else f"{missing_dirs[0]}: not found"
        print(f"digestd: ingest failed: {cause}", file=sys.stderr)
        return 1
    return 0


def cmd_papers(args: argparse.Namespace, config: Config) -> int:
    """List stored papers, newest first; with --topic, only the papers that topic matched."""
    with _store(config) as store:
        if args.topic is not None and args.topic not in {t.slug for t in store.topics()}:
            raise DigestdError(f"unknown topic {args.topic!r} (see: digestd topics list)")
        papers = store.papers(limit=args.limit, topic=args.topic)
        matches = store.paper_matches(p.id for p in papers)
    if args.json:
        _print_json(
            [{**p.as_json(), "topics": [m.slug for m in matches[p.id]]} for p in papers]
        )
        return 0
    for paper in papers:
        meta = paper.organization or (
            f"{paper.authors_count} authors" if paper.authors_count else "-"
        )
        published = paper.published.isoformat() if paper.published else "-"
        upvotes = paper.upvotes if paper.upvotes is not None else "-"
        print(f"{published}  {upvotes!s:>4}  {paper.title}  [{meta}]")
    return 0


def cmd_topics_list(args: argparse.Namespace, config: Config) -> int:
    """Show the configured topics, their queries and how many stored papers each matches."""
    with _runtime(config) as runtime:
        topics = runtime.store.topics()
        counts = runtime.store.topic_paper_counts()
    if args.json:
        _print_json(
            [
                {
                    "slug": t.slug,
                    "name": t.name,
                    "description": t.description,
                    "query": t.query,
                    "papers": counts.get(t.slug, 0),
                }
                for t in topics
            ]
        )
        return 0
    for topic in topics:
        print(f"{topic.slug:<24} {counts.get(topic.slug, 0):>5} papers  {topic.name}")
        print(f"{'':<24} query: {topic.query}")
    return 0


def cmd_topics_test(args: argparse.Namespace, config: Config) -> int:
    """Show which stored papers a query matches, best first, and the terms that matched."""
    from digestd.topics import Document, compile_query

    query = compile_query(args.query)
    with _store(config) as store:
        hits = []
        for paper in store.iter_papers():
            match = query.match(Document.from_text(paper.title, paper.abstract))
            if match is not None:
                hits.append((match, paper))
    hits.sort(key=lambda hit: (-hit[0].score, -(hit[1].upvotes or 0), hit[1].title))
    if args.limit:
        hits = hits[: args.limit]
    if args.json:
        _print_json(
            [
                {
                    "slug": paper.slug,
                    "title": paper.title,
                    "score": match.score,
                    "terms": list(match.terms),
                    "title_terms": list(match.title_terms),
                    "abstract_terms": list(match.abstract_terms),
                }
                for match, paper in hits
            ]
        )
        return 0
    for match, paper in hits:
        print(f"{match.score:6.1f}  {paper.title}")
        where = []
        if match.title_terms:
            where.append("title: " + ", ".join(match.title_terms))
        if match.abstract_terms:
            where.append("abstract: " + ", ".join(match.abstract_terms))
        print(f"        matched {', '.join(match.terms)} ({'; '.join(where)})")
    print(f"{len(hits)} papers match {args.query}")
    return 0


def cmd_subscribers_add(args: argparse.Namespace, config: Config) -> int:
    """Add a subscriber, or update the one with this address."""
    from digestd.subscribers import add_subscriber

    with _runtime(config) as runtime:
        record, created = add_subscriber(
            runtime.store, args.email, args.topic or [], cadence=args.cadence,
            timezone=args.tz, name=args.name,
        )
    verb = "added" if created else "updated"
    print(
        f"{verb} {record.email}: topics {', '.join(record.topics)}; {record.cadence}, "
        f"{record.timezone}"
    )
    return 0


def cmd_subscribers_list(args: argparse.Namespace, config: Config) -> int:
    """List subscribers with their topics, cadence and state."""
    with _store(config) as store:
        records = store.subscribers(status=args.status)
    if args.json:
        _print_json([r.as_json() for r in records])
        return 0
    for r in records:
        print(
            f"{r.email:<36} {r.status:<12} {r.cadence:<9} {r.timezone:<20} {' '.join(r.topics)}"
        )
    return 0


def cmd_subscribers_remove(args: argparse.Namespace, config: Config) -> int:
    """Remove a subscriber and everything recorded about them."""
    from digestd.subscribers import remove_subscriber

    with _store(config) as store:
        remove_subscriber(store, args.email)
    print(f"removed {args.email}")
    return 0


def cmd_subscribers_import(args: argparse.Namespace, config: Config) -> int:
    """Add or update subscribers from a CSV file (columns: email, topics, name, cadence, timezone).

    Topics are slugs separated by spaces, commas or semicolons. Bad rows are reported with their
    line number and skipped; the exit status is 1 if any row was refused.
    """
    from digestd.subscribers import import_csv

    path = Path(args.csv)
    try:
        text = sys.stdin.read() if args.csv == "-" else path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        print(f"digestd: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    with _runtime(config) as runtime:
        report = import_csv(runtime.store, text)
    for line, message in report.errors:
        print(f"{args.csv}:{line}: {message}", file=sys.stderr)
    print(f"{report.added} added, {report.updated} updated, {len(report.errors)} refused")
    return 1 if report.errors else 0


def cmd_feeds_build(args: argparse.Namespace, config: Config) -> int:
    """Write every public feed (all papers, each topic, the OPML) now.

    A file is replaced only when its content changed; the output names each file written.
    """
    from digestd.feeds import build_feeds

    with _runtime(config) as runtime:
        report = build_feeds(runtime)
    for name in report.written:
        print(f"{'written':<10} {config.feeds_dir / name}")
    for name in report.removed:
        print(f"{'removed':<10} {config.feeds_dir / name}")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged, "
          f"{len(report.removed)} removed in {config.feeds_dir}")
    return 0


def cmd_digest_preview(args: argparse.Namespace, config: Config) -> int:
    """Show the digest a subscriber would get now, without sending it or touching the ledger.

    --format html (the HTML part), text (the plain-text part) or eml (the whole message, to open
    in a mail client). Written to standard output unless --output names a file. A digest that
    is planned but not yet sent is shown as it will go out; otherwise the papers waiting for the
    subscriber's next digest, whether or not its time has come.
    """
    import datetime as dt

    from digestd.delivery import preview_digest
    from digestd.subscribers import find_subscriber

    with _runtime(config) as runtime:
        subscriber = find_subscriber(runtime.store, args.email)
        if subscriber is None:
            print(f"digestd: no subscriber with address {args.email!r}", file=sys.stderr)
            return 1
        composed = preview_digest(runtime, subscriber, dt.datetime.now(dt.UTC))
    if composed is None:
        print(
            f"nothing due for {subscriber.email}: no new paper matches their topics "
            "since their last digest"
        )
        return 0
    if args.format == "html":
        data = composed.html.encode()
    elif args.format == "text":
        data = composed.text.encode()
    else:
        message = composed.message
        data = message.as_bytes(policy=message.policy.clone(linesep="\n"))
    if args.output:
        Path(args.output).write_bytes(data)
        print(
            f"wrote the {args.format} digest for {subscriber.email} "
            f"({composed.digest.total} papers) to {args.output}"
        )
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def cmd_digest_send(args: argparse.Namespace, config: Config) -> int:
    """Plan the digests that are due now and send them, with any retries whose time has come.

    Uses the configured transport (mail.transport: the Maildir outbox or SMTP). --dry-run
    prints who would get what and writes nothing: no ledger rows, no mail. The exit status is 1
    when a digest could not be sent (it is retried later unless it failed for good).
    """
    import datetime as dt

    from digestd.delivery import plan_digests, send_pending

    with _runtime(config) as runtime:
        now = dt.datetime.now(dt.UTC)
        planned = plan_digests(runtime, now, dry_run=args.dry_run)
        sent = send_pending(runtime, now, dry_run=args.dry_run)
    if args.dry_run:
        for digest in planned.digests:
            print(
                f"would send {digest.email}: {digest.papers} papers "
                f"(batches {digest.digest_key})"
            )
        for pending in sent.pending:
            print(
                f"would send {pending.email}: {pending.papers} papers "
                f"(batches {pending.digest_key}, planned earlier, {pending.attempts} attempts)"
            )
        print(
            f"dry run: {len(planned.digests) + len(sent.pending)} digests would be sent, "
            f"{planned.nothing_new} subscribers due with nothing new; nothing written"
        )
        return 0
    where = config.outbox_dir if config.mail.transport == "maildir" else (
        f"{config.smtp.host}:{config.smtp.port}"
    )
    print(
        f"{planned.planned} planned, {sent.sent} sent via {config.mail.transport} {where}, "
        f"{sent.retrying} to retry, {sent.failed} failed, {sent.deferred} deferred; "
        f"{planned.nothing_new} subscribers due with nothing new"
    )
    unsent = sent.retrying + sent.failed + sent.deferred
    if unsent:
        print(f"digestd: {unsent} digests not sent; the log says why", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    """Run the daemon in the foreground: scheduler and HTTP server.

    SIGTERM or SIGINT stop it cleanly; SIGHUP reloads the configuration, topics and templates.
    """
    from digestd.daemon import run

    return run(config, config_path=args.config)


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """Show what was ingested last, what is stored and pending, and when each job runs next."""
    from digestd.daemon import STATUS_FILE

    with _store(config) as store:
        dumps = store.list_dumps(limit=5)
        summary = {
            "papers": store.count_papers(),
            "subscribers": store.subscriber_counts(),
            "deliveries": store.delivery_counts(),
            "last_dumps": [
                {
                    "path": d.path,
                    "status": d.status,
                    "papers": d.papers_count,
                    "new": d.new_count,
                    "error": d.error,
                    "at": d.updated_at.isoformat(),
                }
                for d in dumps
            ],
        }
    status_file = config.paths.data_dir / STATUS_FILE
    try:
        daemon_status = json.loads(status_file.read_text())
        # A daemon killed outright leaves its last file behind: say it is not running.
        daemon_status["running"] = bool(daemon_status.get("jobs")) and _alive(
            int(daemon_status.get("pid", 0))
        )
    except (OSError, ValueError, TypeError, AttributeError):
        daemon_status = None
    summary["daemon"] = daemon_status
    if args.json:
        _print_json(summary)
        return 0
    print(f"papers:      {summary['papers']}")
    subscribers = summary["subscribers"]
    print("subscribers: " + (", ".join(f"{n} {s}" for s, n in subscribers.items()) or "none"))
    deliveries = summary["deliveries"]
    print("deliveries:  " + (", ".join(f"{n} {s}" for s, n in deliveries.items()) or "none"))
    print("last dumps:")
    for d in summary["last_dumps"]:
        detail = d["error"] if d["status"] == "failed" else f"{d['new']} new of {d['papers']}"
        print(f"  {d['at'][:19]}  {d['status']:<9} {d['path']}: {detail}")
    daemon = summary["daemon"]
    if daemon and daemon["running"]:
        print(f"daemon (pid {daemon['pid']}, as of {daemon['updated'][:19]}): next runs")
        # Several daemons may share one PostgreSQL database; only the leader dispatches.
        leader = daemon.get("leader")
        if leader is not None:
            role = "true" if leader else "false (another instance dispatches; jobs paused here)"
            print(f"  leader:       {role}")
        for job, at in daemon["jobs"].items():
            print(f"  {job:<13} {at or 'paused'}")
    elif daemon:
        print(f"daemon: not running (last seen {daemon.get('updated', '?')[:19]})")
    else:
        print("daemon: no status recorded (not running, or not started yet)")
    last = (daemon or {}).get("last") or {}
    if last.get("message"):
        print(f"last action: {last['message']} ({last.get('at', '?')[:19]})")
    return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running as the service's own user
        return True
    return True


def cmd_config(args: argparse.Namespace, config: Config) -> int:
    """Show the effective configuration (secrets masked), for support requests."""
    _print_json(config.redacted())
    return 0


# Parser ----------------------------------------------------------------------------------------


def _doc(handler: Handler) -> tuple[str, str]:
    doc = (handler.__doc__ or "").strip()
    return doc.splitlines()[0], doc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digestd",
        description="Turns dumps of paper listings into RSS/Atom feeds and e-mail digests.",
    )
    parser.add_argument("--version", action="version", version=f"digestd {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $DIGESTD_CONFIG, else config/digestd.toml if it "
        "exists, else built-in defaults)",
    )
    common.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler) -> argparse.ArgumentParser:
        return add_to(commands, name, handler, common)

    add("run", cmd_run)
    status = add("status", cmd_status)
    status.add_argument("--json", action="store_true", help="print one JSON object")

    ingest = add("ingest", cmd_ingest)
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="dump files or directories")
    ingest.add_argument("--json", action="store_true", help="print one JSON object")
    ingest.add_argument(
        "--settle", type=float, default=0.0, metavar="SECONDS",
        help="leave files modified less than SECONDS ago for later (default 0)",
    )

    papers = add("papers", cmd_papers)
    papers.add_argument("--json", action="store_true", help="print a JSON list")
    papers.add_argument("--limit", type=int, default=None, help="at most N papers")
    papers.add_argument("--topic", metavar="SLUG", help="only the papers this topic matched")

    topics = add_group(
        commands, "topics", "Show the topics and try queries against the stored papers."
    )
    topic_commands = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    topics_list = add_to(topic_commands, "list", cmd_topics_list, common)
    topics_list.add_argument("--json", action="store_true", help="print a JSON list")
    topics_test = add_to(topic_commands, "test", cmd_topics_test, common)
    topics_test.add_argument("query", metavar="QUERY", help='e.g. \'"kv cache" OR quantiz*\'')
    topics_test.add_argument("--json", action="store_true", help="print a JSON list")
    topics_test.add_argument("--limit", type=int, default=None, help="at most N papers")

    subscribers = add_group(
        commands, "subscribers", "Manage who gets digests: add, list, remove, import."
    )
    subscriber_commands = subscribers.add_subparsers(
        dest="subscribers_command", metavar="ACTION", required=True
    )
    sub_add = add_to(subscriber_commands, "add", cmd_subscribers_add, common)
    sub_add.add_argument("email", metavar="EMAIL", help="the subscriber's address")
    sub_add.add_argument(
        "--topic", action="extend", nargs="+", metavar="SLUG",
        help="topic to follow (repeatable; needed for a new subscriber)",
    )
    sub_add.add_argument(
        "--cadence", choices=["immediate", "daily", "weekly"],
        help="right after a batch, at schedule.daily_time, or weekly (default daily)",
    )
    sub_add.add_argument("--tz", metavar="ZONE", help="IANA time zone, e.g. Europe/Berlin")
    sub_add.add_argument("--name", help="name shown in the To header")
    sub_list = add_to(subscriber_commands, "list", cmd_subscribers_list, common)
    sub_list.add_argument("--json", action="store_true", help="print a JSON list")
    sub_list.add_argument(
        "--status", choices=["pending", "active", "paused", "unsubscribed"],
        help="only subscribers in this state",
    )
    sub_remove = add_to(subscriber_commands, "remove", cmd_subscribers_remove, common)
    sub_remove.add_argument("email", metavar="EMAIL", help="the subscriber's address")
    sub_import = add_to(subscriber_commands, "import", cmd_subscribers_import, common)
    sub_import.add_argument("csv", metavar="CSV", help="CSV file, or - for standard input")

    feeds = add_group(commands, "feeds", "Write the RSS/Atom feeds and the OPML list.")
    feed_commands = feeds.add_subparsers(dest="feeds_command", metavar="ACTION", required=True)
    add_to(feed_commands, "build", cmd_feeds_build, common)

    digest = add_group(commands, "digest", "Preview and send the e-mail digests.")
    digest_commands = digest.add_subparsers(dest="digest_command", metavar="ACTION", required=True)
    digest_preview = add_to(digest_commands, "preview", cmd_digest_preview, common)
    digest_preview.add_argument("email", metavar="EMAIL", help="the subscriber's address")
    digest_preview.add_argument(
        "--format", choices=["html", "text", "eml"], default="html",
        help="the HTML part, the text part, or the whole message (default html)",
    )
    digest_preview.add_argument("--output", metavar="FILE", help="write here, not to stdout")
    digest_send = add_to(digest_commands, "send", cmd_digest_send, common)
    digest_send.add_argument(
        "--dry-run", action="store_true", help="print who would get what; write nothing"
    )

    add("config", cmd_config)
    return parser


def add_group(group: Any, name: str, description: str) -> argparse.ArgumentParser:
    """Add a command that only groups actions (`digestd topics list`, ...)."""
    return group.add_parser(name, help=description, description=description)


def add_to(
    group: Any, name: str, handler: Handler, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    """Add a command to a group of subcommands, its help taken from the handler's docstring."""
    summary, description = _doc(handler)
    sub = group.add_parser(name, parents=[common], help=summary, description=description)
    sub.set_defaults(handler=handler)
    return sub


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level.upper())
    try:
        config = load_config(args.config)
        return args.handler(args, config)
    except DigestdError as exc:
        print(f"digestd: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
