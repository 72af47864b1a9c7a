"""`listener demo`: the whole pipeline on bundled sample feeds, served on 127.0.0.1, into a
throw-away SQLite file. No network beyond loopback."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from listener.alarm import deliver, evaluate
from listener.cli import App, cli, pass_app
from listener.cli.commands import emit_mention_table, poll_cycle
from listener.demo import SOURCES, alert_sink, demo_config, serve_feeds
from listener.pipeline import summarize
from listener.storage import engine as db
from listener.storage import store
from listener.untrusted import for_terminal


@cli.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to put the demo config and database (default: a new temporary directory).",
)
@pass_app
def demo(app: App, directory: Path | None) -> None:
    """See listener work in one command: sample feeds in, brand mentions out."""
    workdir = directory or Path(tempfile.mkdtemp(prefix="listener-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "listener.toml"
    database = workdir / "listener.db"
    click.secho("listener demo", bold=True)
    click.echo(
        f"Serving {len(SOURCES) + 1} sample feeds on 127.0.0.1 (one with a storm going on right "
        f"now) and polling them into {database}"
    )
    now = datetime.now(UTC)
    with serve_feeds(now) as base_url, alert_sink() as (sink, received):
        config_path.write_text(demo_config(base_url, database, sink), encoding="utf-8")
        app.config_path = str(config_path)
        settings = app.settings()
        engine = app.engine(check=False)
        db.upgrade(engine)
        first = summarize(asyncio.run(poll_cycle(settings, engine, show_progress=False)))
        second = summarize(asyncio.run(poll_cycle(settings, engine, show_progress=False)))
        # Buckets are judged once they have settled (`[detection] lateness` after they end); the
        # daemon judges one every `bucket`. The demo moves its clock ahead by that much instead
        # of waiting.
        ahead = timedelta(seconds=settings.detection.lateness + settings.detection.bucket)
        later = datetime.now(UTC) + ahead
        detection = evaluate(engine, settings, later)
        delivery = deliver(engine, settings, later)
    click.echo(
        f"First poll: {first['ok']}/{first['sources']} sources ok, {first['items']} items read, "
        f"{first['new']} mentions of {', '.join(b.name for b in settings.brands)} stored."
    )
    click.echo(
        f"Second poll: {second['not_modified']} sources answered 304 Not Modified, "
        f"{second['new']} new mentions (nothing is stored twice)."
    )
    found = store.query_mentions(engine, store.MentionFilter(limit=12))
    emit_mention_table(found, title="Newest mentions", drop=("url", "author"))
    minutes = int(ahead.total_seconds() // 60)
    click.echo(
        f"\nDetection (the clock moved {minutes} minutes ahead, as if the daemon had kept running:"
        " a bucket is judged once late items had time to arrive):"
    )
    click.echo(
        f"{detection.fired} alert(s) fired, {detection.historic} past episode(s) "
        f"recorded quietly; {delivery.delivered} notification(s) delivered to the demo's webhook "
        "receiver on 127.0.0.1:"
    )
    for note in received:
        click.echo("")
        click.secho(for_terminal(str(note.get("title", ""))), bold=True)
        for line in str(note.get("message", "")).splitlines():
            click.echo(f"  {for_terminal(line)}")
    cfg = shlex.quote(str(config_path))
    click.echo("\nExplore them (the demo files stay in " + str(workdir) + "):")
    program = _program()
    for command in (
        f"{program} mentions --config {cfg} --brand Velora",
        f"{program} mentions --config {cfg} --brand Nordbahn --format json",
        f"{program} mentions --config {cfg} --search pen --since 30d",
        f"{program} mentions --config {cfg} --sentiment negative --brand Velora",
        f"{program} query test --config {cfg} 'Velora NEAR/6 pen OR refund*'",
        f"{program} sources --config {cfg}",
        f"{program} alerts --config {cfg}",
        f"{program} alerts show 1 --config {cfg}",
        f"{program} backtest --config {cfg} --brand Velora --since 2d",
        f"{program} stats --config {cfg} --brand Velora --since 12h",
        f"{program} status --config {cfg}",
        f"{program} check-config --config {cfg}",
    ):
        click.echo(f"  {command}")


def _program() -> str:
    """How this listener was started, so that the printed commands work when pasted."""
    argv0 = sys.argv[0]
    if argv0.endswith("__main__.py"):
        return f"{shlex.quote(sys.executable)} -m listener"
    if "/" in argv0 and shutil.which("listener") != str(Path(argv0).resolve()):
        return shlex.quote(argv0)
    return "listener"
