"""The environment file next to the configuration (``digestd.env``), read by the CLI too.

systemd hands the service ``/etc/digestd/digestd.env`` (``EnvironmentFile=``); a command an
operator types reads the same file, so both see one configuration: the same database URL,
public base URL and SMTP password. Variables set in the real environment win, as they do over
the configuration file. The format is systemd's: ``KEY=value`` lines, ``#`` comments, values
optionally in single or double quotes.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from digestd.errors import ConfigError

ENV_FILE = "digestd.env"


def parse_env_file(text: str, source: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{source} line {number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def env_file_for(config_path: Path | None) -> Path | None:
    """``digestd.env`` beside the configuration file, if there is one."""
    if config_path is None:
        return None
    candidate = config_path.parent / ENV_FILE
    return candidate if candidate.exists() else None


def apply_env_file(
    config_path: Path | None, environ: MutableMapping[str, str] = os.environ
) -> Path | None:
    """Put the DIGESTD_* variables of the env file into `environ`, unless already set there."""
    path = env_file_for(config_path)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read: {exc.strerror} (run digestd as the service's user)"
        ) from exc
    for key, value in parse_env_file(text, str(path)).items():
        if key.startswith("DIGESTD_"):
            environ.setdefault(key, value)
    return path
