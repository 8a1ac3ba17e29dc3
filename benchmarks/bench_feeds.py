"""Feed rebuild time on a large store, and requests per second for conditional feed requests.

    .venv/bin/python benchmarks/bench_feeds.py [--papers 50000] [--topics 20] [--duration 10]

Fills a fresh SQLite database with ``--papers`` synthetic papers (card-layout dumps made of
the sample dumps' words, ingested through digestd.ingest with topic matching, so paper_topics
is filled as in production) and ``--topics`` topics (the starter set plus single-word topics,
one of them rare so that its feed needs a pass over every paper). Then ingests one more batch
and times a full rebuild of every feed, and a rebuild with nothing changed.

Then serves the feeds on a loopback port and measures requests per second with ``wrk`` (when
installed; otherwise a keep-alive Python client in threads, which the output says) for:
a conditional GET answered 304 (If-None-Match), a full 200 of the same feed, and a 200 of an
archive page (rendered per request).
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digestd.config import Config, HttpConfig, PathsConfig, TopicConfig
from digestd.feeds import ARCHIVE_PAGE_SIZE, build_feeds
from digestd.ingest import ingest_paths
from digestd.runtime import Runtime
from digestd.topics import STARTER_TOPICS
from digestd.web.server import ServerThread, loopback_socket, make_server

SEEDS = Path(__file__).resolve().parents[1] / "samples" / "seeds"
HEADER = [
    "new", "Get trending papers in your email inbox!", "Subscribe", "Daily Papers",
    "byAK and the research community", "Dec 30",
]
#: extra single-word topics, most common first; the last one is rare on purpose
EXTRA_WORDS = [
    "model", "language", "data", "training", "image", "video", "graph", "memory",
    "robot", "speech", "medical", "privacy", "physics", "chemistry", "music", "wavelet",
]


def vocabulary() -> list[str]:
    words: list[str] = []
    for path in sorted(SEEDS.glob("*.txt")):
        words.extend(path.read_text(encoding="utf-8").split())
    return [w for w in words if w.isalpha()]


def generate_dump(papers: int, seed: int, words: list[str]) -> str:
    rng = random.Random(seed)
    blocks = list(HEADER)
    for number in range(papers):
        title = " ".join(rng.choices(words, k=rng.randint(6, 12))).capitalize()
        blocks.append(f"{title} {seed}-{number}")
        abstract = " ".join(rng.choices(words, k=rng.randint(100, 180)))
        if rng.random() < 0.3:
            abstract += f" Code: https://github.com/example/{seed}-{number}"
        blocks.append(abstract + ".")
        if rng.random() < 0.9:
            first = f"  • {rng.randint(1, 30)} authors" if rng.random() < 0.8 else "acme ACME Labs"
            day = f"{rng.choice(['Jan', 'Mar', 'Jun', 'Sep'])} {rng.randint(1, 28)}, 2024"
            upvotes = f" {rng.randint(1, 300)}" if rng.random() < 0.5 else ""
            blocks.append(f"{first}\n·\n{day}{upvotes}")
    return "\n\n".join(blocks) + "\n"


def topics(count: int) -> tuple[TopicConfig, ...]:
    chosen = [TopicConfig(t.slug, t.name, t.query, t.description) for t in STARTER_TOPICS]
    extra = EXTRA_WORDS[: max(0, count - len(chosen))]
    chosen = chosen[: count - len(extra)]
    chosen += [TopicConfig(f"w-{w}", w.capitalize(), w) for w in extra]
    return tuple(chosen)


def timed(label: str, func, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = func(*args)
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {elapsed:8.2f} s")
    return result, elapsed


# Load ------------------------------------------------------------------------------------------


def wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> float:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if match is None or non_2xx:
        raise RuntimeError(f"wrk failed or got errors:\n{output}")
    return float(match[1])


def python_load(url: str, headers: dict[str, str], duration: int, connections: int) -> float:
    """A hey-like fallback: keep-alive connections in threads, counting answered requests."""
    host_port, path = url.removeprefix("http://").split("/", 1)
    host, port = host_port.split(":")
    deadline = time.monotonic() + duration
    counts = [0] * connections

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.monotonic() < deadline:
            conn.request("GET", "/" + path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status not in (200, 304):
                raise RuntimeError(f"status {response.status}")
            counts[index] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=50_000)
    parser.add_argument("--topics", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200, help="papers in the timed batch")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()

    words = vocabulary()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        sock = loopback_socket()
        config = Config(
            paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
            http=HttpConfig(address=f"127.0.0.1:{sock.getsockname()[1]}"),
            topics=topics(args.topics),
        )
        config.paths.data_dir.mkdir(parents=True)
        dumps = tmp / "dumps"
        dumps.mkdir()
        per_dump = 5_000
        for index in range(0, args.papers, per_dump):
            size = min(per_dump, args.papers - index)
            (dumps / f"{index:06d}.txt").write_text(generate_dump(size, index, words))
        runtime = Runtime.open(config)
        store = runtime.store
        print(f"papers={args.papers} topics={len(runtime.topics)} sqlite={config.database_url}")
        timed(
            f"ingest {args.papers} papers with matching",
            lambda: ingest_paths(store, [dumps], classify=runtime.classify),
        )
        timed("initial feed build", build_feeds, runtime)
        counts = store.topic_paper_counts()
        rare = min(counts.get(t.slug, 0) for t in store.topics())
        print(f"papers per topic: min {rare}, max {max(counts.values())}")

        batch = tmp / "batch.txt"
        batch.write_text(generate_dump(args.batch, 10_000_000, words))
        timed(
            f"ingest a batch of {args.batch} new papers",
            lambda: ingest_paths(store, [batch], classify=runtime.classify),
        )
        report, rebuild = timed("feed rebuild after the batch", build_feeds, runtime)
        print(f"  {report}")
        report, _ = timed("feed rebuild, nothing changed", build_feeds, runtime)
        print(f"  {report}")

        with ServerThread(make_server(runtime), sock) as server:
            url = f"{server.url}/feeds/all.atom"
            etag = http_etag(url)
            tool = "wrk" if shutil.which("wrk") else "python threads (wrk not installed)"
            load = wrk if shutil.which("wrk") else python_load
            print(f"load tool: {tool}, {args.connections} connections, {args.duration} s each")
            rps_304 = load(url, {"If-None-Match": etag}, args.duration, args.connections)
            print(f"{'GET all.atom, If-None-Match -> 304':<44} {rps_304:8.0f} req/s")
            rps_200 = load(url, {"Accept-Encoding": "gzip"}, args.duration, args.connections)
            print(f"{'GET all.atom, gzip -> 200':<44} {rps_200:8.0f} req/s")
            # archive pages are rendered per request (the middle one: an OFFSET half-way)
            middle = max(1, store.count_papers() // ARCHIVE_PAGE_SIZE // 2)
            archive = f"{server.url}/feeds/archive/all/{middle}.atom"
            rps_archive = load(archive, {"Accept-Encoding": "gzip"}, args.duration,
                               args.connections)
            print(f"{f'GET archive page {middle}, gzip -> 200':<44} {rps_archive:8.0f} req/s")
        runtime.close()
        print(
            f"summary: rebuild_after_batch={rebuild:.2f}s rps_304={rps_304:.0f} "
            f"rps_200_gzip={rps_200:.0f} rps_archive={rps_archive:.0f} tool={tool.split()[0]}"
        )


def http_etag(url: str) -> str:
    host_port, path = url.removeprefix("http://").split("/", 1)
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/" + path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.getheader("ETag") or ""


if __name__ == "__main__":
    main()
