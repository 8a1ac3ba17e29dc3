"""Debian's nginx on loopback with the README's configuration, for tests and benchmarks.

The server block is read from the README (the ```nginx block that serves ``/feeds/``), so what
runs is what operators are told to install; only its addresses are changed: the listening port
(127.0.0.1, a free port), the feeds directory (`/var/lib/digestd` becomes the test's data
directory) and the upstream digestd (`127.0.0.1:8080`).

Usage from a test (`skip_unless_available()` skips with the reason and the install command)::

    from nginx import Nginx                 # tests/ is on sys.path under pytest
    Nginx.skip_unless_available()
    with Nginx(tmp_path / "nginx", data_dir, upstream_port) as front:
        httpx.get(f"http://127.0.0.1:{front.port}/feeds/all.atom")

From a script in ``benchmarks/``::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from nginx import Nginx
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import textwrap
from pathlib import Path
from types import TracebackType

from support import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
NGINX = "/usr/sbin/nginx"
INSTALL = "apt-get install nginx-light (make test installs it)"


def readme_snippet() -> str:
    """The server block of the README's nginx section (the one serving `/feeds/`)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for found in re.finditer(r"```nginx\n(.*?)```", text, re.DOTALL):
        if "server {" in found.group(1) and "location /feeds/" in found.group(1):
            return found.group(1)
    raise LookupError("README.md has no ```nginx block with a server serving /feeds/")


def nginx_config(prefix: Path, port: int, data_dir: Path, upstream: int) -> Path:
    """An nginx.conf under `prefix` holding the README's server block, on loopback."""
    snippet = readme_snippet().replace("/var/lib/digestd", str(data_dir)).replace(
        "127.0.0.1:8080", f"127.0.0.1:{upstream}"
    )
    snippet = re.sub(r"listen [^;]+;", f"listen 127.0.0.1:{port};", snippet)
    snippet = re.sub(r"server_name [^;]+;", "server_name localhost;", snippet)
    conf = prefix / "nginx.conf"
    # run as root (CI), nginx's workers would otherwise drop to nobody, who may not read a
    # private temporary directory
    conf.write_text(textwrap.dedent(f"""
        daemon off;
        {"user root;" if os.geteuid() == 0 else ""}
        worker_processes 1;
        pid {prefix}/nginx.pid;
        error_log {prefix}/error.log;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            types {{ application/atom+xml atom; application/rss+xml rss; }}
            client_body_temp_path {prefix}/body;
            proxy_temp_path {prefix}/proxy;
            fastcgi_temp_path {prefix}/fastcgi;
            uwsgi_temp_path {prefix}/uwsgi;
            scgi_temp_path {prefix}/scgi;
        """) + textwrap.indent(snippet, "    ") + "}\n")
    return conf


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Nginx:
    """nginx in the foreground with the README's server block; `.port` is where it listens."""

    def __init__(self, prefix: Path, data_dir: Path, upstream: int) -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.port = free_port()
        self.conf = nginx_config(prefix, self.port, data_dir, upstream)
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return Path(NGINX).exists() or shutil.which("nginx") is not None

    @classmethod
    def skip_unless_available(cls) -> None:
        import pytest

        if not cls.available():
            pytest.skip(f"needs Debian's nginx: {INSTALL}")

    def check(self) -> None:
        """`nginx -t`: the configuration is accepted as written."""
        result = subprocess.run(
            [self._binary(), "-t", "-q", "-p", str(self.prefix), "-c", str(self.conf)],
            capture_output=True, text=True,
        )
        assert result.returncode == 0, f"nginx -t refused the configuration: {result.stderr}"

    def _binary(self) -> str:
        return NGINX if Path(NGINX).exists() else "nginx"

    def __enter__(self) -> Nginx:
        self._process = subprocess.Popen(
            [self._binary(), "-p", str(self.prefix), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        process = self._process
        wait_for(lambda: listening(self.port) or process.poll() is not None, 20,
                 f"nginx on port {self.port}")
        if process.poll() is not None:
            _, err = process.communicate(timeout=10)
            raise RuntimeError(f"nginx did not start: {err.decode(errors='replace')}")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.communicate(timeout=10)
