"""digestd quickstart: a working directory ready for a first `digestd run`."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands
from digestd.config import Config

ORDER = 5


def cmd_quickstart(args: argparse.Namespace, config: Config) -> int:
    """Prepare a first run: sample dumps in the seeds directory, the database, a demo reader.

    Copies the sample dumps shipped with digestd into the seeds directory (only when it does
    not exist yet) and adds reader@example.org on the immediate cadence, so the `digestd run`
    that follows ingests the samples, writes the feeds and mails a digest to the outbox within
    its first minute. Safe to run again: it changes nothing that is already there.
    """
    from digestd.quickstart import prepare

    for line in prepare(args.config):
        print(f"quickstart: {line}")
    print(
        f"quickstart: now run digestd run, open {config.base_url}/ once it is up; digests land "
        f"in {config.outbox_dir}/ (read them with: mutt -f {config.outbox_dir})"
    )
    return 0


def register(commands: Commands) -> None:
    commands.command("quickstart", cmd_quickstart, uses=())
