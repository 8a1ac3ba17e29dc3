"""Backup, wipe, restore: the same papers, subscribers, tokens and delivery ledger, and a
private feed URL handed out before the backup works after the restore; the same through a
subscribers export with token hashes. Opt-outs stay opted out."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from digestd import cli, links
from digestd.config_load import load_config
from digestd.runtime import Runtime
from digestd.web.server import ServerThread, loopback_socket, make_server

TOPICS = ["llm-inference", "diffusion"]


def _setup(tmp_path: Path) -> list[str]:
    data, seeds = tmp_path / "var", tmp_path / "seeds"
    data.mkdir()
    seeds.mkdir()
    config = tmp_path / "digestd.toml"
    config.write_text(f'[paths]\ndata_dir = "{data}"\nseeds_dir = "{seeds}"\n')
    return ["--config", str(config)]


def _snapshot(common: list[str]) -> dict[str, object]:
    runtime = Runtime.open(load_config(common[1]))
    try:
        store = runtime.store
        with store.engine.connect() as connection:
            deliveries = connection.execute(text(
                "SELECT s.email_key, d.digest_key, d.status, d.message_id FROM deliveries d "
                "JOIN subscribers s ON s.id = d.subscriber_id ORDER BY 1, 2"
            )).all()
        subscribers = store.subscribers()
        return {
            "papers": sorted(p.key for p in store.papers()),
            "subscribers": [r.as_json() for r in subscribers],
            "hashes": sorted(h for hs in store.token_hashes().values() for h in hs),
            "deliveries": [tuple(row) for row in deliveries],
        }
    finally:
        runtime.close()


def _private_feed_status(common: list[str], token: str) -> int:
    runtime = Runtime.open(load_config(common[1]))
    sock = loopback_socket()
    try:
        with ServerThread(make_server(runtime), sock) as server:
            url = links.private_feed_url(server.url, token, "atom")
            return httpx.get(url, timeout=10).status_code
    finally:
        runtime.close()


def _wipe(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "var")
    (tmp_path / "var").mkdir()


def _token(common: list[str], email: str) -> str:
    runtime = Runtime.open(load_config(common[1]))
    try:
        from digestd.subscribers import find_subscriber

        record = find_subscriber(runtime.store, email)
        assert record is not None
        return record.token
    finally:
        runtime.close()


def test_backup_wipe_restore(
    tmp_path: Path, seed_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    common = _setup(tmp_path)
    for address in ("ada@example.org", "bob@example.org", "carol@example.org"):
        assert cli.main(["subscribers", "add", address, "--topic", *TOPICS,
                         "--cadence", "immediate", *common]) == 0
    assert cli.main(["ingest", *map(str, seed_files), *common]) == 0
    assert cli.main(["digest", "send", *common]) == 0
    runtime = Runtime.open(load_config(common[1]))
    carol = runtime.store.subscriber("carol@example.org")
    runtime.store.set_subscriber_status(carol.id, "unsubscribed")
    runtime.close()
    token = _token(common, "ada@example.org")
    assert _private_feed_status(common, token) == 200  # handed out before the backup
    before = _snapshot(common)
    assert len(before["papers"]) == 444 and len(before["deliveries"]) == 3
    capsys.readouterr()

    backup = tmp_path / "backup.db"
    assert cli.main(["backup", str(backup), *common]) == 0
    assert cli.main(["backup", str(backup), *common]) == 2  # never overwritten
    _wipe(tmp_path)  # the database and the link key gone
    shutil.copyfile(backup, tmp_path / "var" / "digestd.db")
    restored = _snapshot(common)
    # every token hash came back; the new link key added its own for the links mailed next
    assert set(before["hashes"]) < set(restored["hashes"])
    assert {**restored, "hashes": None} == {**before, "hashes": None}
    assert _private_feed_status(common, token) == 200
    assert token.encode() not in backup.read_bytes()

    # The same through an export with token hashes, into an empty database.
    exported = tmp_path / "subscribers.json"
    assert cli.main(["subscribers", "export", "--format", "json", "--token-hashes",
                     "--output", str(exported), *common]) == 0
    rows = json.loads(exported.read_text())
    assert {r["email"]: r["status"] for r in rows} == {
        "ada@example.org": "active", "bob@example.org": "active",
        "carol@example.org": "unsubscribed",
    }
    _wipe(tmp_path)
    assert cli.main(["migrate", *common]) == 0
    assert cli.main(["subscribers", "import", str(exported), *common]) == 0
    after = _snapshot(common)
    assert [(r["email"], r["status"], r["topics"]) for r in after["subscribers"]] == [
        (r["email"], r["status"], r["topics"]) for r in before["subscribers"]
    ]
    assert set(before["hashes"]) <= set(after["hashes"])
    assert _private_feed_status(common, token) == 200

    # Opt-outs stay opted out: an import that says active, and `subscribers add`, leave carol.
    capsys.readouterr()
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,topics\ncarol@example.org,diffusion\ndan@example.org,diffusion\n")
    assert cli.main(["subscribers", "import", str(csv_file), *common]) == 0
    out = capsys.readouterr().out
    assert "kept unsubscribed: carol@example.org" in out and "1 added" in out
    assert cli.main(["subscribers", "add", "carol@example.org", "--topic", "diffusion",
                     *common]) == 1
    assert "not subscribed again without --resubscribe" in capsys.readouterr().err
    assert cli.main(["subscribers", "list", "--status", "unsubscribed", "--json", *common]) == 0
    assert [r["email"] for r in json.loads(capsys.readouterr().out)] == ["carol@example.org"]
    assert cli.main(["subscribers", "import", "--resubscribe", str(csv_file), *common]) == 0
    assert cli.main(["subscribers", "list", "--status", "unsubscribed", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == []


def test_cleanup_applies_retention(
    tmp_path: Path, seed_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    common = _setup(tmp_path)
    config = Path(common[1])
    config.write_text(config.read_text() + '[retention]\ndumps = "move"\n')
    seeds = tmp_path / "seeds"
    for seed in seed_files:
        shutil.copy2(seed, seeds / seed.name)
    assert cli.main(["subscribers", "add", "ada@example.org", "--topic", *TOPICS,
                     "--cadence", "immediate", *common]) == 0
    assert cli.main(["ingest", str(seeds), *common]) == 0
    assert cli.main(["digest", "send", *common]) == 0
    runtime = Runtime.open(load_config(common[1]))
    with runtime.store.engine.begin() as connection:  # make everything a year old
        connection.execute(text("UPDATE deliveries SET sent_at = '2025-01-01 00:00:00.000000'"))
        connection.execute(text("UPDATE sightings SET seen_at = '2025-01-01 00:00:00.000000'"))
        sightings = connection.execute(text("SELECT count(*) FROM sightings")).scalar()
    runtime.close()
    assert sightings >= 444
    for mail in (tmp_path / "var" / "outbox" / "new").iterdir():
        os.utime(mail, (1735689600, 1735689600))
    capsys.readouterr()
    assert cli.main(["cleanup", "--dry-run", *common]) == 0
    assert capsys.readouterr().out.strip() == (
        f"would remove 1 deliveries, {sightings} sightings, 1 outbox mails; would move 5 dumps"
    )
    assert sorted(p.name for p in seeds.iterdir()) == sorted(p.name for p in seed_files)
    assert cli.main(["cleanup", *common]) == 0
    assert "removed 1 deliveries" in capsys.readouterr().out
    assert sorted(p.name for p in (seeds / ".done").iterdir()) == sorted(
        p.name for p in seed_files
    )
    assert list((tmp_path / "var" / "outbox" / "new").iterdir()) == []
    capsys.readouterr()
    assert cli.main(["cleanup", "--dry-run", *common]) == 0
    assert "would remove 0 deliveries, 0 sightings" in capsys.readouterr().out


def test_backup_on_postgresql_points_to_pg_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_schema_url: str
) -> None:
    common = _setup(tmp_path)
    url = postgres_schema_url.replace("postgres@", "postgres:not-shown@", 1)
    Path(common[1]).write_text(Path(common[1]).read_text() + f"[database]\nurl = '{url}'\n")
    assert cli.main(["migrate", *common]) == 0
    capsys.readouterr()
    assert cli.main(["backup", str(tmp_path / "copy.dump"), *common]) == 1
    err = capsys.readouterr().err
    assert "pg_dump --format=custom" in err and "link.key" in err
    assert "not-shown" not in err and err.count("\n") == 1
    assert not (tmp_path / "copy.dump").exists()
