"""`listener demo`: the whole pipeline on bundled sample feeds, served on 127.0.0.1, into a
throw-away SQLite file. No network beyond loopback."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from listener.cli.app import App, cli, pass_app
from listener.cli.mentions import emit_mention_table
from listener.config import Settings
from listener.demo import SOURCES, alert_sink, demo_config, serve_feeds
from listener.demo.crisis import Timeline
from listener.service import cycle
from listener.service.poll import Poller, http_settings, summarize
from listener.sources.client import Client
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
    """See listener catch a crisis: ten days of sample feeds replayed in seconds, alerts
    delivered to a receiver on 127.0.0.1."""
    workdir = directory or Path(tempfile.mkdtemp(prefix="listener-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "listener.toml"
    database = workdir / "listener.db"
    timeline = Timeline(datetime.now(UTC).replace(second=0, microsecond=0))
    steps = timeline.steps()
    clock = [steps[0]]
    click.secho("listener demo", bold=True)
    click.echo(
        f"Serving {len(SOURCES) + 1} sample feeds on 127.0.0.1 and polling them into {database}.\n"
        "One forum feed replays the last days of two crises, on a clock that runs "
        "2 hours (20 minutes around the storm) per poll."
    )
    with serve_feeds(timeline, clock) as base_url, alert_sink() as (sink, received):
        config_path.write_text(demo_config(base_url, database, sink), encoding="utf-8")
        app.config_path = str(config_path)
        settings = app.settings()
        engine = app.engine(check=False)
        db.upgrade(engine)
        report = asyncio.run(_replay(settings, engine, steps, clock, received))
    first, second = report.first, report.second
    click.echo(
        f"\nFirst poll: {first['ok']}/{first['sources']} sources ok, {first['items']} items "
        f"read, {first['new']} mentions of {', '.join(b.name for b in settings.brands)} stored."
    )
    click.echo(
        f"Second poll: {second['not_modified']} sources answered 304 Not Modified, "
        f"{second['new']} new mentions (nothing is stored twice)."
    )
    click.echo(
        f"Replayed {len(steps)} polls over {_days(steps[-1] - steps[0])}: "
        f"{report.fired} alerts fired, {report.resolved} resolved, {len(received)} "
        "notifications delivered."
    )
    found = store.query_mentions(engine, store.MentionFilter(limit=8))
    emit_mention_table(found, title="Newest mentions", drop=("url", "author"))
    cfg = shlex.quote(str(config_path))
    click.echo("\nExplore them (the demo files stay in " + str(workdir) + "):")
    program = _program()
    for command in (
        f"{program} stats --config {cfg} --brand Velora --since 2d",
        f"{program} stats --config {cfg} --brand Nordbahn --since 10d",
        f"{program} alerts --config {cfg}",
        f"{program} alerts show 1 --config {cfg}",
        f"{program} mentions --config {cfg} --brand Velora",
        f"{program} mentions --config {cfg} --brand Nordbahn --format json",
        f"{program} mentions --config {cfg} --search pen --since 30d",
        f"{program} mentions --config {cfg} --sentiment negative --brand Velora",
        f"{program} query test --config {cfg} 'Velora NEAR/6 pen OR refund*'",
        f"{program} backtest --config {cfg} --brand Nordbahn --since 7d",
        f"{program} sources --config {cfg}",
        f"{program} status --config {cfg}",
        f"{program} check-config --config {cfg}",
    ):
        click.echo(f"  {command}")


@dataclass
class _Report:
    first: dict[str, int] = field(default_factory=dict)
    second: dict[str, int] = field(default_factory=dict)
    fired: int = 0
    resolved: int = 0


async def _replay(
    settings: Settings,
    engine: Any,
    steps: list[datetime],
    clock: list[datetime],
    received: list[dict[str, Any]],
) -> _Report:
    """Poll, detect and deliver at each step of the simulated clock, printing alerts as the
    receiver gets them."""
    report = _Report()
    shown = 0
    async with Client(http_settings(settings)) as client:
        poller = Poller(settings, engine, client, clock=lambda: clock[0])
        try:
            await poller.prepare()
            for index, moment in enumerate(steps):
                clock[0] = moment
                done = await cycle.run(poller, engine, settings, moment)
                if index == 0:
                    report.first = summarize(done.polls)
                    report.second = summarize(await poller.poll_all())
                if done.alerted is not None:
                    report.fired += done.alerted.evaluation.fired
                    report.resolved += done.alerted.evaluation.resolved
                for note in received[shown:]:
                    _show(moment, note)
                shown = len(received)
        finally:
            poller.close()
    return report


def _show(moment: datetime, note: dict[str, Any]) -> None:
    click.echo("")
    title = for_terminal(str(note.get("title", "")))
    click.secho(f"[{moment:%a %d %b %H:%M} UTC] {title}", bold=True)
    for line in str(note.get("message", "")).splitlines()[1:7]:
        click.echo(f"  {for_terminal(line)}")


def _days(span: timedelta) -> str:
    return f"{span.total_seconds() / 86400:.1f} days"


def _program() -> str:
    """How this listener was started, so that the printed commands work when pasted."""
    argv0 = sys.argv[0]
    if argv0.endswith("__main__.py"):
        return f"{shlex.quote(sys.executable)} -m listener"
    if "/" in argv0 and shutil.which("listener") != str(Path(argv0).resolve()):
        return shlex.quote(argv0)
    return "listener"
