"""digestd config: the effective configuration, and whether the mail sender can send."""

from __future__ import annotations

import argparse
import sys

from digestd.cli.common import Commands, print_json
from digestd.config import Config


def cmd_config(args: argparse.Namespace, config: Config) -> int:
    """Show the effective configuration (secrets masked), for support requests.

    --check prints nothing but problems: the configuration loads, and a sender set up for
    SMTP can send real mail (From domain, base URL, DKIM key). Exit status 2 with one line
    on stderr when it cannot.
    """
    if args.check:
        from digestd.delivery.identity import check_sender

        for note in check_sender(config):
            print(f"digestd: note: {note}", file=sys.stderr)
        return 0
    print_json(config.redacted())
    return 0


ORDER = 90


def register(commands: Commands) -> None:
    command = commands.command("config", cmd_config, uses=())
    command.add_argument(
        "--check", action="store_true",
        help="check the configuration and the mail sender; print only problems",
    )
