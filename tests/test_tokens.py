"""Private-link tokens are stored as hashes: the database alone hands out no link, and a new
link key (a restore on another machine) keeps every link handed out before working."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from digestd.config import Config, PathsConfig, TopicConfig
from digestd.linkkey import link_key_path, load_link_key
from digestd.runtime import Runtime
from digestd.subscribers import add_subscriber

TOPICS = (TopicConfig("kv-cache", "KV cache", '"kv cache"', "KV"),)


def _config(tmp_path: Path) -> Config:
    data = tmp_path / "var"
    data.mkdir(exist_ok=True)
    return dataclasses.replace(
        Config(), paths=PathsConfig(seeds_dir=tmp_path, data_dir=data), topics=TOPICS
    )


def test_the_database_holds_no_token(tmp_path: Path) -> None:
    config = _config(tmp_path)
    runtime = Runtime.open(config)
    try:
        ada, _ = add_subscriber(runtime.store, "ada@example.org", ["kv-cache"])
        bob, _ = add_subscriber(runtime.store, "bob@example.org", ["kv-cache"])
        runtime.store.checkpoint()
        assert len(ada.token) >= 40 and ada.token != bob.token
        assert runtime.store.subscriber_by_token(ada.token).id == ada.id
    finally:
        runtime.close()
    database = (config.paths.data_dir / "digestd.db").read_bytes()
    key = link_key_path(config)
    assert key.stat().st_mode & 0o777 == 0o600
    for token in (ada.token, bob.token):
        assert token.encode() not in database
        assert token.encode() not in key.read_bytes()
    # what a copy of the database offers: hashes, and the salts they came from
    with sqlite3.connect(config.paths.data_dir / "digestd.db") as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(subscribers)")]
    assert "token" not in columns


def test_a_new_link_key_keeps_old_links_and_makes_new_ones(tmp_path: Path) -> None:
    config = _config(tmp_path)
    runtime = Runtime.open(config)
    ada, _ = add_subscriber(runtime.store, "ada@example.org", ["kv-cache"])
    runtime.close()
    old_key = load_link_key(config, create=False)
    link_key_path(config).unlink()  # restored on a machine without the key file

    runtime = Runtime.open(config)
    try:
        assert load_link_key(config, create=False) != old_key
        found = runtime.store.subscriber_by_token(ada.token)
        assert found is not None and found.id == ada.id  # the link mailed before
        assert found.token != ada.token
        assert runtime.store.subscriber_by_token(found.token).id == ada.id  # links mailed now
        # "Reset my links": every token of the subscriber, old key's and new, stops working
        new = runtime.store.rotate_token(ada.id)
        assert runtime.store.subscriber_by_token(ada.token) is None
        assert runtime.store.subscriber_by_token(found.token) is None
        assert runtime.store.subscriber_by_token(new).id == ada.id
    finally:
        runtime.close()


@pytest.mark.parametrize("text", ["", "not hex", "abcd"])
def test_a_broken_key_file_is_a_configuration_error(tmp_path: Path, text: str) -> None:
    from digestd.errors import ConfigError

    config = _config(tmp_path)
    link_key_path(config).write_text(text)
    with pytest.raises(ConfigError, match=r"link\.key: not a link key"):
        load_link_key(config, create=True)
