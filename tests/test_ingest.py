"""Ingest against a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digestd.ingest import IngestSettings, discover, ingest_file, ingest_paths
from digestd.store import Store
from digestd.store.models import Batch, Paper, Sighting

EXPECTED_NEW = [52, 33, 59, 35, 265]


def _by_title(store: Store, prefix: str):  # type: ignore[no-untyped-def]
    matches = [p for p in store.papers() if p.title.startswith(prefix)]
    assert len(matches) == 1, f"{prefix!r}: {len(matches)} papers"
    return matches[0]


def test_seeds_in_one_call(store: Store, seed_files: list[Path]) -> None:
    report = ingest_paths(store, seed_files)
    assert [d.status for d in report.dumps] == ["ingested"] * 5
    assert [d.new for d in report.dumps] == EXPECTED_NEW
    assert sum(d.papers for d in report.dumps) == 487
    assert report.papers_total == 444
    assert store.count_papers() == 444
    # one sighting per listing of a distinct paper in a dump
    assert store.sighting_count() == 487
    assert len(report.batch_ids) == 5


def test_seeds_one_by_one_then_again(store: Store, seed_files: list[Path]) -> None:
    news = [ingest_paths(store, [f]).dumps[0].new for f in seed_files]
    assert news == EXPECTED_NEW
    again = ingest_paths(store, seed_files)
    assert [d.status for d in again.dumps] == ["unchanged"] * 5
    assert [d.new for d in again.dumps] == [0] * 5
    assert again.batch_ids == []
    assert store.count_papers() == 444


def test_directory_is_read_in_name_order(store: Store, tmp_path: Path, seed_files) -> None:
    for f in reversed(seed_files):
        shutil.copy(f, tmp_path / f.name)
    report = ingest_paths(store, [tmp_path])
    assert [Path(d.path).name for d in report.dumps] == [f.name for f in seed_files]
    assert [d.new for d in report.dumps] == EXPECTED_NEW


def test_facts_of_the_seeds(store: Store, seed_files: list[Path]) -> None:
    ingest_paths(store, seed_files[:1])
    easier = _by_title(store, "Easier Painting Than Thinking")
    assert easier.authors_count == 9
    assert easier.published == dt.date(2025, 9, 3)
    ingest_paths(store, seed_files[1:])
    easier_again = _by_title(store, "Easier Painting Than Thinking")
    assert easier_again.published == dt.date(2025, 9, 3)
    assert easier_again.id == easier.id

    tensorbleu = _by_title(store, "TensorBLEU")
    assert tensorbleu.organization == "Reactive AI"
    assert tensorbleu.organization_id == "ReactiveAI"
    assert tensorbleu.upvotes == 2

    compact = _by_title(store, "Dense Reward for Free in Reinforcement Learning")
    assert compact.abstract.startswith("Reinforcement Learning from Human Feedback (RLHF)")
    assert compact.authors_count is None and compact.organization is None
    assert compact.published is None and compact.upvotes is None


def test_seen_again_updates_upvotes_and_fills_metadata(store: Store, tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    first.write_text(_card_dump([("Sparse Widgets", "About widgets.", None)]))
    ingest_paths(store, [first])
    paper = _by_title(store, "Sparse Widgets")
    assert paper.upvotes is None and paper.authors_count is None

    second = tmp_path / "b.txt"
    second.write_text(
        _card_dump([("Sparse  widgets", "About widgets.", ("  • 4 authors", "Mar 5 7"))])
    )
    result = ingest_paths(store, [second]).dumps[0]
    assert (result.status, result.new) == ("ingested", 0)
    updated = _by_title(store, "Sparse Widgets")
    assert updated.id == paper.id
    assert (updated.upvotes, updated.authors_count) == (7, 4)
    assert updated.title == "Sparse Widgets"  # identity and first title kept
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Sighting)) == 2


def test_changed_file_brings_only_unseen_papers(store: Store, tmp_path: Path) -> None:
    dump = tmp_path / "d.txt"
    dump.write_text(_card_dump([("Alpha Paper", "A.", None), ("Beta Paper", "B.", None)]))
    assert ingest_paths(store, [dump]).dumps[0].new == 2
    dump.write_text(
        _card_dump([("Alpha Paper", "A.", None), ("Gamma Paper", "C.", None)])
    )
    result = ingest_paths(store, [dump]).dumps[0]
    assert (result.status, result.papers, result.new) == ("ingested", 2, 1)
    assert store.count_papers() == 3


def test_same_content_under_a_new_name_brings_nothing(store, tmp_path, seed_files) -> None:
    ingest_paths(store, seed_files[:1])
    copy = tmp_path / "renamed.txt"
    shutil.copy(seed_files[0], copy)
    result = ingest_paths(store, [copy]).dumps[0]
    assert (result.status, result.new, result.papers) == ("unchanged", 0, 52)
    assert store.count_papers() == 52


def test_unchanged_file_costs_no_parse(store, seed_files, monkeypatch) -> None:
    ingest_paths(store, seed_files[:2])
    calls = []
    import digestd.ingest as ingest_module

    monkeypatch.setattr(ingest_module, "parse_dump", lambda *a, **k: calls.append(a))
    os.utime(seed_files[0])  # touched, same content: hashed, still not parsed
    report = ingest_paths(store, seed_files[:2])
    assert [d.status for d in report.dumps] == ["unchanged", "unchanged"]
    assert calls == []


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("binary.txt", bytes(range(256)) * 8, "binary"),
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"\n\n   \n", "empty"),
        ("prose.txt", b"Dear diary,\n\ntoday nothing happened at all.\n", "layout"),
        ("json.txt", b'{"papers": [{"title": "x"}]}\n', 'item 1: "paper" is null'),
    ],
)
def test_bad_input_fails_alone(store, tmp_path, seed_files, name, content, cause) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    good = tmp_path / "good.txt"
    shutil.copy(seed_files[0], good)
    report = ingest_paths(store, [bad, good])
    failed, ingested = report.dumps
    assert failed.status == "failed"
    assert cause in failed.error
    assert "\n" not in failed.error
    assert ingested.status == "ingested" and ingested.new == 52
    entry = store.ledger_entry(str(bad.absolute()))
    assert entry is not None and entry.status == "failed" and cause in (entry.error or "")


def test_unreadable_path_is_failed(store: Store, tmp_path: Path) -> None:
    link = tmp_path / "dangling.txt"
    link.symlink_to(tmp_path / "nowhere.txt")
    result = ingest_file(store, link, IngestSettings())
    assert result is not None and result.status == "failed"
    assert "cannot read" in (result.error or "")


def test_failed_content_does_not_touch_stored_papers(store, tmp_path, seed_files) -> None:
    dump = tmp_path / "d.txt"
    shutil.copy(seed_files[0], dump)
    ingest_paths(store, [dump])
    dump.write_bytes(b"\x00\x01garbage" * 100)
    result = ingest_paths(store, [dump]).dumps[0]
    assert result.status == "failed"
    assert store.count_papers() == 52
    # the failure is remembered: an unchanged failed file is not parsed again
    assert ingest_paths(store, [dump]).dumps[0].status == "failed"


def test_not_utf8_dump_is_ingested(store: Store, tmp_path: Path) -> None:
    dump = tmp_path / "cp1252.txt"
    dump.write_bytes(_card_dump([("Café “Quotes” Model", "Naïve résumé.", None)]).encode("cp1252"))
    result = ingest_paths(store, [dump]).dumps[0]
    assert result.status == "ingested"
    assert _by_title(store, "Café").title == "Café “Quotes” Model"


def test_files_still_being_written_are_left_for_later(store, tmp_path, seed_files) -> None:
    spool = tmp_path / "seeds"
    spool.mkdir()
    fresh = spool / "000.txt"
    shutil.copy(seed_files[0], fresh)
    (spool / ".hidden.txt").write_bytes(seed_files[1].read_bytes())
    (spool / "001.txt.part").write_bytes(seed_files[1].read_bytes())
    (spool / "002.tmp").write_bytes(seed_files[2].read_bytes())
    assert discover([spool]) == [fresh]

    settings = IngestSettings(settle_seconds=30)
    report = ingest_paths(store, [spool], settings)
    assert report.dumps == [] and report.deferred == [(str(fresh), "still being written")]
    assert store.count_papers() == 0

    past = time.time() - 60
    os.utime(fresh, (past, past))
    report = ingest_paths(store, [spool], settings)
    assert [d.new for d in report.dumps] == [52]


def test_a_crash_inside_the_transaction_stores_nothing(store, seed_files, monkeypatch) -> None:
    from digestd.store import papers as papers_module

    def explode(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("power cut")

    # Fail after the papers were inserted, while the sightings are written.
    monkeypatch.setattr(papers_module.PaperStore, "_record_sightings", staticmethod(explode))
    with pytest.raises(RuntimeError):
        ingest_paths(store, seed_files[:1])
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(Paper)) == 0
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
    assert store.ledger_entry(str(seed_files[0].absolute())) is None
    monkeypatch.undo()
    assert ingest_paths(store, seed_files[:1]).dumps[0].new == 52


def test_two_concurrent_ingests_store_each_paper_once(database_url, seed_files) -> None:
    stores = [Store.open(database_url) for _ in range(2)]
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        try:
            ingest_paths(store, seed_files)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stores[0].count_papers() == 444
    with stores[0].read() as session:
        new_total = session.scalar(select(func.sum(Batch.new_count)))
    assert new_total == 444
    for s in stores:
        s.dispose()


def _card_dump(papers: list[tuple[str, str, tuple[str, str] | None]]) -> str:
    """A small card-layout dump; metadata is (first line, date line) or None."""
    blocks = [
        "new",
        "Get trending papers in your email inbox!",
        "Subscribe",
        "Daily Papers",
        "byAK and the research community",
        "Mar 10",
    ]
    for title, abstract, meta in papers:
        blocks += [title, abstract]
        if meta:
            blocks.append(f"{meta[0]}\n·\n{meta[1]}")
    return "\n\n".join(blocks) + "\n"
