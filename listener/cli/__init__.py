"""The command line: click commands, the only place that prints for humans and sets exit codes.

Errors are one line (``Error: ...``) on stderr, exit code 2 for configuration and schema errors,
1 for other failures; a traceback only with ``--debug``. ``--config`` works on the group and on
every command, as does ``$LISTENER_CONFIG``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from sqlalchemy import Engine

from listener import __version__
from listener import log as logsetup
from listener.config import Settings, database_url, load_config
from listener.errors import ConfigError, ListenerError, SchemaOutdatedError
from listener.storage import engine as db
from listener.untrusted import for_terminal

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
            settings = load_config(self.config_path)
            level = "debug" if self.debug else settings.log.level
            logsetup.setup(level, settings.log.format, settings.secrets)
            from listener.alarm import check

            check(settings)  # brand queries, apprise URLs, route brands: before any command
            self._settings = settings
        return self._settings

    def engine(self, *, check: bool = True) -> Engine:
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
    """Turns ListenerError into one line and the right exit code."""

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


def main() -> None:
    from listener.cli import (  # noqa: F401 (registers them)
        alerts,
        backtest,
        commands,
        demo,
        ops,
        queries,
        report,
        sentiment,
        start,
        stories,
    )

    try:
        cli.main(prog_name="listener")
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
