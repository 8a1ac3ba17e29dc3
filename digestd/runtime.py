"""What every command and the daemon work with: the configuration, the store, the topics.

Opening a runtime applies migrations, mirrors the configured topics into the database and
re-matches stored papers against any topic whose query is new or changed. Matching itself is
pure (digestd.topics); this module only wires it to the store.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from digestd.bounce_score import BounceRules
from digestd.config import Config
from digestd.linkkey import load_link_key
from digestd.store import Store
from digestd.store.schema import require_current
from digestd.topics import (
    STARTER_TOPICS,
    CompiledTopic,
    TopicDefinition,
    compile_topics,
)
from digestd.topics.classify import Classifier

log = logging.getLogger(__name__)


def topic_definitions(config: Config) -> list[TopicDefinition]:
    """The configured topics, or the starter set when the configuration names none."""
    if not config.topics:
        return list(STARTER_TOPICS)
    return [
        TopicDefinition(t.slug, t.name, t.description, t.query, t.min_score)
        for t in config.topics
    ]


@dataclass
class Runtime:
    config: Config
    store: Store
    topics: list[CompiledTopic] = field(default_factory=list)

    @classmethod
    def open(cls, config: Config, *, store: Store | None = None) -> Runtime:
        # Compile before touching the database: a broken query must not half-apply a config.
        compiled = compile_topics(topic_definitions(config))
        if store is None:
            config.paths.data_dir.mkdir(parents=True, exist_ok=True)
            store = Store.open(config.database_url, migrate=config.database.auto_migrate)
            if not config.database.auto_migrate:
                require_current(store.engine)
            store.link_key = load_link_key(config, create=True)
        elif store.link_key is None:
            # A store handed in without a key (embedding, tests): links made in this process
            # work for as long as the database keeps their hashes.
            store.link_key = secrets.token_bytes(32)
        store.bounce_rules = BounceRules.of(config)
        added = store.register_link_key()
        if added:
            log.info("link key registered tokens=%d", added)
        runtime = cls(config, store, compiled)
        runtime.sync_topics()
        return runtime

    def sync_topics(self) -> None:
        changed = self.store.sync_topics([t.definition for t in self.topics])
        if changed:
            # only the changed topics are matched again, and only on their candidate papers
            matches = self.store.rematch_topics(changed, self.classify.subset(changed))
            log.info("topics rematched topics=%s matches=%d", ",".join(changed), matches)

    @property
    def classify(self) -> Classifier:
        """``classify(title, abstract, **fields)``: the topics a paper matches, best first."""
        return Classifier(self.topics)

    def close(self) -> None:
        self.store.dispose()
