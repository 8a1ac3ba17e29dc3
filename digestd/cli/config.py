"""digestd config: the effective configuration."""

from __future__ import annotations

import argparse

from digestd.cli.common import Commands, print_json
from digestd.config import Config


def cmd_config(args: argparse.Namespace, config: Config) -> int:
    """Show the effective configuration (secrets masked), for support requests."""
    print_json(config.redacted())
    return 0


ORDER = 90


def register(commands: Commands) -> None:
    commands.command("config", cmd_config, uses=())
