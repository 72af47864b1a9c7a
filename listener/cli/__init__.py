"""The command line: click commands, the only place that prints for humans and sets exit codes.

Errors are one line (``Error: ...``) on stderr, exit code 2 for configuration and schema errors,
1 for other failures; a traceback only with ``--debug``. ``--config`` works on the group and on
every command, as does ``$LISTENER_CONFIG``. This package's ``__init__`` holds the table of
commands (``COMMANDS``: which module holds each, and its short help) and ``main``; the group,
``App`` and the shared options are ``listener.cli.app``, which command modules import.
"""

from __future__ import annotations

import importlib
import inspect
import sys

import click

from listener.cli.app import App, ListenerGroup, cli, config_option, pass_app

__all__ = [
    "COMMANDS",
    "App",
    "ListenerGroup",
    "cli",
    "config_option",
    "load_all",
    "main",
    "pass_app",
    "short_help",
]

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
    "mentions": ("mentions", "Show stored mentions, newest first."),
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
        "Daemons (heartbeats, leader, brands evaluated, last cycle), sources, firing alerts, "
        "outbox, database size and health (exit 1 when the database fails a read or a "
        "rolled-back write).",
    ),
    "stories": (
        "stories",
        "The stories behind a brand's mentions, most copies first: copies, first seen, "
        "sources, top title and the sentiment mix of the copies.",
    ),
}


cli.lazy = COMMANDS


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
