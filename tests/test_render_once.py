"""The template inlined once renders what inlining every rendered body gave: same DOM, styles."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from lxml import etree
from lxml import html as lxml_html

from digestd.config import Config, PathsConfig
from digestd.digest import Composer
from digestd.digest.render import PERSONAL_FIELDS, DigestRenderer, inline_css
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber
from digestd.topics import STARTER_TOPICS

NOW = dt.datetime(2025, 6, 3, 6, 30, tzinfo=dt.UTC)


def dom(document: str) -> str:
    return etree.tostring(lxml_html.document_fromstring(document), method="html",
                          encoding="unicode")


def test_bodies_match_the_per_body_inliner(tmp_path: Path, seed_files: list[Path]) -> None:
    config = Config(paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"))
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp_path / 'd.db'}"))
    ingest_paths(runtime.store, seed_files, classify=runtime.classify)
    slugs = [t.slug for t in STARTER_TOPICS]
    for number in range(20):
        topics = [slugs[number % len(slugs)], slugs[(number * 7 + 3) % len(slugs)]]
        add_subscriber(runtime.store, f"r{number}@example.org", topics, cadence="immediate")
    names = {t.slug: t.name for t in runtime.store.topics()}
    composer = Composer(config)
    # the previous way: the raw template rendered, then premailer on the whole body
    per_body = DigestRenderer(config.templates_dir, config.base_url)
    compared = 0
    for subscriber in runtime.store.subscribers(status="active"):
        # subscribed after the papers came: select as if from the start
        selected = runtime.store.due_papers(dataclasses.replace(subscriber, since_batch_id=0))
        if not selected:
            continue
        digest, body = composer.digest(subscriber, selected, names, NOW)
        raw = per_body.env.get_template("email/digest.html").render(per_body._context(digest))
        before, after = inline_css(raw), body.html
        for name in PERSONAL_FIELDS:  # each renderer has its own placeholders
            before = before.replace(getattr(per_body._placeholders, name), name)
            after = after.replace(getattr(composer.renderer._placeholders, name), name)
        assert dom(after) == dom(before), subscriber.email
        assert 'style="background-color:#fef08a' in after  # highlights carry their style
        compared += 1
    assert compared >= 15
    runtime.close()


def test_message_bytes_are_as_bytes(tmp_path: Path, seed_files: list[Path]) -> None:
    from digestd.digest.message import message_bytes

    config = Config(paths=PathsConfig(seeds_dir=tmp_path / "seeds", data_dir=tmp_path / "var"))
    runtime = Runtime.open(config, store=Store.open(f"sqlite:///{tmp_path / 'd.db'}"))
    ingest_paths(runtime.store, seed_files[:2], classify=runtime.classify)
    slugs = [t.slug for t in STARTER_TOPICS]
    names = ["Zoë Ångström-Łukasiewicz", "Ada", "", "李 小龍", "O'Brien \"Quote\" <x>"]
    for number, name in enumerate(names):
        add_subscriber(runtime.store, f"r{number}@example.org", slugs[: number + 2],
                       cadence="immediate", name=name)
    topic_names = {t.slug: t.name for t in runtime.store.topics()}
    composer = Composer(config)
    compared = 0
    for subscriber in runtime.store.subscribers(status="active"):
        selected = runtime.store.due_papers(dataclasses.replace(subscriber, since_batch_id=0))
        if not selected:
            continue
        message = composer.compose(
            subscriber, selected, topic_names, digest_key="0-2", now=NOW
        ).message
        for linesep in ("\r\n", "\n"):
            policy = message.policy.clone(linesep=linesep)
            assert message_bytes(message, policy) == message.as_bytes(policy=policy)
        compared += 1
    assert compared >= 3
    runtime.close()
