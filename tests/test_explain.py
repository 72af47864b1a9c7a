"""Why, and why not: `listener backtest --brand --explain` and `listener alerts why` list every
judged window with negative mentions, observed vs expected, the score and the gate that decided,
from a real SQLite database; a fired alert's evidence carries the same reasons."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

import listener.cli.alerts
import listener.cli.backtest  # noqa: F401  (registers the commands)
from listener.cli import cli
from listener.models import Item, Mention, Score
from listener.storage import engine as db
from listener.storage import store


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"LISTENER_CONFIG": ""})
    return result.exit_code, result.stdout, result.stderr


def mention(i: int, when: datetime, author: str, negative: bool) -> Mention:
    item = Item(guid=f"g{i}", url=f"https://site{i % 40}.example/{i}", title=f"post {i}",
                text="text", published_at=when, author=author)  # fmt: skip
    label = "negative" if negative else "neutral"
    return replace(
        Mention(item, frozenset({"Velora"}), f"k{i}", item.url, f"h{i}"),
        domain=f"site{i % 40}.example",
        sentiment=Score(label, -0.7 if negative else 0.0, 0.8, "t"),
    )


def store_polls(engine: Engine, now: datetime, burst: list[tuple[datetime, str]]) -> None:
    """Ten days of a quiet brand (about 2 mentions an hour, 20% negative), polled every 15
    minutes, plus the negative ``burst`` (time, author)."""
    rng = random.Random(8)
    with store.transaction(engine, "test") as conn:
        store.sync_catalog(conn, ["Velora"], [store.CatalogSource("s", "feed", "https://x/")], now)
        source = store.load_states(conn)["s"].id
    posts = []
    t = now - timedelta(days=10)
    while t < now:
        t += timedelta(minutes=rng.expovariate(1 / 30))
        posts.append((t, f"a{rng.randrange(400)}", rng.random() < 0.2))
    posts += [(when, who, True) for when, who in burst]
    posts.sort()
    poll = now - timedelta(days=10)
    i = 0
    while poll < now:
        poll += timedelta(minutes=15)
        batch = []
        while i < len(posts) and posts[i][0] <= poll:
            batch.append(mention(i, *posts[i]))
            i += 1
        with store.transaction(engine, "test") as conn:
            poll_success = store.PollSuccess(
                source, now=poll, next_poll_at=poll, etag=None, last_modified=None, mentions=batch
            )
            store.record_successes(conn, [poll_success])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = db.connect(url)
    db.upgrade(engine)
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    start = now - timedelta(hours=3)
    # twelve negative posts within an hour, but from two people only
    burst = [(start + timedelta(minutes=5 * n), f"upset{n % 2}") for n in range(12)]
    store_polls(engine, now, burst)
    engine.dispose()
    path = tmp_path / "listener.toml"
    path.write_text(f'[database]\nurl = "{url}"\n[log]\nlevel = "error"\n'
                    '[[brands]]\nname = "Velora"\n', encoding="utf-8")  # fmt: skip
    return path


def test_explain_says_which_gate_held_a_burst_back(config: Path) -> None:
    code, out, err = invoke("backtest", "--brand", "Velora", "--since", "6h", "--explain",
                            "--config", str(config), "--format", "json")  # fmt: skip
    assert code == 0, err
    records = json.loads(out)
    assert records and all(r["observed"] > 0 for r in records)
    keys = {"judged_at", "detector", "observed", "expected", "score", "level", "gate", "reason"}
    assert keys <= set(records[0])
    held = [r for r in records if r["detector"] == "storm" and "count as" in r["reason"]]
    assert held, records
    # 12 mentions from two voices count as 6 (3 per voice): the minimum count decided
    assert max(r["observed"] for r in held) <= 6 and {r["gate"] for r in held} == {"min_count"}
    assert not [r for r in records if r["level"] in ("warning", "critical")]
    # the table ends with the strongest window and its gate
    code, out, err = invoke("backtest", "--brand", "Velora", "--since", "6h", "--explain",
                            "--config", str(config), "--format", "table")  # fmt: skip
    assert code == 0, err
    text = " ".join(out.split())
    assert "No storm alert. Strongest:" in text and "held by min_count" in text


def test_alerts_why_lists_the_same_verdicts(config: Path) -> None:
    code, out, err = invoke("alerts", "why", "--brand", "velora", "--config", str(config),
                            "--format", "json")  # fmt: skip
    assert code == 0, err
    records = json.loads(out)
    assert any(r["gate"] == "min_count" and "count as" in r["reason"] for r in records)
    code, _, err = invoke("alerts", "why", "--brand", "Nobody", "--config", str(config))
    assert code == 2 and "Nobody" in err
