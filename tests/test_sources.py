"""One identity per paper across sources, on a real database (SQLite, and PostgreSQL).

Seeds 000-004 are text dumps (papers known by title); the samples 005-007 are a Hugging Face
JSON dump, an arXiv API response and an arXiv listing feed that list some of the same papers
with arXiv ids.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import feedparser
import httpx
import pytest
from sqlalchemy import func, insert, select

from digestd.config import Config as DigestdConfig
from digestd.config import HttpConfig, PathsConfig
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.store.models import Delivery, PaperRevision, PaperTopic, Rating, Sighting
from digestd.store.terms import words_table
from digestd.subscribers import add_subscriber
from digestd.topics import TopicDefinition, compile_topics, match_paper
from digestd.web.server import ServerThread, loopback_socket, make_server

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "seeds"
HF_SAMPLE = SAMPLES / "005_hf_daily_papers.json"
API_SAMPLE = SAMPLES / "006_arxiv_api_query.atom"
RSS_SAMPLE = SAMPLES / "007_arxiv_cs_CV.rss"
FIXTURES = REPO / "tests" / "fixtures" / "sources"
PAINTING = "Easier Painting Than Thinking"
EXPECTED_NEW = [52, 33, 59, 35, 265]

TOPICS = [
    TopicDefinition("t2i", "Text to image", "", '"text-to-image"'),
    TopicDefinition("kv", "KV cache", "", '"kv cache"'),
]


def _classify(title: str, abstract: str, **fields: str):  # type: ignore[no-untyped-def]
    return match_paper(title, abstract, compile_topics(TOPICS), **fields)


def _one(store: Store, prefix: str):  # type: ignore[no-untyped-def]
    found = [p for p in store.papers() if p.title.startswith(prefix)]
    assert len(found) == 1, f"{prefix!r}: {len(found)} papers"
    return found[0]


def _count(store: Store, model) -> int:  # type: ignore[no-untyped-def]
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_seeds_then_sources_add_ids_and_no_papers(store: Store, seed_files: list[Path]) -> None:
    store.sync_topics(TOPICS)
    seeds = ingest_paths(store, seed_files, classify=_classify)
    assert [d.new for d in seeds.dumps] == EXPECTED_NEW
    before = {p.key: p for p in store.papers()}
    assert len(before) == 444
    painting_before = _one(store, PAINTING)

    hf = ingest_paths(store, [HF_SAMPLE], classify=_classify).dumps[0]
    assert (hf.status, hf.papers, hf.new, hf.skipped) == ("ingested", 3, 0, 0)
    api = ingest_paths(store, [API_SAMPLE], classify=_classify).dumps[0]
    assert (api.status, api.papers, api.new) == ("ingested", 2, 0)
    rss = ingest_paths(store, [RSS_SAMPLE], classify=_classify).dumps[0]
    assert (rss.status, rss.papers, rss.new) == ("ingested", 1, 0)
    assert store.count_papers() == 444

    painting = _one(store, PAINTING)
    # the same paper: same key, slug, first sighting and batch; it gained the id and links
    assert (painting.id, painting.key, painting.slug, painting.batch_id) == (
        painting_before.id, painting_before.key, painting_before.slug, painting_before.batch_id,
    )
    assert painting.arxiv_id == "2509.99001" and painting.arxiv_version == 2
    assert painting.authors == ("Ana Ruiz", "Bo Chen", "Chiara Rossi", "Dev Patel")
    assert painting.authors_count == 9  # the card's count is kept; the names are new
    assert painting.categories == ("cs.CV", "cs.AI")
    assert painting.github_stars == 57 and painting.comments == 3
    assert painting.organization == "Example Vision Lab"
    assert painting.page_links == {
        "abs": "https://arxiv.org/abs/2509.99001",
        "pdf": "https://arxiv.org/pdf/2509.99001",
        "hf": "https://huggingface.co/papers/2509.99001",
        "code": "https://github.com/example-lab/t2i-corebench",
        "project": "https://t2i-corebench.github.io/",
    }
    # metadata of the seeds is unchanged where no source said more
    assert painting.published == painting_before.published
    assert painting.abstract == painting_before.abstract
    after = {p.key: p for p in store.papers()}
    untouched = [k for k, p in before.items() if after[k].arxiv_id is None]
    assert len(untouched) == 444 - 5
    assert all(after[k].title == before[k].title for k in before)
    # sightings: 487 listings of the seeds, plus one per listing of the three sources
    assert store.sighting_count() == 487 + 3 + 2 + 1
    # the topic matches stayed
    matches = store.paper_matches([painting.id])[painting.id]
    assert [m.slug for m in matches] == ["t2i"]


def test_replace_of_unknown_paper_is_counted_not_stored(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="digestd.ingest")
    result = ingest_paths(store, [FIXTURES / "arxiv_listing.rss"]).dumps[0]
    # new + cross are new papers; the replace of 2509.01234 and 2401.00001 are not; one item
    # has no id at all
    assert (result.status, result.papers, result.new, result.skipped) == ("ingested", 4, 2, 3)
    assert store.count_papers() == 2
    entry = store.ledger_entry(result.path)
    assert entry is not None and entry.skipped_count == 3
    assert entry.skipped_notes == (
        "item 5: no arXiv id\n2 replacement(s) of papers not seen before"
    )
    assert "skipped=3" in caplog.text and "item 5: no arXiv id" in caplog.text


def test_partly_bad_json_counts_what_it_skipped(store: Store, tmp_path: Path) -> None:
    result = ingest_paths(store, [FIXTURES / "hf_daily_papers.json"]).dumps[0]
    assert (result.status, result.papers, result.new, result.skipped) == ("ingested", 4, 4, 3)
    entry = store.ledger_entry(result.path)
    assert entry is not None and entry.skipped_count == 3
    assert (entry.skipped_notes or "").splitlines()[0] == "item 5: no title"


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("bad.json", b'[{"paper": {"id": "2509.1"}', "invalid JSON at line 1 column 28"),
        ("shape.json", b'{"papers": 3}', "JSON object holds no list of daily-paper items"),
        ("cut.rss", (FIXTURES / "arxiv_listing.rss").read_bytes()[:900],
         "malformed or truncated XML at line"),
        ("cut.atom", (FIXTURES / "arxiv_api.atom").read_bytes()[:1500],
         "malformed or truncated XML at line"),
    ],
)
def test_broken_structured_dump_fails_alone(
    store: Store, tmp_path: Path, seed_files: list[Path], name: str, content: bytes, cause: str
) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    good = tmp_path / "good.txt"
    shutil.copy(seed_files[0], good)
    failed, ingested = ingest_paths(store, [bad, good]).dumps
    assert failed.status == "failed" and cause in (failed.error or "")
    assert "\n" not in (failed.error or "")
    assert ingested.status == "ingested" and ingested.new == 52
    entry = store.ledger_entry(str(bad.absolute()))
    assert entry is not None and entry.status == "failed" and cause in (entry.error or "")


def _api_entry(arxiv: str, title: str, abstract: str) -> str:
    return (
        f"<entry><id>http://arxiv.org/abs/{arxiv}</id><title>{title}</title>"
        f"<summary>{abstract}</summary><author><name>Ada Lovelace</name></author>"
        '<arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="cs.CL"/>'
        "</entry>"
    )


def _api_dump(path: Path, *entries: str) -> Path:
    path.write_text(
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
        "<opensearch:totalResults>1</opensearch:totalResults>" + "".join(entries) + "</feed>"
    )
    return path


def test_versions_update_and_record_the_abstract(store: Store, tmp_path: Path) -> None:
    store.sync_topics(TOPICS)
    first = _api_dump(tmp_path / "a1.atom", _api_entry("2509.11111v1", "Paging", "Old text."))
    ingest_paths(store, [first], classify=_classify)
    second = _api_dump(
        tmp_path / "a2.atom", _api_entry("2509.11111v2", "Paging", "A KV cache, now.")
    )
    result = ingest_paths(store, [second], classify=_classify).dumps[0]
    assert result.new == 0
    paper = _one(store, "Paging")
    assert (paper.arxiv_version, paper.abstract) == (2, "A KV cache, now.")
    with store.read() as session:
        revisions = session.execute(select(PaperRevision.version, PaperRevision.abstract)).all()
    assert [tuple(r) for r in revisions] == [(1, "Old text.")]
    # the new abstract is matched again
    assert [m.slug for m in store.paper_matches([paper.id])[paper.id]] == ["kv"]
    # an older version listed later changes nothing
    older = _api_dump(tmp_path / "a0.atom", _api_entry("2509.11111v1", "Paging", "Old text."))
    ingest_paths(store, [older], classify=_classify)
    assert _one(store, "Paging").abstract == "A KV cache, now."


def test_id_keyed_and_title_keyed_papers_merge_keeping_history(
    store: Store, tmp_path: Path
) -> None:
    store.sync_topics(TOPICS)
    text = tmp_path / "000.txt"
    text.write_text(
        "Get trending papers in your email inbox once a day!\nSubscribe"
        "KV Cache Paging Revisited\nWe page the KV cache.\n"
    )
    ingest_paths(store, [text], classify=_classify)
    titled = _one(store, "KV Cache Paging")
    # the same paper, first seen under another title: an id-keyed second row
    v1 = _api_dump(
        tmp_path / "001.atom", _api_entry("2509.22222v1", "Paging Revisited", "Draft.")
    )
    ingest_paths(store, [v1], classify=_classify)
    assert store.count_papers() == 2
    keyed = _one(store, "Paging Revisited")
    # a digest listed both
    subscriber, _ = add_subscriber(store, "r@example.org", ["kv"])
    with store.write() as session:
        session.add(
            Delivery(
                subscriber_id=subscriber.id, digest_key="0-2", since_batch_id=0,
                through_batch_id=2, paper_ids=[titled.id, keyed.id], status="sent",
                attempts=1, created_at=dt.datetime.now(dt.UTC),
            )
        )
    # the reader rated both rows, and a second reader only the younger one
    other, _ = add_subscriber(store, "s@example.org", ["kv"])
    now = dt.datetime.now(dt.UTC)
    with store.write() as session:
        session.add_all([
            Rating(subscriber_id=subscriber.id, paper_id=titled.id, value=1, rated_at=now),
            Rating(subscriber_id=subscriber.id, paper_id=keyed.id, value=-1, rated_at=now),
            Rating(subscriber_id=other.id, paper_id=keyed.id, value=1, rated_at=now),
        ])
    # the younger row's words were kept when it was matched
    with store.write() as session:
        session.execute(insert(words_table), [{"paper_id": keyed.id, "words": "kept"}])
    # v2 takes the text dump's title: the two rows are one paper
    v2 = _api_dump(
        tmp_path / "002.atom",
        _api_entry("2509.22222v2", "KV Cache Paging Revisited", "We page the KV cache, v2."),
    )
    result = ingest_paths(store, [v2], classify=_classify).dumps[0]
    assert result.new == 0
    assert store.count_papers() == 1
    (merged,) = store.papers()
    # the older row survives, with the id and the newer text
    assert (merged.id, merged.key, merged.slug) == (titled.id, titled.key, titled.slug)
    assert (merged.arxiv_id, merged.arxiv_version) == ("2509.22222", 2)
    assert merged.title == "KV Cache Paging Revisited"
    assert merged.authors == ("Ada Lovelace",)
    with store.read() as session:
        sightings = session.scalars(select(Sighting.paper_id)).all()
        assert sorted(sightings) == [titled.id] * 3
        topics = session.scalars(select(PaperTopic.paper_id)).all()
        assert topics == [titled.id]
        # and they went with it
        assert session.scalars(select(words_table.c.paper_id)).all() == []
        (paper_ids,) = session.scalars(select(Delivery.paper_ids)).all()
    assert paper_ids == [titled.id]
    with store.read() as session:
        ratings = session.execute(
            select(Rating.subscriber_id, Rating.paper_id, Rating.value).order_by(Rating.value)
        ).all()
    assert sorted(map(tuple, ratings)) == sorted(
        [(subscriber.id, titled.id, 1), (other.id, titled.id, 1)]
    )
    # the merged paper's page URL, mailed before, leads to the survivor
    assert store.paper_by_slug(keyed.slug) == merged
    # a text listing of the same title still finds it; so does the id
    again = tmp_path / "003.txt"
    again.write_text(text.read_text() + "\n")
    assert ingest_paths(store, [again, v1], classify=_classify).dumps[0].new == 0
    assert store.count_papers() == 1


def test_papers_json_shows_ids_authors_and_links(tmp_path: Path, seed_files: list[Path]) -> None:
    config = tmp_path / "digestd.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "var"}"\n')
    (tmp_path / "var").mkdir()

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "digestd", *args, "--config", str(config)],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("ingest", *map(str, seed_files), str(HF_SAMPLE), str(RSS_SAMPLE))
    papers = json.loads(cli("papers", "--json"))
    assert len(papers) == 444
    (painting,) = [p for p in papers if p["title"].startswith(PAINTING)]
    assert painting["arxiv_id"] == "2509.99001"
    assert painting["authors"] == ["Ana Ruiz", "Bo Chen", "Chiara Rossi", "Dev Patel"]
    assert painting["links"]["abs"] == "https://arxiv.org/abs/2509.99001"
    assert painting["links"]["pdf"] == "https://arxiv.org/pdf/2509.99001"
    assert painting["links"]["code"] == "https://github.com/example-lab/t2i-corebench"
    assert painting["categories"] == ["cs.CV", "cs.AI"]


FOLLOWS = [
    TopicDefinition("ada", "Ada", "", 'author:"Ada Lovelace"'),
    TopicDefinition("turing", "Turing", "", "author:turing"),
    TopicDefinition("lab", "Lab", "", 'org:example-ai OR org:"Example Vision Lab"'),
    TopicDefinition("speech", "Speech", "", "category:eess.AS"),
    TopicDefinition("kw", "Keyword", "", '"kv cache"'),
]


def test_follow_an_author_a_lab_and_a_category(store: Store, seed_files: list[Path]) -> None:
    def classify(title: str, abstract: str, **fields: str):  # type: ignore[no-untyped-def]
        return match_paper(title, abstract, compile_topics(FOLLOWS), **fields)

    store.sync_topics(FOLLOWS)
    ingest_paths(
        store,
        [*seed_files, HF_SAMPLE, FIXTURES / "hf_daily_papers.json", FIXTURES / "arxiv_listing.rss"],
        classify=classify,
    )
    by_id = {p.id: p for p in store.papers()}

    def titles(slug: str) -> set[str]:
        return {p.title for p in store.papers(topic=slug)}

    # exactly the papers with Ada Lovelace among their authors, from any source
    ada = {p.title for p in by_id.values() if "Ada Lovelace" in p.authors}
    assert len(ada) == 2 and titles("ada") == ada
    assert titles("turing") == {p.title for p in by_id.values() if "Alan Turing" in p.authors}
    labs = ("Example AI Lab", "Example Vision Lab")
    assert titles("lab") == {p.title for p in by_id.values() if p.organization in labs}
    assert titles("speech") == {"Cross-Listed Speech Models"}
    # keywords are searched by plain words: the sparse-attention paper is tagged "KV cache"
    assert any(t.startswith("Sparse Attention") for t in titles("kw"))


def test_topics_test_command_sees_the_fields(tmp_path: Path) -> None:
    config = tmp_path / "digestd.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "var"}"\n')
    (tmp_path / "var").mkdir()
    run = [sys.executable, "-m", "digestd"]
    ingest = subprocess.run(
        [*run, "ingest", str(FIXTURES / "arxiv_listing.rss"), "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )
    assert ingest.returncode == 0, ingest.stderr
    found = subprocess.run(
        [*run, "topics", "test", 'author:"Barbara Liskov"', "--json", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )
    assert found.returncode == 0, found.stderr
    assert [p["title"] for p in json.loads(found.stdout)] == [
        "Tokenizers & Their Discontents: $\\alpha$-Smoothing for BPE"
    ]


def test_feeds_and_emails_carry_the_arxiv_and_code_links(
    tmp_path: Path, seed_files: list[Path]
) -> None:
    config = tmp_path / "digestd.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "var"}"\n'
        '[[topics]]\nslug = "t2i"\nname = "Text to image"\nquery = \'"text-to-image"\'\n'
    )
    (tmp_path / "var").mkdir()

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "digestd", *args, "--config", str(config)],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("subscribers", "add", "reader@example.org", "--topic", "t2i", "--cadence", "daily")
    cli("ingest", *map(str, seed_files), str(HF_SAMPLE), str(RSS_SAMPLE))
    abs_url, pdf_url = "https://arxiv.org/abs/2509.99001", "https://arxiv.org/pdf/2509.99001"
    code_url = "https://github.com/example-lab/t2i-corebench"

    cli("feeds", "build")
    for name in ("t2i.atom", "t2i.rss"):
        found = list((tmp_path / "var" / "feeds").rglob(name))
        assert found, f"no {name}"
        feed = feedparser.parse(found[0].read_bytes())
        (entry,) = [e for e in feed.entries if e.title.startswith(PAINTING)]
        hrefs = {link.href for link in entry.get("links", [])}
        content = entry.get("summary", "") + "".join(c.value for c in entry.get("content", []))
        for url in (abs_url, pdf_url, code_url):
            assert url in hrefs or f'href="{url}"' in content, (name, url)
        if name.endswith(".atom"):
            assert [a.name for a in entry.authors][:2] == ["Ana Ruiz", "Bo Chen"]

    raw = subprocess.run(
        [sys.executable, "-m", "digestd", "digest", "preview", "reader@example.org",
         "--format", "eml", "--config", str(config)],
        capture_output=True, cwd=tmp_path, timeout=120,
    )
    assert raw.returncode == 0, raw.stderr
    message = email.message_from_bytes(raw.stdout, policy=email.policy.default)
    html_part = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text_part = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for url in (abs_url, pdf_url, code_url):
        assert f'href="{url}"' in html_part
        assert url in text_part
    # four authors shortened to three and "et al."
    assert "Ana Ruiz, Bo Chen, Chiara Rossi et al." in html_part
    assert "Ana Ruiz, Bo Chen, Chiara Rossi et al." in text_part
    assert "TL;DR" in html_part and "Hugging Face's AI summary" in text_part


def test_paper_page_shows_authors_ids_links_and_summary(
    database_url: str, tmp_path: Path, seed_files: list[Path]
) -> None:
    sock = loopback_socket()
    config = DigestdConfig(
        paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"),
        http=HttpConfig(address=f"127.0.0.1:{sock.getsockname()[1]}"),
    )
    store = Store.open(database_url)
    runtime = Runtime.open(config, store=store)
    try:
        ingest_paths(store, [seed_files[0], HF_SAMPLE, RSS_SAMPLE], classify=runtime.classify)
        painting = _one(store, PAINTING)
        with ServerThread(make_server(runtime), sock) as server:
            page = httpx.get(f"{server.url}/papers/{painting.slug}", timeout=10)
    finally:
        runtime.close()
    assert page.status_code == 200
    body = page.text
    assert "Ana Ruiz, Bo Chen, Chiara Rossi, Dev Patel" in body
    assert "arXiv:2509.99001v2" in body and "cs.CV" in body
    for url in (
        "https://arxiv.org/abs/2509.99001", "https://arxiv.org/pdf/2509.99001",
        "https://huggingface.co/papers/2509.99001", "https://github.com/example-lab/t2i-corebench",
    ):
        assert f'href="{url}"' in body
    assert "Hugging Face&#39;s AI summary" in body or "Hugging Face's AI summary" in body


def test_two_ids_with_one_title_stay_two_papers(store: Store, tmp_path: Path) -> None:
    text = tmp_path / "000.txt"
    text.write_text(
        "Get trending papers in your email inbox once a day!\nSubscribe"
        "Attention Is Enough\nAn abstract.\n"
    )
    ingest_paths(store, [text])
    both = _api_dump(
        tmp_path / "001.atom",
        _api_entry("2509.33333v1", "Attention Is Enough", "An abstract."),
        _api_entry("2509.44444v1", "Attention is enough", "Another paper, same title."),
    )
    result = ingest_paths(store, [both]).dumps[0]
    assert (result.papers, result.new) == (2, 1)
    assert sorted(p.arxiv_id or "" for p in store.papers()) == ["2509.33333", "2509.44444"]
    assert store.sighting_count() == 3
