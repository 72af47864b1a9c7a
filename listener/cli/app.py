"""The command line's shared parts: ``App`` (per-invocation state: config path, settings,
engine), the ``cli`` group (errors as one line and exit codes; commands loaded lazily from the
table it is given), ``config_option`` and ``pass_app``. Command modules import these from here,
never from ``listener.cli`` itself, whose ``__init__`` holds the table of commands.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
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
    when one of their commands runs (``lazy``: name -> (module in listener.cli, short help),
    set by ``listener.cli`` to its COMMANDS table)."""

    lazy: Mapping[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            importlib.import_module(f"listener.cli.{self.lazy[cmd_name][0]}")
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
                command = click.Command(name, help=self.lazy[name][1])
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
