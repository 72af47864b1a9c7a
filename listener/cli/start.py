"""Getting started: ``listener init`` writes a starter configuration that works as it is, and
``listener config example`` prints the fully commented example that ships with the package.

The starter needs no environment variable and no external service: one brand, one news-search
feed for it, an SQLite database beside the configuration, and (with ``--route``) one alert
route. It is checked with the same validation as every other configuration before it is
written, so a starter that ``check-config`` would refuse is never written.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import click

from listener.cli.app import cli
from listener.config import validate_config
from listener.errors import ConfigError, InputError


def example_text() -> str:
    """The commented example configuration shipped inside the package."""
    return (resources.files("listener") / "config.example.toml").read_text(encoding="utf-8")


@cli.group("config")
def config_group() -> None:
    """The example configuration that ships with listener."""


@config_group.command("example")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write it to this file instead of standard output (refuses to overwrite).",
)
def config_example(output: Path | None) -> None:
    """Print the example configuration: every key, with a comment."""
    text = example_text()
    if output is None:
        click.echo(text, nl=False)
        return
    _write_new(output, text, force=False)
    click.echo(f"Wrote the example configuration to {output}", err=True)


def _toml_string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes for everything json.dumps emits
    return json.dumps(value, ensure_ascii=False)


def starter_config(
    brand: str, *, database: Path, route: str | None = None, language: str = "en"
) -> str:
    """A small configuration that validates as it is: one brand, a news-search feed, SQLite."""
    country = {"en": "US", "de": "DE"}.get(language, "US")
    lines = [
        "# listener starter configuration, written by `listener init`.",
        "# Every key is explained in the full example: `listener config example`.",
        "",
        "[database]",
        "# SQLite beside this file; PostgreSQL for bigger installs (see the example).",
        f"url = {_toml_string('sqlite:///' + str(database))}",
        "",
        "[[brands]]",
        f"name = {_toml_string(brand)}",
        "# Words and phrases that mean this brand; or a boolean `query` (see the README).",
        f"terms = [{_toml_string(brand)}]",
        "",
        "[[sources]]",
        f"name = {_toml_string('news-' + _slug(brand))}",
        '# A news search for the brand; add RSS/Atom feeds with kind = "feed" and url = ...',
        'kind = "google_news"',
        f"query = {_toml_string(brand)}",
        f"language = {_toml_string(language)}",
        f"country = {_toml_string(country)}",
        'interval = "15m"',
        "",
    ]
    if route is not None:
        lines += [
            "[[routes]]",
            'name = "team"',
            "# An apprise URL: Slack, Teams, Matrix, Telegram, email (mailtos://), webhooks.",
            f"urls = [{_toml_string(route)}]",
            'format = "markdown"',
            "",
        ]
    else:
        lines += [
            "# Alerts go nowhere until a route is configured, for example:",
            "# [[routes]]",
            '# name = "team"',
            '# urls = ["slack://TokenA/TokenB/TokenC/#pr-team"]',
            "",
        ]
    return "\n".join(lines)


def _slug(name: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in name.casefold()).strip("-")
    return "-".join(part for part in slug.split("-") if part) or "brand"


def _write_new(path: Path, text: str, *, force: bool) -> None:
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; hint: pass --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror}") from None


@cli.command("init")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("listener.toml"),
    show_default=True,
    help="Where to write the configuration.",
)
@click.option("--brand", default="Kryptonite", show_default=True, help="The brand to watch.")
@click.option(
    "--language",
    type=click.Choice(["en", "de"]),
    default="en",
    show_default=True,
    help="Language and country edition of the news search.",
)
@click.option(
    "--database",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file (default: listener.db beside the configuration).",
)
@click.option("--route", default=None, help="An apprise URL to send alerts to (optional).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(
    output: Path,
    brand: str,
    language: str,
    database: Path | None,
    route: str | None,
    force: bool,
) -> None:
    """Write a starter configuration that passes check-config as it is."""
    brand = brand.strip()
    if not brand:
        raise click.BadParameter("must not be empty", param_hint="--brand")
    database = (database or output.parent / "listener.db").absolute()
    text = starter_config(brand, database=database, route=route, language=language)
    import tomllib

    try:  # the starter goes through the same checks as any configuration
        validate_config(tomllib.loads(text), file=output, env={})
    except ConfigError as exc:
        raise ConfigError(f"the starter configuration would not be valid: {exc}") from None
    if route is not None:
        from listener.alerting.deliver import check_url

        problem = check_url(route)
        if problem is not None:
            raise click.BadParameter(problem, param_hint="--route")
    _write_new(output, text, force=force)
    say = click.echo
    say(f"Wrote {output} (brand {brand!r}, a news search, database {database}).")
    say("Next:")
    config = "" if output == Path("listener.toml") else f" --config {output}"
    say(f"  listener{config} check-config")
    say(f"  listener{config} db upgrade")
    say(f"  listener{config} poll --once")
    say(f"  listener{config} mentions --since 7d")
    if sys.stdout.isatty() and route is None:
        say("Add a [[routes]] table to get alerts (see `listener config example`).")
