"""The package as users get it: `python -m build` (sdist, then the wheel from the sdist) warns
about nothing, and the wheel installed in a clean virtual environment outside the repository
runs the quick start from an empty directory: `digestd run` serves, ingests the samples and
mails the demo digest, with templates, samples and migrations all taken from the package."""

from __future__ import annotations

import json
import mailbox
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    # Nothing of the developer's environment that could point back into the repository.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DIGESTD_", "PYTHON", "VIRTUAL_ENV"))}
    return env | extra


def test_the_wheel_runs_the_quick_start_from_an_empty_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)],
        capture_output=True, text=True, timeout=300, env=_env(), check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    warnings = [line for line in (built.stdout + built.stderr).splitlines()
                if "warn" in line.lower()]
    assert warnings == []
    (wheel,) = dist.glob("digestd-*.whl")
    assert len(list(dist.glob("digestd-*.tar.gz"))) == 1

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)],
        check=True, timeout=300, env=_env(), capture_output=True,
    )
    digestd = str(venv / "bin" / "digestd")
    python = str(venv / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import digestd, digestd.resources as r; "
         "print(digestd.__file__); print(r.templates_dir())"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=_env(),
    ).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where

    home = tmp_path / "empty"
    home.mkdir()
    port = free_port()
    env = _env(DIGESTD_HTTP_ADDRESS=f"127.0.0.1:{port}")
    version = subprocess.run([digestd, "--version"], capture_output=True, text=True,
                             cwd=home, env=env, check=True)
    from digestd import __version__

    assert version.stdout.strip() == f"digestd {__version__}"
    quick = subprocess.run([digestd, "quickstart"], capture_output=True,
                           text=True, cwd=home, env=env, timeout=60, check=False)
    assert quick.returncode == 0, quick.stderr
    assert "sample dumps" in quick.stdout

    daemon = subprocess.Popen([digestd, "run"], cwd=home, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        outbox = home / "var" / "outbox"

        def digests() -> list[bytes]:
            try:
                return [m.as_bytes() for m in mailbox.Maildir(outbox, create=False)]
            except (FileNotFoundError, mailbox.NoSuchMailboxError):
                return []

        (digest,) = wait_for(digests, 60, "the demo digest in var/outbox")
        assert b"reader@example.org" in digest
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "<form" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/feeds/all.atom", timeout=5).status_code == 200
        status = subprocess.run([digestd, "status", "--json"], capture_output=True, text=True,
                                cwd=home, env=env, check=True)
        assert json.loads(status.stdout)["papers"] == 444
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
