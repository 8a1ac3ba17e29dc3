"""The systemd unit: systemd-analyze verify accepts it, it is hardened as documented, and the
example environment file names only variables digestd reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from digestd.config_load import ENVIRONMENT_KEYS, load_config

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "digestd.service"
ENV_EXAMPLE = REPO / "systemd" / "digestd.env.example"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def _directives(text: str) -> dict[str, list[str]]:
    """'Section.Key' -> values, in order (a key may repeat, e.g. SystemCallFilter)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _runnable_copy(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart pointing at this interpreter, so verify checks a real binary."""
    copy = tmp_path / "digestd.service"
    copy.write_text(
        re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable} -m digestd", text, flags=re.M)
    )
    return copy


def _complaints(result: subprocess.CompletedProcess[str], unit: Path) -> list[str]:
    # verify exits 0 even for unknown keys or bad values; it says so on stderr, naming the
    # file (and the line) or the unit.
    return [
        line for line in (result.stdout + result.stderr).splitlines()
        if str(unit) in line or unit.name in line
    ]


needs_systemd_analyze = pytest.mark.skipif(
    not Path(SYSTEMD_ANALYZE).exists(), reason="systemd-analyze is not installed"
)


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = _runnable_copy(tmp_path, UNIT.read_text())
    assert f"ExecStart={sys.executable} -m digestd run" in unit.read_text()
    result = _verify(unit)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _complaints(result, unit) == []


@needs_systemd_analyze
def test_the_verify_check_would_see_a_mistake(tmp_path: Path) -> None:
    """The test above has teeth: a misspelt key and a bad value are reported and caught."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=bogus")
    broken = broken.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    unit = _runnable_copy(tmp_path, broken)
    complaints = _complaints(_verify(unit), unit)
    assert any("NoNewPrivilege" in line for line in complaints), complaints
    assert any("bogus" in line for line in complaints), complaints


@needs_systemd_analyze
def test_verify_refuses_a_missing_executable(tmp_path: Path) -> None:
    # Why the test points ExecStart elsewhere: the installed path does not exist here.
    unit = tmp_path / "digestd.service"
    unit.write_text(UNIT.read_text().replace(
        "/opt/digestd/.venv/bin/digestd", str(tmp_path / "missing" / "digestd")
    ))
    result = _verify(unit)
    assert result.returncode != 0
    assert "is not executable" in result.stdout + result.stderr


def test_the_unit_is_hardened_as_the_readme_says() -> None:
    unit = _directives(UNIT.read_text())

    def one(key: str) -> str:
        values = unit.get(key)
        assert values, f"{key} missing"
        return values[-1]

    assert one("Service.Type") == "notify"
    assert one("Service.User") == one("Service.Group") == "digestd"
    assert one("Service.StateDirectory") == "digestd"
    assert one("Service.WorkingDirectory") == "/var/lib/digestd"
    assert one("Service.ProtectSystem") == "strict"
    assert one("Service.NoNewPrivileges") == "yes"
    assert one("Service.PrivateTmp") == "yes"
    assert set(one("Service.RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert one("Service.Restart") == "on-failure"
    assert one("Service.WatchdogSec") == "60s"
    assert one("Service.ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("Service.ExecStart").endswith("digestd run")
    assert one("Service.CapabilityBoundingSet") == ""
    # sd_notify comes from the main process only, and the README promises these figures
    assert one("Service.NotifyAccess") == "main"
    readme = (REPO / "README.md").read_text()
    assert "WatchdogSec=60" in readme and "StateDirectory=digestd" in readme
    # the unit points at the environment file the README installs
    assert "-/etc/digestd/digestd.env" in unit["Service.EnvironmentFile"]
    assert one("Service.Environment") == "DIGESTD_CONFIG=/etc/digestd/digestd.toml"


def test_the_example_environment_names_only_known_variables(tmp_path: Path) -> None:
    assignments = dict(
        re.findall(r"^#?(DIGESTD_[A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.M)
    )
    assert assignments, "no variables in the example"
    known = set(ENVIRONMENT_KEYS) | {"DIGESTD_CONFIG", "DIGESTD_SMTP_PASSWORD"}
    assert set(assignments) <= known, sorted(set(assignments) - known)
    # Uncommented as they stand, they make a valid configuration.
    environ = {k: v for k, v in assignments.items() if v}
    environ["DIGESTD_DATA_DIR"] = str(tmp_path)
    (tmp_path / "empty.toml").write_text("")  # not the checkout's config/digestd.toml
    environ["DIGESTD_CONFIG"] = str(tmp_path / "empty.toml")
    config = load_config(None, environ=environ, check_dirs=False)
    assert config.mail.transport == environ.get("DIGESTD_TRANSPORT", config.mail.transport)


def test_the_readme_installs_files_the_service_user_can_read() -> None:
    """The unit runs as digestd: a 0640 root:root configuration would stop it at start."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Running under systemd", 1)[1].split("\n## ", 1)[0]
    installs = re.findall(r"^sudo install (.*) (/etc/digestd/\S+)$", section, flags=re.M)
    assert {target for _, target in installs} >= {
        "/etc/digestd/digestd.toml", "/etc/digestd/digestd.env"
    }
    unit = _directives(UNIT.read_text())
    assert unit["Service.User"] == ["digestd"]
    for options, target in installs:
        mode = re.search(r"-m (\d+)", options)
        assert mode, target
        world_readable = int(mode.group(1), 8) & 0o004
        assert world_readable or "-g digestd" in options, f"{target}: unreadable for digestd"
