"""The command line: click commands, the only place that prints for humans and sets exit codes.

Errors are one line (``Error: ...``) on stderr, exit code 2 for configuration and schema errors,
1 for other failures; a traceback only with ``--debug``. ``--config`` works on the group and on
every command, as does ``$LISTENER_CONFIG``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from listener import __version__
from listener.errors import ConfigError, ListenerError, SchemaOutdatedError
from listener.untrusted import for_terminal

if TYPE_CHECKING:  # imported when used: `listener --help` needs neither SQLAlchemy nor pydantic
    from sqlalchemy import Engine

    from listener.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class App:
    """Per-invocation state: where the config is, and what has been loaded from it."""

    config_path: str | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            from listener import log as logsetup
            from listener.config import load_config

            settings = load_config(self.config_path)
            level = "debug" if self.debug else settings.log.level
            logsetup.setup(level, settings.log.format, settings.secrets)
            from listener.checks import check

            check(settings)  # brand queries, apprise URLs, route brands: before any command
            self._settings = settings
        return self._settings

    def engine(self, *, check: bool = True) -> Engine:
        from listener.config import database_url
        from listener.storage import engine as db

        if self._engine is None:
            self._engine = db.connect(database_url(self.settings()))
        if check:
            db.check_schema(self._engine)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(App).config_path = value


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "-c",
        type=click.Path(dir_okay=False),
        expose_value=False,
        is_eager=True,
        callback=_set_config,
        help="Configuration file (default: $LISTENER_CONFIG, ./listener.toml, "
        "$XDG_CONFIG_HOME/listener/config.toml, /etc/listener/config.toml).",
    )(func)


class ListenerGroup(click.Group):
    """Turns ListenerError into one line and the right exit code; loads command modules only
    when one of their commands runs (see COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"listener.cli.{COMMANDS[cmd_name][0]}")
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:  # not loaded: its help from the table
                command = click.Command(name, help=COMMANDS[name][1])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ListenerError as exc:
            app = ctx.find_object(App)
            if app is not None and app.debug:
                raise
            click.echo(f"Error: {for_terminal(str(exc))}", err=True)
            detail = getattr(exc, "detail", None)
            if detail:
                click.echo(for_terminal(detail, keep_newlines=True), err=True)
            for more in getattr(exc, "more", ()):
                click.echo(f"Error: {for_terminal(more)}", err=True)
            code = 2 if isinstance(exc, ConfigError | SchemaOutdatedError) else 1
            ctx.exit(code)
        finally:
            app = ctx.find_object(App)
            if app is not None:
                app.close()


@click.group(cls=ListenerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(__version__, prog_name="listener")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """listener: hears what the web says about your brands, and tells you when it turns sour."""
    app = ctx.ensure_object(App)
    app.debug = debug or app.debug
    if app.config_path is None and os.environ.get("LISTENER_CONFIG"):
        app.config_path = os.environ["LISTENER_CONFIG"]


pass_app = click.make_pass_decorator(App, ensure=True)


# Where each command lives, and its help's first paragraph: `listener --help` lists them without
# importing what they use, and a command's module is imported only when it runs (a test keeps
# this table equal to the commands themselves).
COMMANDS: dict[str, tuple[str, str]] = {
    "alerts": (
        "alerts",
        "List alerts, newest first (subcommands: show, why, ack, silence, outbox, test).",
    ),
    "backtest": (
        "backtest",
        "Replay history through the detectors and list the alerts that would have fired.",
    ),
    "check-config": (
        "commands",
        "Validate the configuration and print a summary (secrets masked).",
    ),
    "config": ("start", "The example configuration that ships with listener."),
    "db": ("commands", "Database schema: upgrade, current."),
    "demo": (
        "demo",
        "See listener catch a crisis: ten days of sample feeds replayed in seconds, alerts "
        "delivered to a receiver on 127.0.0.1.",
    ),
    "init": ("start", "Write a starter configuration that passes check-config as it is."),
    "mentions": ("commands", "Show stored mentions, newest first."),
    "poll": (
        "commands",
        "Poll every enabled source once, store new mentions, run detection and delivery, "
        "print a summary.",
    ),
    "prune": ("ops", "Delete mentions older than their brand's retention (daily counts are kept)."),
    "query": ("queries", "Brand queries: try one on stored mentions."),
    "rematch": (
        "queries",
        "Apply the configured brand queries to every stored mention again, so that the "
        "history agrees with the config: links are added where a query now matches and "
        "removed where it no longer does.",
    ),
    "report": (
        "report",
        "Write one self-contained HTML report (works offline and as an email attachment): "
        "about ALERT_ID (its day before, the episode and a day after), or about --brand over "
        "--since.",
    ),
    "rescore": ("sentiment", "Score stored mentions again, e.g. after a model change."),
    "run": ("commands", "Run the daemon: poll every source on its interval until SIGTERM/SIGINT."),
    "sentiment": (
        "sentiment",
        "Score TEXT (or a JSON-lines stream) with the built-in sentiment scorer, and say why.",
    ),
    "sources": ("commands", "Show each configured source's health."),
    "stats": (
        "ops",
        "A terminal chart of mentions per hour, day or week and their negative share; with "
        "several --brand, side by side with each brand's share of voice.",
    ),
    "status": (
        "ops",
        "Daemons (heartbeats, leader, last cycle), sources, firing alerts, outbox, database "
        "size and health (exit 1 when the database fails a read or a rolled-back write).",
    ),
    "stories": (
        "stories",
        "The stories behind a brand's mentions, most copies first: copies, first seen, "
        "sources, top title and the sentiment mix of the copies.",
    ),
}


def short_help(text: str) -> str:
    """The first paragraph of a command's help, on one line (what COMMANDS holds)."""
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def load_all() -> None:
    """Import every command module (tests and docs checks want the whole CLI)."""
    for module in sorted({module for module, _ in COMMANDS.values()}):
        importlib.import_module(f"listener.cli.{module}")


def main() -> None:
    try:
        cli.main(prog_name="listener")
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
