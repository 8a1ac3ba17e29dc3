"""digestd run and status: the daemon, and what it did last."""

from __future__ import annotations

import argparse
import json
import os

from digestd.cli.common import Commands, open_store, print_json
from digestd.config import Config


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    """Run the daemon in the foreground: scheduler and HTTP server.

    SIGTERM or SIGINT stop it cleanly; SIGHUP reloads the configuration, topics and templates.
    """
    from digestd.daemon import run

    return run(config, config_path=args.config)


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """Show what was ingested last, what is stored and pending, and when each job runs next."""
    from digestd.daemon import STATUS_FILE
    from digestd.store.schema import display_url

    with open_store(config) as store:
        dumps = store.list_dumps(limit=5)
        summary = {
            "database": display_url(store.engine),
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
        print_json(summary)
        return 0
    print(f"database:    {summary['database']}")
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


ORDER = 10


def register(commands: Commands) -> None:
    commands.command("run", cmd_run, uses=("seeds_dir", "data_dir", "templates_dir"))
    status = commands.command("status", cmd_status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
