"""A classifier screens topics by their anchor words at once; what it finds is what matching
each topic on its own finds."""

from __future__ import annotations

from digestd.topics import STARTER_TOPICS, TopicDefinition, compile_topics, match_document
from digestd.topics.classify import Classifier
from digestd.topics.match import paper_document
from tests.topics.test_match import seed_papers

# anchored by a prefix only, by nothing (a field the anchors do not cover), by an AND
ODD_TOPICS = [
    TopicDefinition("prefixed", "Prefixed", "", "token* OR transformer*"),
    TopicDefinition("authors", "Authors", "", "author:ada OR cot"),
    TopicDefinition("both", "Both", "", '(kv AND cache) OR "reasoning model*" OR video*'),
    TopicDefinition("negated", "Negated", "", "model NOT (video OR image*)", min_score=2),
]


def test_screened_matches_are_every_topic_matched_alone() -> None:
    topics = compile_topics([*STARTER_TOPICS, *ODD_TOPICS])
    classifier = Classifier(topics)
    papers = [
        *seed_papers().items(),
        ("Tokenizers", "No other words."), ("", "Ada wrote this. Reasoning modelling."),
    ]
    screened_out = matched = 0
    for title, abstract in papers:
        doc = paper_document(title, abstract, author="Ada Lovelace")
        expected = match_document(doc, topics)
        assert list(classifier.match_document(doc)) == expected, title
        assert list(classifier.match_document(doc, highlight=False)) == [
            m.__class__(m.slug, m.score, m.terms, None) for m in expected
        ]
        some = {"reasoning", "prefixed", "negated"}
        assert list(classifier.match_document(doc, some)) == [
            m for m in expected if m.slug in some
        ]
        # from the text, as at ingest
        assert list(classifier(title, abstract, author="Ada Lovelace")) == expected
        assert list(classifier.match_some(title, abstract, some, author="Ada Lovelace")) == [
            m for m in expected if m.slug in some
        ]
        screened_out += len(topics) - len(classifier._screen(doc))
        matched += len(expected)
    assert matched > 100 and screened_out > 100
