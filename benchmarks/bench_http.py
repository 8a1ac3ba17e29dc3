"""Conditional feed requests: digestd next to a bare uvicorn app and nginx, on the same file.

    .venv/bin/python benchmarks/bench_http.py [--duration 10] [--connections 50] [--rounds 3]

Needs ``wrk`` and ``nginx`` (Debian: ``apt-get install wrk nginx-light``). Ingests the sample
dumps, builds the feeds, then serves ``/feeds/all.atom`` three ways on loopback, taking
turns, and measures ``GET`` with ``If-None-Match`` (answered 304) with wrk:

- digestd's own server (uvicorn, one worker), as the daemon runs it;
- a bare uvicorn app that holds the same file in memory and answers 304 on its ETag: the
  floor for any Python server on this machine;
- nginx serving the feeds directory with the configuration the README gives (the snippet is
  read from the README, so what is measured is what is documented).

Each server gets its own process; wrk runs with 2 threads, the servers taking turns for
``--rounds`` rounds (medians reported). Compare ratios, not absolutes: the machine is shared.

On two cores wrk and the server share the CPU, and such runs of one tree differ by a third.
``--in-process`` instead times the ASGI call alone, in this process, without sockets: CPU per
304 of digestd's app (as `make_server` builds it) and of the bare app, taking turns for
``--rounds`` rounds of ``--calls`` calls. It needs neither wrk nor nginx, and repeats to within
a few per cent, so it shows what a change to digestd's own answer costs or saves.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "samples" / "seeds"

# nginx with the README's configuration, and the loopback helpers the tests use
sys.path.insert(0, str(REPO / "tests"))
from nginx import listening, nginx_config  # noqa: E402

from support import free_port, wait_for  # noqa: E402

BARE_APP = '''
import hashlib, sys
body = open(sys.argv[1], "rb").read()
etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    if headers.get(b"if-none-match") == etag.encode():
        await send({"type": "http.response.start", "status": 304,
                    "headers": [(b"etag", etag.encode())]})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"etag", etag.encode()),
                            (b"content-type", b"application/atom+xml")]})
    await send({"type": "http.response.body", "body": body})

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False, server_header=False)
'''


def etag_of(port: int, path: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} on port {port}: {response.status}")
    return response.getheader("ETag") or ""


def check_304(port: int, path: str, etag: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"If-None-Match": etag})
    response = connection.getresponse()
    response.read()
    connection.close()
    if response.status != 304:
        raise RuntimeError(f"expected 304 from port {port}, got {response.status}")


def wrk(port: int, path: str, etag: str, duration: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-H", f"If-None-Match: {etag}",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(out)
    return float(found.group(1))


def prepared(tmp: Path) -> tuple[dict[str, str], Path]:
    """A data directory under `tmp` with the sample dumps ingested and the feeds built: the
    environment that points digestd at it, and the path of all.atom."""
    data = tmp / "var"
    env = {**os.environ, "DIGESTD_SEEDS_DIR": str(tmp / "seeds"), "DIGESTD_DATA_DIR": str(data)}
    (tmp / "seeds").mkdir()
    data.mkdir()
    for seed in SEEDS.glob("*.txt"):
        shutil.copy(seed, tmp / "seeds" / seed.name)
    python = sys.executable
    subprocess.run([python, "-m", "digestd", "ingest", str(tmp / "seeds")], env=env,
                   check=True, capture_output=True)
    feed = data / "feeds" / "all.atom"
    if not feed.exists():
        subprocess.run([python, "-m", "digestd", "feeds", "build"], env=env, check=True,
                       capture_output=True)
    return env, feed


def in_process(env: dict[str, str], feed: Path, calls: int, rounds: int) -> None:
    """CPU per 304 of digestd's ASGI app and of the bare app, called directly, in turns."""
    import asyncio

    from digestd.config_load import load_config
    from digestd.runtime import Runtime
    from digestd.web.server import make_server

    runtime = Runtime.open(load_config(environ=env))
    ours = make_server(runtime).config.app
    # the same bare app the wrk runs start, its file read from `feed`
    bare: dict[str, Any] = {"open": lambda *_: feed.open("rb"), "sys": sys}
    exec(BARE_APP.split("if __name__")[0], bare)
    apps = {"digestd": ours, "bare app": bare["app"]}
    etags = {
        "digestd": ours.state.feed_files.get(runtime.config.feeds_dir / "all.atom").etag,
        "bare app": bare["etag"],
    }

    async def call(app, scope, times):  # type: ignore[no-untyped-def]
        answered = []

        async def send(message):  # type: ignore[no-untyped-def]
            answered.append(message)

        async def receive():  # type: ignore[no-untyped-def]
            return {"type": "http.request", "body": b"", "more_body": False}

        for _ in range(times):
            await app(scope, receive, send)
        return answered[0]["status"]

    def scope(etag: str) -> dict[str, object]:
        # the header fields a feed reader sends with its poll
        return {"type": "http", "method": "GET", "path": "/feeds/all.atom", "headers": [
            (b"host", b"127.0.0.1"), (b"user-agent", b"bench"), (b"accept", b"*/*"),
            (b"accept-encoding", b"identity"), (b"if-none-match", etag.encode()),
        ], "client": ("127.0.0.1", 1), "query_string": b"", "root_path": ""}

    per_call: dict[str, list[float]] = {name: [] for name in apps}
    for name, app in apps.items():  # warm-up, and the answer is a 304
        status = asyncio.run(call(app, scope(etags[name]), 100))
        if status != 304:
            raise SystemExit(f"{name} answered {status}, not 304")
    for _ in range(rounds):
        for name, app in apps.items():
            started = time.process_time()
            asyncio.run(call(app, scope(etags[name]), calls))
            per_call[name].append((time.process_time() - started) / calls * 1e6)
    for name, times in per_call.items():
        print(f"{name:<10} {statistics.median(times):6.2f} µs CPU per 304 "
              f"(rounds: {', '.join(f'{t:.2f}' for t in times)})")
    runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-process", action="store_true",
                        help="time the ASGI call of each app in this process instead")
    parser.add_argument("--calls", type=int, default=50_000, help="per round, --in-process")
    args = parser.parse_args()
    if args.in_process:
        with tempfile.TemporaryDirectory() as tmp_dir:
            env, feed = prepared(Path(tmp_dir))
            in_process(env, feed, args.calls, args.rounds)
        return
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is needed: apt-get install wrk nginx-light")

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        env, feed = prepared(tmp)
        data = tmp / "var"
        python = sys.executable
        path = "/feeds/all.atom"
        results: dict[str, float] = {}
        processes: list[subprocess.Popen[bytes]] = []
        try:
            digestd_port = free_port()
            processes.append(subprocess.Popen(
                [python, "-m", "digestd", "run"],
                env={**env, "DIGESTD_HTTP_ADDRESS": f"127.0.0.1:{digestd_port}"},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            bare_port = free_port()
            script = tmp / "bare.py"
            script.write_text(BARE_APP)
            processes.append(subprocess.Popen(
                [python, str(script), str(feed), str(bare_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            nginx_port = free_port()
            prefix = tmp / "nginx"
            prefix.mkdir()
            conf = nginx_config(prefix, nginx_port, data, digestd_port)
            processes.append(subprocess.Popen(
                ["nginx", "-p", str(prefix), "-c", str(conf)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            servers = (("digestd", digestd_port), ("bare uvicorn", bare_port),
                       ("nginx", nginx_port))
            etags = {}
            for name, port in servers:
                wait_for(lambda port=port: listening(port), 20, f"a server on {port}")
                etags[name] = etag_of(port, path)
                check_304(port, path, etags[name])
            # Interleaved rounds: a change in the machine's load hits every server alike.
            runs: dict[str, list[float]] = {name: [] for name, _ in servers}
            for _ in range(args.rounds):
                for name, port in servers:
                    runs[name].append(
                        wrk(port, path, etags[name], args.duration, args.connections)
                    )
            for name, _ in servers:
                results[name] = statistics.median(runs[name])
                print(f"{name:<14} {results[name]:10,.0f} requests/s  (304, ETag "
                      f"{etags[name][:20]}…; rounds: "
                      f"{', '.join(f'{r:,.0f}' for r in runs[name])})")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)
        ours = results["digestd"]
        print(f"ratio: bare uvicorn / digestd = {results['bare uvicorn'] / ours:.2f}; "
              f"nginx / digestd = {results['nginx'] / ours:.1f}")


if __name__ == "__main__":
    main()
