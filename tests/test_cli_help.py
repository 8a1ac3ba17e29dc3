"""Every command has help, and the README's command table names only commands and flags that
exist (and every command that exists)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from digestd import cli

REPO = Path(__file__).resolve().parents[1]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every command and group below `parser`, by its words (("topics", "list"), ...)."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for name, sub in _subparsers(parser).items():
        found[(*path, name)] = sub
        found.update(_commands(sub, (*path, name)))
    return found


COMMANDS = _commands(cli.build_parser())
LEAVES = {path for path, parser in COMMANDS.items() if not _subparsers(parser)}


def test_the_command_tree_is_the_documented_one() -> None:
    assert {" ".join(p) for p in LEAVES} >= {
        "run", "status", "ingest", "papers", "topics list", "topics test", "subscribers add",
        "subscribers list", "subscribers remove", "subscribers import", "feeds build",
        "digest preview", "digest send", "config",
    }


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: digestd {' '.join(path)} ")
    description = COMMANDS[path].description
    assert description and len(description.split()) >= 4, f"{path}: no description"
    # argparse reflows the description; compare words, not lines
    assert " ".join(description.split()[:4]) in " ".join(out.split())
    for action in COMMANDS[path]._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"{path} {choice.dest}: no summary in the list"
        elif not isinstance(action, argparse._HelpAction):
            assert action.help, f"{' '.join(path)} {action.option_strings or action.dest}: no help"


def test_the_installed_entry_point_answers_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digestd", "--help"], capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    for path in COMMANDS:
        if len(path) == 1:
            assert re.search(rf"^\s+{path[0]}\b", result.stdout, re.M), path


# The README's table ------------------------------------------------------------------------------


def _readme_rows() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `digestd")]


def _documented() -> list[tuple[tuple[str, ...], set[str]]]:
    """(command words, flags shown) for each command the README's table names.

    A row may name several: `digestd subscribers list [--json]` / `remove EMAIL` / `import CSV`
    — the later ones belong to the first one's group.
    """
    documented = []
    for row in _readme_rows():
        first_cell = row.split(" | ")[0]
        group: tuple[str, ...] = ()
        for snippet in re.findall(r"`([^`]+)`", first_cell):
            words = snippet.replace("\\|", "|").split()
            if words[0] == "digestd":
                words = words[1:]
                relative = False
            else:
                relative = True
            path: list[str] = []
            for word in words:
                if not re.fullmatch(r"[a-z][a-z-]*", word):
                    break
                path.append(word)
            command = (*group, *path) if relative else tuple(path)
            group = command[:-1]
            documented.append((command, set(re.findall(r"--[a-z][a-z-]*", snippet))))
    return documented


def test_the_readme_table_is_found() -> None:
    assert len(_readme_rows()) >= 10


@pytest.mark.parametrize(
    ("command", "flags"), _documented(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_each_command_in_the_readme_exists_with_its_flags(
    command: tuple[str, ...], flags: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert command in LEAVES, f"README names `digestd {' '.join(command)}`, which does not exist"
    known = {o for a in COMMANDS[command]._actions for o in a.option_strings}
    assert flags <= known, f"digestd {' '.join(command)}: README shows {sorted(flags - known)}"
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: digestd {' '.join(command)}")


def test_every_command_is_in_the_readme() -> None:
    documented = {command for command, _ in _documented()}
    assert documented >= LEAVES, f"not in README: {sorted(LEAVES - documented)}"
