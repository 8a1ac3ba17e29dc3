"""Subscribers and selection against a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from digestd.config import Config, TopicConfig
from digestd.errors import SubscriberError
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber, import_csv, remove_subscriber

TOPICS = (
    TopicConfig("kv-cache", "KV cache", '"kv cache" OR "key-value cache" OR kv-cache', "KV"),
    TopicConfig("diffusion", "Diffusion", "diffusion", "Diffusion models"),
    TopicConfig("speculative", "Speculative decoding", '"speculative decoding"', "Drafts"),
)


@pytest.fixture
def runtime(store: Store, tmp_path: Path) -> Runtime:
    config = dataclasses.replace(Config(), topics=TOPICS)
    return Runtime.open(config, store=store)


def test_add_list_and_update(runtime: Runtime) -> None:
    record, created = add_subscriber(
        runtime.store, "Ada@Example.org", ["kv-cache"], cadence="weekly",
        timezone="Europe/Berlin", name="Ada Lovelace",
    )
    assert created
    assert (record.email, record.cadence, record.timezone) == (
        "Ada@example.org", "weekly", "Europe/Berlin",
    )
    assert record.topics == ("kv-cache",)
    assert record.status == "active"
    again, created = add_subscriber(runtime.store, "ada@EXAMPLE.org", ["diffusion", "kv-cache"])
    assert not created
    assert again.id == record.id and again.token == record.token
    assert again.topics == ("kv-cache", "diffusion")  # configuration order
    assert again.cadence == "weekly" and again.name == "Ada Lovelace"  # kept
    # one subscriber, under the address as last written
    assert [s.email for s in runtime.store.subscribers()] == ["ada@example.org"]


@pytest.mark.parametrize(
    ("email", "topics", "kwargs", "message"),
    [
        ("not-an-address", ["kv-cache"], {}, "invalid e-mail address 'not-an-address'"),
        ("a@b.c\r\nBcc: x@y.z", ["kv-cache"], {}, "line break"),
        ("a@b.c\nBcc: x@y.z", ["kv-cache"], {}, "line break"),
        ("ok@example.org", ["quantum-cooking"], {}, "unknown topic 'quantum-cooking'"),
        ("ok@example.org", ["kv-cache"], {"timezone": "Mars/Olympus"}, "unknown time zone"),
        ("ok@example.org", ["kv-cache"], {"timezone": "../../etc/passwd"}, "unknown time zone"),
        ("ok@example.org", ["kv-cache"], {"cadence": "hourly"}, "unknown cadence 'hourly'"),
        ("ok@example.org", ["kv-cache"], {"name": "Eve\r\nBcc: x@y.z"}, "invalid name"),
        ("ok@example.org", [], {}, "at least one topic"),
    ],
)
def test_invalid_input_is_refused(runtime, email, topics, kwargs, message) -> None:
    with pytest.raises(SubscriberError) as info:
        add_subscriber(runtime.store, email, topics, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert runtime.store.subscribers() == []


def test_tokens_are_unguessable_and_revocable(runtime: Runtime) -> None:
    a, _ = add_subscriber(runtime.store, "a@example.org", ["kv-cache"])
    b, _ = add_subscriber(runtime.store, "b@example.org", ["kv-cache"])
    assert a.token != b.token and len(a.token) >= 40
    assert runtime.store.subscriber_by_token(a.token).id == a.id
    # same lookup prefix, wrong secret
    wrong = a.token[:-1] + ("x" if a.token[-1] != "x" else "y")
    assert runtime.store.subscriber_by_token(wrong) is None
    assert runtime.store.subscriber_by_token("") is None
    assert runtime.store.subscriber_by_token("short") is None
    new = runtime.store.rotate_token(a.id)
    assert runtime.store.subscriber_by_token(a.token) is None
    assert runtime.store.subscriber_by_token(new).id == a.id


def test_remove(runtime: Runtime) -> None:
    add_subscriber(runtime.store, "gone@example.org", ["kv-cache"])
    remove_subscriber(runtime.store, "GONE@example.org")
    assert runtime.store.subscribers() == []
    with pytest.raises(SubscriberError, match="no subscriber"):
        remove_subscriber(runtime.store, "gone@example.org")


def test_csv_import_reports_bad_rows(runtime: Runtime) -> None:
    report = import_csv(
        runtime.store,
        "email,name,topics,cadence,timezone\n"
        "one@example.org,One,kv-cache diffusion,daily,Europe/Paris\n"
        "not-an-address,Two,kv-cache,,\n"
        "three@example.org,,speculative;kv-cache,immediate,\n"
        "four@example.org,,nope,,\n"
        "ONE@example.org,,,weekly,\n",
    )
    assert (report.added, report.updated) == (2, 1)
    assert [line for line, _ in report.errors] == [3, 5]
    one = runtime.store.subscriber("one@example.org")
    assert one is not None and one.cadence == "weekly" and one.topics == ("kv-cache", "diffusion")


def test_selection_starts_after_subscription(runtime: Runtime, seed_files) -> None:
    ingest_paths(runtime.store, seed_files[:4], classify=runtime.classify)
    subscriber, _ = add_subscriber(runtime.store, "new@example.org", ["kv-cache", "diffusion"])
    assert runtime.store.due_papers(subscriber) == []  # no archive for a new subscriber

    ingest_paths(runtime.store, seed_files[4:], classify=runtime.classify)
    due = runtime.store.due_papers(subscriber)
    assert due, "seed 004 brings KV-cache and diffusion papers"
    latest = runtime.store.latest_batch_id()
    assert all(s.paper.batch_id == latest for s in due)
    for selected in due:
        assert {m.slug for m in selected.matches} <= {"kv-cache", "diffusion"}
        assert selected.matches
    ranking = [(-s.score, -(s.paper.upvotes or -1)) for s in due]
    assert ranking == sorted(ranking)
    titles = [s.paper.title for s in due]
    assert any(t.startswith("TokenButler") for t in titles)  # "Key-Value (KV) Cache" abstract


def test_keyformer_is_kv_cache_and_easier_painting_is_not(runtime: Runtime, seed_files) -> None:
    ingest_paths(runtime.store, seed_files, classify=runtime.classify)
    papers = {p.title: p for p in runtime.store.papers()}
    keyformer = next(p for t, p in papers.items() if t.startswith("Keyformer"))
    painting = next(p for t, p in papers.items() if t.startswith("Easier Painting"))
    matches = runtime.store.paper_matches([keyformer.id, painting.id])
    assert "kv-cache" in [m.slug for m in matches[keyformer.id]]
    assert "kv-cache" not in [m.slug for m in matches[painting.id]]


def test_changed_topic_query_rematches_stored_papers(store: Store, seed_files) -> None:
    config = dataclasses.replace(Config(), topics=TOPICS)
    runtime = Runtime.open(config, store=store)
    ingest_paths(store, seed_files, classify=runtime.classify)
    before = store.topic_paper_counts()["speculative"]
    changed = (*TOPICS[:2], TopicConfig("speculative", "Spec", '"speculative decoding" OR draft*'))
    Runtime.open(dataclasses.replace(config, topics=changed), store=store)
    assert store.topic_paper_counts()["speculative"] > before
    # a topic dropped from the configuration is hidden, its subscribers kept
    Runtime.open(dataclasses.replace(config, topics=TOPICS[:2]), store=store)
    assert "speculative" not in [t.slug for t in store.topics()]


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "digestd.toml"
    if not config.exists():
        lines = [f'[paths]\ndata_dir = "{tmp_path}"\n']
        for topic in TOPICS:
            lines.append(
                f"[[topics]]\nslug = {json.dumps(topic.slug)}\nname = {json.dumps(topic.name)}\n"
                f"query = {json.dumps(topic.query)}\n"
            )
        config.write_text("".join(lines))
    return subprocess.run(
        [sys.executable, "-m", "digestd", *args, "--config", str(config)],
        capture_output=True, text=True, cwd=tmp_path,
    )


def test_cli_subscribers(tmp_path: Path) -> None:
    added = _cli(tmp_path, "subscribers", "add", "ada@example.org", "--topic", "kv-cache",
                 "--topic", "diffusion", "--cadence", "immediate", "--tz", "Asia/Tokyo",
                 "--name", "Ada")
    assert added.returncode == 0, added.stderr
    listed = _cli(tmp_path, "subscribers", "list", "--json")
    assert json.loads(listed.stdout) == [
        {
            "email": "ada@example.org", "name": "Ada", "topics": ["kv-cache", "diffusion"],
            "cadence": "immediate", "timezone": "Asia/Tokyo", "status": "active",
            "created": json.loads(listed.stdout)[0]["created"],
            "confirmed": json.loads(listed.stdout)[0]["confirmed"],
            "bounces": 0, "bounce_score": 0.0, "bounce_resets": None,
            "last_error": None, "pause_reason": None, "rising": False,
        }
    ]
    # the rising section: on, then an update that does not name it leaves it on
    rising = _cli(tmp_path, "subscribers", "add", "ada@example.org", "--rising")
    assert rising.returncode == 0 and "rising section" in rising.stdout, rising.stderr
    kept = _cli(tmp_path, "subscribers", "add", "ada@example.org", "--tz", "UTC")
    assert "rising section" in kept.stdout
    assert json.loads(_cli(tmp_path, "subscribers", "list", "--json").stdout)[0]["rising"]
    off = _cli(tmp_path, "subscribers", "add", "ada@example.org", "--no-rising")
    assert off.returncode == 0 and "rising section" not in off.stdout
    bad = _cli(tmp_path, "subscribers", "add", "a@b.c\r\nBcc: x@y.z", "--topic", "kv-cache")
    assert bad.returncode == 2  # a usage error
    assert len(bad.stderr.strip().splitlines()) == 1 and "line break" in bad.stderr
    unknown = _cli(tmp_path, "subscribers", "add", "b@example.org", "--topic", "nope")
    assert unknown.returncode == 2 and "unknown topic 'nope'" in unknown.stderr
    removed = _cli(tmp_path, "subscribers", "remove", "ada@example.org")
    assert removed.returncode == 0
    assert json.loads(_cli(tmp_path, "subscribers", "list", "--json").stdout) == []


def test_cli_topics_test_speculative_decoding(tmp_path: Path, seed_files) -> None:
    ingested = _cli(tmp_path, "ingest", *map(str, seed_files), "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["papers_total"] == 444
    result = _cli(tmp_path, "topics", "test", '"speculative decoding"', "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits, "the seeds hold speculative-decoding papers"
    for hit in hits:
        assert hit["terms"] == ['"speculative decoding"'] or "speculative decoding" in " ".join(
            hit["terms"]
        ).lower()
        text = " ".join(hit["title_terms"] + hit["abstract_terms"]).lower()
        assert "speculative" in text
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # the normalised score is the percentile among the query's matches: best is highest
    norms = [h["normalised"] for h in hits]
    assert norms == sorted(norms, reverse=True) and 0 < norms[-1] <= norms[0] < 1
    assert all(sum(h["points"].values()) == h["score"] for h in hits)
    plain = _cli(tmp_path, "topics", "test", '"speculative decoding"')
    assert "papers match" in plain.stdout and "why: speculative decoding" in plain.stdout
    assert plain.stdout.splitlines()[0].split() == ["score", "norm", "title"]
    # a configured topic, with a min_score given on the command line
    strict = _cli(tmp_path, "topics", "test", "--topic", "kv-cache", "--min-score", "3", "--json")
    loose = _cli(tmp_path, "topics", "test", "--topic", "kv-cache", "--json")
    assert strict.returncode == 0 and loose.returncode == 0, strict.stderr + loose.stderr
    strict_hits, loose_hits = json.loads(strict.stdout), json.loads(loose.stdout)
    assert strict_hits and all(h["score"] >= 3 for h in strict_hits)
    assert len(strict_hits) < len(loose_hits)
    none = _cli(tmp_path, "topics", "test")
    assert none.returncode == 2 and "QUERY or --topic" in none.stderr
    bad = _cli(tmp_path, "topics", "test", "(kv AND")
    assert bad.returncode == 2 and "position" in bad.stderr
    listed = _cli(tmp_path, "topics", "list", "--json")
    counts = {t["slug"]: t["papers"] for t in json.loads(listed.stdout)}
    assert set(counts) == {"kv-cache", "diffusion", "speculative"} and counts["kv-cache"] > 0
