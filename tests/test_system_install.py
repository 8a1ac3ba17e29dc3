"""The README's systemd recipe, followed in a temporary root: the service (the unit's
environment, env file and working directory) and the operator's documented command (run from
anywhere else, with nothing in its environment) see one database and one configuration, and
the operator's read-only command creates nothing."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from digestd import cli
from digestd.envfile import parse_env_file
from digestd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
UNIT = (REPO / "systemd" / "digestd.service").read_text(encoding="utf-8")


def _systemd_section() -> str:
    return README.split("\n## Running under systemd\n", 1)[1].split("\n## ", 1)[0]


def _operator_command() -> list[str]:
    (line,) = [line for line in _systemd_section().splitlines()
               if line.startswith("sudo -u digestd ") and line.endswith(" status")]
    return shlex.split(line)


def _install_config(root: Path) -> Path:
    """The README's sed over the sample configuration, with the state under `root`."""
    expressions = re.findall(r"-e '(s\|[^']+)'", _systemd_section())
    assert len(expressions) == 2, expressions
    text = (REPO / "config" / "digestd.toml").read_text(encoding="utf-8")
    for expression in expressions:
        _, pattern, replacement, _ = expression.split("|")
        replacement = replacement.replace("/var/lib/digestd", str(root / "var/lib/digestd"))
        text = re.sub(pattern, replacement.replace("\\", "\\\\"), text, count=1, flags=re.M)
    etc = root / "etc" / "digestd"
    etc.mkdir(parents=True)
    (etc / "digestd.toml").write_text(text, encoding="utf-8")
    return etc / "digestd.toml"


def _clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DIGESTD_")} | extra


@pytest.mark.slow
def test_the_operator_command_sees_the_service(tmp_path: Path, seed_files: list[Path]) -> None:
    root = tmp_path / "root"
    state = root / "var" / "lib" / "digestd"
    (state / "seeds").mkdir(parents=True)
    config = _install_config(root)
    env_file = config.parent / "digestd.env"
    env_file.write_text(
        (REPO / "systemd" / "digestd.env.example").read_text()
        + "DIGESTD_BASE_URL=https://digest.example.org\n"
    )

    # The service: the unit's Environment= and EnvironmentFile=, in its WorkingDirectory.
    (unit_env,) = re.findall(r"^Environment=DIGESTD_CONFIG=(\S+)$", UNIT, re.M)
    assert unit_env == "/etc/digestd/digestd.toml"
    assert re.search(r"^EnvironmentFile=-/etc/digestd/digestd.env$", UNIT, re.M)
    service_env = _clean_env(DIGESTD_CONFIG=str(config)) | parse_env_file(
        env_file.read_text(), str(env_file)
    )
    digestd = [sys.executable, "-m", "digestd"]

    def service(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*digestd, *args], cwd=state, env=service_env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        return result

    seed = seed_files[0]
    (state / "seeds" / seed.name).write_bytes(seed.read_bytes())
    service("subscribers", "add", "ada@example.org", "--topic", "llm-inference")
    service("ingest", str(state / "seeds"))
    stored = json.loads(service("status", "--json").stdout)["papers"]
    assert stored > 50

    # The operator: the documented command, from a directory of their own, environment clean.
    command = _operator_command()
    assert command[:3] == ["sudo", "-u", "digestd"]
    assert command[3] == "/opt/digestd/.venv/bin/digestd"
    args = [a.replace("/etc/digestd", str(config.parent)) for a in command[4:]]
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()

    def operator(*extra: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*digestd, *args[:-1], *extra], cwd=elsewhere,
                                env=_clean_env(), capture_output=True, text=True, timeout=120,
                                check=False)
        assert result.returncode == 0, result.stderr
        return result

    shown = operator("status")
    assert shown.stdout.splitlines()[0] == f"database:    {state / 'digestd.db'}"
    status = json.loads(operator("status", "--json").stdout)
    assert status["papers"] == stored and status["subscribers"] == {"active": 1}
    listed = json.loads(operator("subscribers", "list", "--json").stdout)
    assert [s["email"] for s in listed] == ["ada@example.org"]
    effective = json.loads(operator("config").stdout)
    assert effective["http"]["base_url"] == "https://digest.example.org"  # from the env file
    preview = operator("digest", "preview", "ada@example.org", "--format", "text").stdout
    assert "https://digest.example.org/manage/" in preview
    assert "127.0.0.1" not in preview
    assert list(elsewhere.iterdir()) == []  # nothing created where the operator stood


def test_env_file_format_and_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_env_file(
        "# comment\n\nDIGESTD_A=1\nexport DIGESTD_B = 'two words'\nDIGESTD_C=\"x=y\"\n", "f"
    ) == {"DIGESTD_A": "1", "DIGESTD_B": "two words", "DIGESTD_C": "x=y"}
    with pytest.raises(ConfigError, match="f line 1: expected KEY=value"):
        parse_env_file("not a pair\n", "f")

    config = tmp_path / "digestd.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')
    (tmp_path / "digestd.env").write_text(
        "DIGESTD_BASE_URL=https://from-file.example\nDIGESTD_SMTP_PORT=2525\n"
    )
    monkeypatch.setenv("DIGESTD_SMTP_PORT", "587")  # the real environment wins
    assert cli.main(["config", "--config", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["http"]["base_url"] == "https://from-file.example"
    assert shown["smtp"]["port"] == 587
