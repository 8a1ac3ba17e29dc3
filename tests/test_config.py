"""Configuration: defaults → file → environment → validation, and the CLI's exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from digestd.config import Config
from digestd.config_load import load_config
from digestd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digestd.toml"
    path.write_text(text)
    return path


def test_builtin_defaults_match_the_design() -> None:
    config = load_config(None, environ={})
    assert config.paths.seeds_dir == Path("seeds")
    assert config.paths.data_dir == Path("var")
    assert config.database_url == "sqlite:///var/digestd.db"
    assert config.feeds_dir == Path("var/feeds")
    assert config.outbox_dir == Path("var/outbox")
    assert config.http.address == "127.0.0.1:8080"
    assert config.base_url == "http://127.0.0.1:8080"
    assert config.mail.transport == "maildir"


def test_shipped_config_file_loads_and_matches_defaults() -> None:
    config = load_config(REPO / "config" / "digestd.toml", environ={})
    defaults = Config()
    assert config.paths == defaults.paths
    assert config.http == defaults.http
    assert config.ingest == defaults.ingest
    assert config.mail == defaults.mail
    assert config.log == defaults.log
    assert config.metrics == defaults.metrics


def test_a_bad_value_from_the_environment_is_blamed_on_the_variable(tmp_path: Path) -> None:
    path = _write(tmp_path, '[http]\naddress = "127.0.0.1:9999"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"DIGESTD_HTTP_ADDRESS": "no-port"})
    assert str(caught.value).startswith("environment variable DIGESTD_HTTP_ADDRESS (http.address)")
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"DIGESTD_LOG_FORMAT": "xml"})
    assert "built-in defaults" not in str(caught.value)
    assert "DIGESTD_LOG_FORMAT" in str(caught.value)
    # the same mistake in the file is blamed on the file
    with pytest.raises(ConfigError, match=r"digestd\.toml: key 'log\.format'"):
        load_config(_write(tmp_path, '[log]\nformat = "xml"\n'), environ={})


def test_metrics_networks_are_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, '[metrics]\nallow = ["10.0.0.0/8", "fd00::/8"]\n')
    assert load_config(path, environ={}).metrics.allow == ("10.0.0.0/8", "fd00::/8")
    with pytest.raises(ConfigError, match=r"metrics\.allow"):
        load_config(_write(tmp_path, '[metrics]\nallow = ["intranet"]\n'), environ={})
    with pytest.raises(ConfigError, match="array of strings"):
        load_config(_write(tmp_path, '[metrics]\nallow = "10.0.0.0/8"\n'), environ={})


def test_file_then_environment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = _write(
        tmp_path,
        f'[paths]\ndata_dir = "{data}"\n[http]\naddress = "127.0.0.1:9999"\n'
        '[smtp]\nport = 2525\n',
    )
    config = load_config(path, environ={})
    assert config.paths.data_dir == data
    assert config.http_host_port == ("127.0.0.1", 9999)
    assert config.smtp.port == 2525
    config = load_config(
        path,
        environ={
            "DIGESTD_HTTP_ADDRESS": "0.0.0.0:8081",
            "DIGESTD_SMTP_PORT": "1025",
            "DIGESTD_DATABASE_URL": "postgresql+psycopg://u:secret@db/digest",
            "DIGESTD_BASE_URL": "https://digest.example.org/",
            "DIGESTD_TRANSPORT": "smtp",
        },
    )
    assert config.http.address == "0.0.0.0:8081"
    assert config.smtp.port == 1025
    assert config.mail.transport == "smtp"
    assert config.base_url == "https://digest.example.org"
    assert config.database_url.endswith("@db/digest")
    assert "secret" not in str(config.redacted())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[paths]\nseed_dir = 'x'\n", "unknown key 'paths.seed_dir'"),
        ("colour = 'blue'\n", "unknown key 'colour'"),
        ("[smtp]\nport = 'twenty-five'\n", "key 'smtp.port' must be an integer"),
        ("[feeds]\nmax_items = true\n", "key 'feeds.max_items' must be an integer"),
        ("[http]\naddress = 'localhost'\n", "key 'http.address'"),
        ("[mail]\ntransport = 'pigeon'\n", "key 'mail.transport' must be 'maildir' or 'smtp'"),
        ("[paths]\nseeds_dir = '/does/not/exist'\n", "key 'paths.seeds_dir' names a directory"),
        ("[ingest]\nscan_interval = 0\n", "key 'ingest.scan_interval' must be positive"),
        ("[[topics]]\nslug = 'x'\n", "topics[0] needs name, query"),
        (f"[[topics]]\nslug = '{'a' * 65}'\nname = 'A'\nquery = 'a'\n",
         "key 'topics[0].slug' must be at most 64 characters"),
        ("[paths\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.exit_status == 2


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="DIGESTD_SMTP_PORT must be an integer"):
        load_config(None, environ={"DIGESTD_SMTP_PORT": "abc"})


def test_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "[paths]\nseed_dir = 'x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "digestd", "papers", "--config", str(path)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'paths.seed_dir'" in lines[0]


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[feeds]\nmax_items = 7\n")
    result = subprocess.run(
        [sys.executable, "-m", "digestd", "config"],
        capture_output=True, text=True, cwd=tmp_path, env={"DIGESTD_CONFIG": str(path),
                                                         "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert '"max_items": 7' in result.stdout
