"""Docs that must not drift from the code: the README's commands, the CLI, the changelog."""

from __future__ import annotations

import re
from pathlib import Path

import click

import listener.cli.commands
import listener.cli.demo  # noqa: F401
from listener.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(python3 -m venv .*)\n```", README)


def test_readme_first_screen_has_the_two_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:20])
    run, test = readme_commands()[:2]
    assert run in first_screen and test in first_screen
    assert run.endswith("listener demo")
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()


def test_every_command_is_in_the_readme() -> None:
    def names(group: click.Group, prefix: str = "") -> list[str]:
        found = []
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += names(command, f"{prefix}{name} ")
            else:
                found.append(f"{prefix}{name}")
        return found

    for name in names(cli):
        assert f"listener {name}" in README, f"README does not mention `listener {name}`"


def test_changelog_has_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
