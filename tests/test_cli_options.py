"""Global options work before or after the command; usage errors exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digestd import cli


def _config(tmp_path: Path, name: str) -> Path:
    data = tmp_path / name
    data.mkdir()
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[paths]\ndata_dir = "{data}"\nseeds_dir = "{data}"\n')
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "{a}", "config"],
        ["config", "--config", "{a}"],
        ["--log-level", "warning", "config", "--config", "{a}"],
        ["--config", "{b}", "config", "--config", "{a}"],  # the later one wins
        ["--config", "{a}", "--log-level", "DEBUG", "config"],
    ],
    ids=["before", "after", "mixed", "after-overrides-before", "both-before"],
)
def test_global_options_before_or_after_the_command(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    paths = {"a": _config(tmp_path, "a"), "b": _config(tmp_path, "b")}
    assert cli.main([arg.format(**paths) for arg in argv]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["source"] == str(paths["a"])
    assert shown["paths"]["data_dir"] == str(tmp_path / "a")


def test_global_options_inside_a_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "a")
    assert cli.main(["migrate", "--config", str(config)]) == 0
    capsys.readouterr()
    for argv in (
        ["--config", str(config), "subscribers", "list", "--json"],
        ["subscribers", "--config", str(config), "list", "--json"],
        ["subscribers", "list", "--json", "--config", str(config)],
    ):
        assert cli.main(argv) == 0
        assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["status", "--no-such-flag"],
        ["--log-level", "verbose", "status"],
        ["status", "--log-level", "verbose"],
        ["papers", "--limit", "many"],
        ["subscribers"],
    ],
    ids=" ".join,
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err


def test_arguments_that_name_nothing_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--config", str(_config(tmp_path, "a"))]
    assert cli.main(["migrate", *common]) == 0
    cases = [
        ["papers", "--topic", "no-such-topic"],
        ["topics", "test", "(kv AND"],
        ["subscribers", "add", "not an address", "--topic", "kv-cache"],
        ["subscribers", "add", "new@example.org"],
        ["subscribers", "remove", "nobody@example.org"],
        ["digest", "preview", "nobody@example.org"],
    ]
    for argv in cases:
        assert cli.main([*argv, *common]) == 2, argv
        # log lines (start-up INFO) may come first; the error is one line of its own
        errors = [line for line in capsys.readouterr().err.splitlines() if "level=" not in line]
        assert len(errors) == 1 and errors[0].startswith("digestd: "), (argv, errors)


def test_commands_check_only_the_directories_they_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "var"
    data.mkdir()
    config = tmp_path / "digestd.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{data}"\nseeds_dir = "{tmp_path / "typo"}"\n'
        f'templates_dir = "{tmp_path / "no-templates"}"\n'
    )
    common = ["--config", str(config)]
    assert cli.main(["config", *common]) == 0
    assert cli.main(["migrate", *common]) == 0
    assert cli.main(["subscribers", "list", *common]) == 0
    capsys.readouterr()
    assert cli.main(["run", *common]) == 2
    assert "paths.seeds_dir' names a directory that does not exist" in capsys.readouterr().err
    assert cli.main(["digest", "send", *common]) == 2
    assert "paths.templates_dir' names a directory" in capsys.readouterr().err
