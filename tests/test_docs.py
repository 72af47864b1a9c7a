"""Docs that must not drift from the code: the README's commands, the CLI, the changelog."""

from __future__ import annotations

import re
from pathlib import Path

import click

from listener.cli import COMMANDS, cli, load_all, short_help

load_all()  # the CLI loads command modules lazily; these checks want every command

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


def test_the_lazy_command_table_matches_the_commands() -> None:
    assert set(COMMANDS) == set(cli.commands)
    for name, (module, summary) in COMMANDS.items():
        command = cli.commands[name]
        assert command.callback is not None
        assert command.callback.__module__ == f"listener.cli.{module}", name
        assert summary == short_help(command.help or ""), name


def test_help_lists_every_command_without_loading_them() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from listener.cli import main; sys.argv = ['listener', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'pydantic', 'listener.service.poll', 'apprise')"
        " if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout, done.stdout
    for name in COMMANDS:
        assert f"  {name} " in done.stdout


def test_changelog_has_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
