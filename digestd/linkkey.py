"""The link key: the secret private-link tokens are derived from, in a file of its own.

It is kept outside the database on purpose: the database holds only hashes of tokens, so a
copy of it (a backup, a dump) hands out no link. Instances sharing one database should share
this file too, so the links each of them mails are the same.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from digestd.config import Config
from digestd.errors import ConfigError

KEY_FILE = "link.key"
KEY_BYTES = 32


def link_key_path(config: Config) -> Path:
    return config.paths.data_dir / KEY_FILE


def load_link_key(config: Config, *, create: bool) -> bytes | None:
    """The installation's link key; made (mode 0600) when missing and `create` is set."""
    path = link_key_path(config)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            return None
        return _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the link key: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ConfigError(f"{path}: not a link key (expected {KEY_BYTES * 2} hex digits)")
    return key


def _create(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_link_key_at(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create the link key: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


def load_link_key_at(path: Path) -> bytes:
    return bytes.fromhex(path.read_text(encoding="ascii").strip())
