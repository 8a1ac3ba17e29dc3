"""The duplicate rate per crash: kill the digest sender at random moments while it sends.

    .venv/bin/python benchmarks/crash_duplicates.py [--kills 100] [--subscribers 200]
        [--database URL]

Plans two digests for each subscriber in a fresh SQLite database (or a fresh schema of the
PostgreSQL database named by --database), then starts senders (forks of this process) and
kills each with SIGKILL at a uniformly random moment within 50 ms after the SMTP server
accepted its first message, as tests/test_queue_crash.py does a few times. The server runs in
a process of its own on loopback, answers every 7th DATA with 451 and logs every message it
accepted before it answers 250. A digest accepted twice is a duplicate: the kill fell between
the server's acceptance and the ledger's commit of ``sent``.

Prints kills that landed mid-send, duplicates, and duplicates per kill, and checks that every
digest was sent and none failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crashloop import Sink, kill_loop
from test_queue_crash import crash_config, plan_two_digests_each

from digestd.runtime import Runtime
from digestd.store import Store

from support import free_port


def _database(url: str | None, directory: Path) -> tuple[str, object]:
    if not url:
        return f"sqlite:///{directory / 'digestd.db'}", None
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), (admin, schema)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        url, cleanup = _database(args.database, directory)
        port = free_port()
        config = crash_config(directory, port)
        try:
            store = Store.open(url)
            plan_two_digests_each(Runtime.open(config, store=store), args.subscribers)
            store.dispose()
            sink = Sink(port, directory / "accepted.log", every=7)
            started = time.monotonic()
            try:
                result = kill_loop(url, config, sink, kills=args.kills, seed=args.seed)
            finally:
                sink.close()
            store = Store.open(url, migrate=False)
            counts = store.delivery_counts()
            store.dispose()
        finally:
            if cleanup is not None:
                from sqlalchemy import text

                admin, schema = cleanup  # type: ignore[misc]
                with admin.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    backend = "postgresql" if args.database else "sqlite"
    rate = result.duplicates / result.effective_kills if result.effective_kills else 0.0
    print(f"{dt.date.today()} {backend}: {args.subscribers * 2} digests, "
          f"{result.kills} kills ({result.effective_kills} mid-send), "
          f"{result.duplicates} duplicates = {rate:.2f} per kill; ledger {counts}; "
          f"{time.monotonic() - started:.0f} s")
    ok = counts == {"sent": args.subscribers * 2} and result.duplicates <= result.kills
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
