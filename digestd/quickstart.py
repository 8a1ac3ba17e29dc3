"""Prepare a working directory for a first run on the embedded defaults.

Creates seeds/ with the sample dumps (only when it does not exist yet), var/ with the
SQLite database, and a demo subscriber on the immediate cadence, so the daemon started next
ingests the samples, publishes the feeds and writes a digest to the Maildir outbox within
its first minute. Safe to run again: it changes nothing that is already there.
"""

from __future__ import annotations

import shutil
import sys

from digestd.config_load import load_config
from digestd.errors import DigestdError
from digestd.log import setup_logging
from digestd.resources import shipped
from digestd.runtime import Runtime
from digestd.subscribers import add_subscriber

DEMO_ADDRESS = "reader@example.org"
DEMO_TOPICS = ("llm-inference", "diffusion", "agents")


def prepare(config_path: str | None = None) -> list[str]:
    """Set up seeds, data directory and demo subscriber; returns what was done."""
    done = []
    config = load_config(config_path)
    seeds = config.paths.seeds_dir
    if not seeds.exists():
        seeds.mkdir(parents=True)
        # The text dumps 000-004, then one dump of each structured source (005-007), which
        # list papers of the text dumps again with their arXiv ids, authors and links.
        for sample in sorted(p for p in shipped("samples").iterdir() if not p.name.startswith(".")):
            shutil.copy2(sample, seeds / sample.name)
        done.append(f"copied {len(list(seeds.iterdir()))} sample dumps into {seeds}/")
    runtime = Runtime.open(config)
    try:
        if not runtime.store.subscribers():
            known = {t.slug for t in runtime.store.topics()}
            topics = [slug for slug in DEMO_TOPICS if slug in known] or sorted(known)[:2]
            add_subscriber(
                runtime.store, DEMO_ADDRESS, topics, cadence="immediate", name="Demo Reader"
            )
            done.append(f"added demo subscriber {DEMO_ADDRESS} ({', '.join(topics)}, immediate)")
    finally:
        runtime.close()
    return done


def main() -> int:
    setup_logging("WARNING")
    try:
        done = prepare()
    except DigestdError as exc:
        print(f"digestd: {exc}", file=sys.stderr)
        return exc.exit_status
    config = load_config(None)
    for line in done:
        print(f"quickstart: {line}")
    print(
        f"quickstart: open {config.base_url}/ once the daemon is up; digests land in "
        f"{config.outbox_dir}/ (read them with: mutt -f {config.outbox_dir})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
