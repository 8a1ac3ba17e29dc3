"""The command line: argument handling only; each command calls into the pipeline.

One module per command group (`ingest`, `subscribers`, ...), each with a `register(commands)`
that adds its commands; modules are found in this package, so a new command group is a new
module. Global options (`--config`, `--log-level`) work before or after the command.

Exit status: 0 on success; 1 when the work failed; 2 for a configuration or usage error. A
failure prints one line with the cause on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
from collections.abc import Sequence

from digestd import __version__
from digestd.cli.common import Commands
from digestd.config_load import load_config, require_dirs, resolve_config_path
from digestd.envfile import apply_env_file
from digestd.errors import DigestdError
from digestd.log import setup_logging

__all__ = ["build_parser", "main"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

CONFIG_HELP = (
    "configuration file (default: $DIGESTD_CONFIG, else config/digestd.toml if it exists, "
    "else built-in defaults)"
)


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"invalid level {value!r} (choose from {', '.join(LOG_LEVELS)})"
        )
    return level


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # Given after the command, an option overrides the one given before it; absent there, it
    # must not reset it, hence no default below the top level.
    keep = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--config", metavar="PATH", help=CONFIG_HELP, **({"default": None} | keep)
    )
    parser.add_argument(
        "--log-level", type=_log_level, metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]} (default: log.level, INFO)",
        **({"default": None} | keep),
    )


def _command_modules() -> list[str]:
    """The modules of this package that add commands, in the order their `ORDER` gives."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            found.append((getattr(module, "ORDER", 100), info.name, module))
    return [name for _, name, _ in sorted(found)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digestd",
        description="Turns dumps of paper listings into RSS/Atom feeds and e-mail digests.",
    )
    parser.add_argument("--version", action="version", version=f"digestd {__version__}")
    _global_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, defaults=False)
    commands = Commands(parser, common, dest="command", metavar="COMMAND")
    for name in _command_modules():
        importlib.import_module(f"{__name__}.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level or "INFO")
    try:
        apply_env_file(resolve_config_path(args.config))
        config = load_config(args.config, check_dirs=False)
        setup_logging(args.log_level or config.log.level, config.log.format)
        require_dirs(config, *args.uses)
        return args.handler(args, config)
    except DigestdError as exc:
        print(f"digestd: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`digestd status | head`): stop quietly, as a C tool killed by
        # SIGPIPE would. Output still buffered must not fail again at interpreter exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
