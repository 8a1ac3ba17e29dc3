"""The structured formats: Hugging Face daily papers JSON, arXiv API Atom, arXiv listing feeds.

The fixtures in tests/fixtures/sources follow the public formats field by field, with nulls,
missing fields, entities, LaTeX and hostile values; broken variants are made from them here.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digestd.errors import DumpError, DumpFormatError
from digestd.parse import decode_dump, identity_key, parse_dump
from digestd.parse.arxiv_ids import split_arxiv_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
SPARSE = "Sparse Attention & Friends: $\\mathcal{O}(n)$ Decoding for Long Contexts"


def _parse(name: str):
    path = FIXTURES / name
    return parse_dump(decode_dump(path.read_bytes()), path=str(path))


def test_hf_json_fields() -> None:
    dump = _parse("hf_daily_papers.json")
    assert dump.layout == "hf-json"
    first, nulls, titled, hostile = dump.papers
    assert first.title == SPARSE  # entities decoded, tags dropped, LaTeX kept
    assert (first.arxiv_id, first.arxiv_version) == ("2509.01234", 2)
    assert first.authors == ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra")
    assert first.authors_count == 4  # the hidden author is not listed
    assert (first.organization_id, first.organization) == ("example-ai", "Example AI Lab")
    assert first.ai_summary.startswith("Linear-time decoding")
    assert first.keywords == ("sparse attention", "long context", "KV cache")
    assert first.github_repo == "https://github.com/example/sparse-friends"
    assert (first.github_stars, first.upvotes, first.comments) == (1234, 42, 5)
    assert first.project_page == "https://example.org/sparse"
    assert first.published == datetime.date(2025, 9, 2)
    assert dict(first.source_links) == {
        "abs": "https://arxiv.org/abs/2509.01234",
        "pdf": "https://arxiv.org/pdf/2509.01234",
        "hf": "https://huggingface.co/papers/2509.01234",
    }
    # nulls everywhere: the top-level summary and date stand in
    assert nulls.abstract == "Only the top-level summary is given."
    assert nulls.published == datetime.date(2025, 9, 3)
    assert (nulls.upvotes, nulls.github_repo, nulls.authors, nulls.keywords) == (None, None, (), ())
    # no id: known by its title
    assert titled.arxiv_id is None
    assert identity_key(titled.title, titled.arxiv_id) == "noidgivenknownbyitstitle"
    # hostile values are dropped, not trusted
    assert hostile.title == "Hostile alert(1) Values"
    assert hostile.arxiv_id is None and hostile.github_repo is None
    assert hostile.github_stars is None and hostile.upvotes is None and hostile.comments is None
    assert hostile.project_page is None and hostile.organization is None
    assert hostile.keywords == ("fine keyword",) and hostile.authors == ()
    assert dump.skipped == (
        "item 5: no title",
        "item 6: a number, not an object",
        'item 7: "paper" is a string, not an object',
    )


def test_hf_json_object_holding_the_list_and_single_item() -> None:
    items = json.loads((FIXTURES / "hf_daily_papers.json").read_text())
    wrapped = parse_dump(json.dumps({"papers": items[:2]}))
    assert [p.arxiv_id for p in wrapped.papers] == ["2509.01234", "2509.05678"]
    single = parse_dump(json.dumps(items[0]))
    assert [p.arxiv_id for p in single.papers] == ["2509.01234"]
    assert parse_dump("[]").papers == ()


def test_arxiv_api_fields() -> None:
    dump = _parse("arxiv_api.atom")
    assert dump.layout == "arxiv-api"
    sparse, old = dump.papers
    assert sparse.title == SPARSE  # the title's line break is collapsed
    assert (sparse.arxiv_id, sparse.arxiv_version) == ("2509.01234", 3)
    assert sparse.categories == ("cs.CL", "cs.LG")
    assert sparse.authors[0] == "Ada Lovelace" and len(sparse.authors) == 4
    assert dict(sparse.source_links)["doi"] == "https://doi.org/10.1234/sparse.2025"
    assert dict(sparse.source_links)["pdf"] == "https://arxiv.org/pdf/2509.01234"
    assert sparse.published == datetime.date(2025, 9, 2)
    assert (old.arxiv_id, old.arxiv_version, old.categories) == ("hep-th/9901001", 1, ("hep-th",))
    assert dump.skipped == ("entry 3: no arXiv id", "entry 4: no title")


@pytest.mark.parametrize("name", ["arxiv_listing.rss", "arxiv_listing.atom"])
def test_arxiv_listing_fields(name: str) -> None:
    dump = _parse(name)
    assert dump.layout == "arxiv-listing"
    first = dump.papers[0]
    assert first.title == "Tokenizers & Their Discontents: $\\alpha$-Smoothing for BPE"
    assert (first.arxiv_id, first.arxiv_version, first.announce) == ("2509.04444", 1, "new")
    assert first.abstract == "We smooth BPE merges with a temperature $\\alpha$ < 1."
    assert first.authors == ("Ada Lovelace", "Barbara Liskov")
    assert first.categories == ("cs.CL",)
    assert first.published == datetime.date(2025, 9, 5)


def test_arxiv_listing_announce_types() -> None:
    dump = _parse("arxiv_listing.rss")
    assert [(p.arxiv_id, p.announce) for p in dump.papers] == [
        ("2509.04444", "new"),
        ("2509.03333", "cross"),
        ("2509.01234", "replace"),
        ("2401.00001", "replace-cross"),
    ]
    assert dump.papers[1].categories == ("eess.AS", "cs.CL")
    assert dump.skipped == ("item 5: no arXiv id",)


def test_arxiv_ids() -> None:
    assert split_arxiv_id("2509.01234v12") == ("2509.01234", 12)
    assert split_arxiv_id("arXiv:1501.0001") == ("1501.0001", None)
    assert split_arxiv_id("https://arxiv.org/pdf/2509.01234v2.pdf") == ("2509.01234", 2)
    assert split_arxiv_id("https://huggingface.co/papers/2509.01234") == ("2509.01234", None)
    assert split_arxiv_id("Math.ag/0601001") == ("math.AG/0601001", None)
    for bad in ("", "javascript:alert(1)", "25.0001", "2509.01234x", None, 12):
        assert split_arxiv_id(bad) is None  # type: ignore[arg-type]


def _broken(text: str) -> str:
    with pytest.raises(DumpFormatError) as info:
        parse_dump(text, path="seeds/x")
    assert "\n" not in info.value.reason
    return info.value.reason


def test_invalid_json_names_line_and_column() -> None:
    text = (FIXTURES / "hf_daily_papers.json").read_text()
    cut = text[: text.index('"upvotes": 42') + 12]  # truncated mid-file
    assert _broken(cut).startswith("invalid JSON at line 16 column ")
    assert _broken('[{"paper": {"id": "1"},]').startswith(
        "invalid JSON at line 1 column 24: Expecting property name"
    )
    assert _broken("[" * 100_000) == "invalid JSON: nested too deeply"


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ('{"papers": "x"}', "JSON object holds no list of daily-paper items (keys: papers)"),
        ('{"title": "x"}', "JSON object holds no list of daily-paper items (keys: title)"),
        (
            '[1, {"paper": null}]',
            "no readable daily-paper item among 2 (item 1: a number, not an object)",
        ),
    ],
)
def test_wrong_json_shape(text: str, cause: str) -> None:
    assert _broken(text) == cause


def test_truncated_xml_names_line() -> None:
    for name in ("arxiv_api.atom", "arxiv_listing.rss"):
        text = (FIXTURES / name).read_text()
        cut = text[: len(text) * 2 // 3]
        reason = _broken(cut)
        assert "malformed or truncated XML at line " in reason, reason


def test_arxiv_api_error_response() -> None:
    text = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
  <opensearch:totalResults>1</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345</id>
    <title>Error</title>
    <summary>incorrect id format for 1234.12345</summary>
  </entry>
</feed>"""
    assert _broken(text) == "arXiv API response is an error: incorrect id format for 1234.12345"


