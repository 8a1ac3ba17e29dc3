"""`digestd papers`: the fields scripts rely on (DESIGN.md) and the --topic filter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CONFIG = """
[[topics]]
slug = "kv-cache"
name = "KV cache"
query = '"kv cache" OR "key-value cache" OR kv-cache'

[[topics]]
slug = "painting"
name = "Painting"
query = "painting"
"""

FIELDS = {
    "key", "title", "abstract", "authors", "organization", "published", "upvotes",
    "first_seen", "links", "topics",
}


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "digestd.toml"
    if not config.exists():
        config.write_text(f'[paths]\ndata_dir = "{tmp_path / "var"}"\n' + CONFIG)
    return subprocess.run(
        [sys.executable, "-m", "digestd", *args, "--config", str(config)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )


def test_papers_json_and_topic_filter(tmp_path: Path, seed_files: list[Path]) -> None:
    (tmp_path / "var").mkdir()
    ingested = _cli(tmp_path, "ingest", *map(str, seed_files), "--json")
    assert ingested.returncode == 0, ingested.stderr

    everything = json.loads(_cli(tmp_path, "papers", "--json").stdout)
    assert len(everything) == 444
    assert all(set(paper) >= FIELDS for paper in everything)
    by_title = {p["title"].split(":")[0]: p for p in everything}
    painting = by_title["Easier Painting Than Thinking"]
    assert painting["authors_count"] == 9 and painting["published"] == "2025-09-03"
    assert painting["authors"] == [] and painting["arxiv_id"] is None
    assert "painting" in painting["topics"]

    kv = _cli(tmp_path, "papers", "--topic", "kv-cache", "--json")
    assert kv.returncode == 0, kv.stderr
    kv_papers = json.loads(kv.stdout)
    titles = [p["title"] for p in kv_papers]
    assert any(t.startswith("Keyformer: KV Cache Reduction") for t in titles)
    assert not any(t.startswith("Easier Painting Than Thinking") for t in titles)
    assert all("kv-cache" in p["topics"] for p in kv_papers)
    assert 0 < len(kv_papers) < len(everything)
    # newest first, as without the filter
    seen = [p["first_seen"] for p in kv_papers]
    assert seen == sorted(seen, reverse=True)

    limited = json.loads(_cli(tmp_path, "papers", "--topic", "kv-cache", "--json",
                              "--limit", "2").stdout)
    assert [p["key"] for p in limited] == [p["key"] for p in kv_papers[:2]]

    unknown = _cli(tmp_path, "papers", "--topic", "no-such-topic")
    assert unknown.returncode == 2  # a usage error
    assert unknown.stderr.strip().splitlines() == [
        "digestd: unknown topic 'no-such-topic' (see: digestd topics list)"
    ]
