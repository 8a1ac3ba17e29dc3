"""What operators and their tools see, over real HTTP on loopback: /metrics scraped and parsed by
Prometheus's own parser, /healthz, 431 for oversized headers, the page shown while the database
is down."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from digestd.config import Config, HttpConfig, LogConfig, MetricsConfig, PathsConfig
from digestd.delivery import plan_digests, send_pending
from digestd.errors import StoreError
from digestd.metrics import Metrics
from digestd.runtime import Runtime
from digestd.store import Store
from digestd.subscribers import add_subscriber
from digestd.web.server import ServerThread, loopback_socket, make_server

from support import backend_database, feed_titles


def _runtime(tmp: Path, url: str, port: int, **sections: object) -> Runtime:
    config = Config(
        paths=PathsConfig(seeds_dir=tmp / "seeds", data_dir=tmp / "var"),
        http=HttpConfig(address=f"127.0.0.1:{port}"),
        **sections,  # type: ignore[arg-type]
    )
    (tmp / "var").mkdir(exist_ok=True)
    return Runtime.open(config, store=Store.open(url))


def _samples(families: list) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[type-arg]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families for s in family.samples
    }


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_database(request.param, tmp_path / "digestd.db") as url:
        yield url


def test_metrics_scraped_and_parsed_by_the_prometheus_parser(
    database: str, tmp_path: Path
) -> None:
    sock = loopback_socket()
    runtime = _runtime(tmp_path, database, sock.getsockname()[1],
                       metrics=MetricsConfig(enabled=True))
    feed_titles(runtime, ["Diffusion models for video", "Speculative decoding at scale"])
    feed_titles(runtime, ["Another diffusion model"])
    add_subscriber(runtime.store, "reader@example.org", ["diffusion"], cadence="immediate")
    now = dt.datetime.now(dt.UTC)
    # the subscriber's papers arrive after subscribing: a third dump, then plan and send one
    feed_titles(runtime, ["Diffusion transformers"])
    plan_digests(runtime, now)
    sent = send_pending(runtime, now)
    assert sent.sent == 1
    metrics = Metrics()
    metrics.watch_leadership(lambda: True)
    with ServerThread(make_server(runtime, metrics=metrics), sock) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as client:
        for _ in range(3):
            assert client.get("/").status_code == 200
        assert client.get("/no-such-page").status_code == 404
        metrics.job_failures.labels("dispatch").inc()
        response = client.get("/metrics")
    runtime.close()
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    families = list(text_string_to_metric_families(response.text))
    names = {f.name for f in families}
    samples = _samples(families)
    assert {
        "digestd_papers", "digestd_batches", "digestd_last_ingest_age_seconds",
        "digestd_deliveries", "digestd_delivery_queue_depth", "digestd_send_rate_per_second",
        "digestd_leader", "digestd_job_failures", "digestd_http_requests",
        "digestd_database_up",
    } <= names
    assert samples[("digestd_papers", ())] == runtime.store.count_papers() == 4
    assert samples[("digestd_batches", ())] == 3
    assert 0 <= samples[("digestd_last_ingest_age_seconds", ())] < 60
    assert samples[("digestd_deliveries", (("status", "sent"),))] == 1
    assert samples[("digestd_deliveries", (("status", "pending"),))] == 0
    assert samples[("digestd_delivery_queue_depth", ())] == 0
    assert samples[("digestd_send_rate_per_second", ())] == pytest.approx(1 / 300)
    assert samples[("digestd_leader", ())] == 1
    assert samples[("digestd_database_up", ())] == 1
    assert samples[("digestd_subscribers", (("status", "active"),))] == 1
    assert samples[("digestd_job_failures_total", (("job", "dispatch"),))] == 1
    requests = {
        labels: value for (name, labels), value in samples.items()
        if name == "digestd_http_requests_total"
    }
    assert requests[(("method", "GET"), ("route", "/"), ("status", "200"))] == 3
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1


def test_metrics_are_off_by_default_and_limited_to_the_allowed_networks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digestd.db'}"
    sock = loopback_socket()
    runtime = _runtime(tmp_path, url, sock.getsockname()[1])
    with ServerThread(make_server(runtime), sock) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as client:
        assert client.get("/metrics").status_code == 404
        runtime.config = dataclasses.replace(
            runtime.config, metrics=MetricsConfig(enabled=True, allow=("10.0.0.0/8",))
        )
        refused = client.get("/metrics")
        assert refused.status_code == 403 and "metrics.allow" in refused.text
        runtime.config = dataclasses.replace(
            runtime.config, metrics=MetricsConfig(enabled=True, allow=("127.0.0.0/8",))
        )
        assert client.get("/metrics").status_code == 200
    runtime.close()


def test_a_header_too_large_gets_431(tmp_path: Path) -> None:
    sock = loopback_socket()
    runtime = _runtime(tmp_path, f"sqlite:///{tmp_path / 'digestd.db'}", sock.getsockname()[1])
    with ServerThread(make_server(runtime), sock) as server:
        host, port = sock.getsockname()[:2]
        with socket.create_connection((host, port), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        # the server goes on answering
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    runtime.close()


def test_a_database_outage_is_a_friendly_503_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sock = loopback_socket()
    runtime = _runtime(tmp_path, f"sqlite:///{tmp_path / 'digestd.db'}", sock.getsockname()[1])
    with ServerThread(make_server(runtime), sock) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as client:
        assert client.get("/").status_code == 200
        # The database goes away: the file is replaced by a directory, so every connection
        # fails the way a vanished disk or server does.
        runtime.store.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp_path / 'digestd.db'}{suffix}").unlink(missing_ok=True)
        (tmp_path / "digestd.db").mkdir()
        caplog.set_level(logging.WARNING)
        pages = [client.get(path) for path in ("/", "/", "/papers/x", "/")]
        health = client.get("/healthz")
    runtime.close()
    for page in pages:
        assert page.status_code == 503
        assert "Back in a moment" in page.text and "Traceback" not in page.text
        assert page.headers["retry-after"] == "30"
    assert health.status_code == 503 and health.text.startswith("database unavailable")
    outage_lines = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(outage_lines) == 1
    assert not [r for r in caplog.records if r.exc_info]


def test_store_errors_in_metrics_are_reported_as_database_down(tmp_path: Path) -> None:
    sock = loopback_socket()
    runtime = _runtime(tmp_path, f"sqlite:///{tmp_path / 'digestd.db'}", sock.getsockname()[1],
                       metrics=MetricsConfig(enabled=True))

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise StoreError("database error: disk I/O error")

    with ServerThread(make_server(runtime), sock) as server:
        runtime.store.stats = refuse  # type: ignore[method-assign]
        response = httpx.get(server.url + "/metrics", timeout=10)
    runtime.close()
    samples = _samples(list(text_string_to_metric_families(response.text)))
    assert response.status_code == 200
    assert samples[("digestd_database_up", ())] == 0


def test_access_log_names_routes_not_the_tokens_in_paths(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sock = loopback_socket()
    runtime = _runtime(tmp_path, f"sqlite:///{tmp_path / 'digestd.db'}", sock.getsockname()[1],
                       log=LogConfig(access_log=True))
    caplog.set_level(logging.INFO, logger="digestd.access")
    with ServerThread(make_server(runtime), sock) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as client:
        client.get("/healthz")
        client.get("/manage/secret-token-value")
    runtime.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "digestd.access"]
    assert lines[0].startswith("request method=GET path=/healthz status=200 ms=")
    assert "path=/manage/{token} status=404" in lines[1]
    assert not any("secret-token-value" in line for line in lines)