def test_unknown_structured_content() -> None:
    assert _broken("<html><body>hi</body></html>").startswith("XML, but not a known source")
    rss = '<rss version="2.0"><channel><item><title>x</title></item></channel></rss>'
    assert _broken(rss) == "arXiv listing feed: no readable item (item 1: no arXiv id)"


def test_entity_expansion_is_bounded() -> None:
    lol = "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10)
    )
    text = (
        f'<?xml version="1.0"?><!DOCTYPE rss [{lol}]><rss version="2.0"><channel><item>'
        "<title>&l9;</title><link>https://arxiv.org/abs/2509.04444</link></item></channel></rss>"
    )
    try:
        dump = parse_dump(text)
    except DumpError:
        return
    assert all(len(p.title) < 100_000 for p in dump.papers)


def _mutations() -> st.SearchStrategy[str]:
    texts = [p.read_text() for p in sorted(FIXTURES.iterdir())]
    base = st.sampled_from(texts)

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        text = draw(base)
        for _ in range(draw(st.integers(0, 4))):
            at = draw(st.integers(0, len(text)))
            kind = draw(st.sampled_from(["cut", "insert", "delete"]))
            if kind == "cut":
                text = text[:at]
            elif kind == "insert":
                text = text[:at] + draw(st.text(max_size=20)) + text[at:]
            else:
                text = text[:at] + text[at + draw(st.integers(1, 50)) :]
        return text

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["paper", "id", "title", "summary", "authors", "name", "hidden",
                             "githubRepo", "githubStars", "organization", "ai_keywords",
                             "publishedAt", "numComments", "upvotes", "x"]),
            inner, max_size=6,
        ),
        max_leaves=30,
    )
    return mutate() | json_values.map(json.dumps)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_fuzz_structured_formats_never_crash(text: str) -> None:
    try:
        dump = parse_dump(text, path="fuzz")
    except DumpError as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    for paper in dump.papers:
        assert paper.title
        assert paper.arxiv_id is None or split_arxiv_id(paper.arxiv_id) == (paper.arxiv_id, None)
