"""Retention on real databases: old mentions go in batches, daily counts stay, a mention another
brand still keeps stays, and what the detectors read (the last 32 days) is untouched."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from listener.config import validate_config
from listener.errors import ConfigError
from listener.models import Item, Mention, Score
from listener.service.retention import cutoffs, prune
from listener.storage import retention, store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def mention(i: int, days_ago: float, brands: frozenset[str], negative: bool) -> Mention:
    item = Item(
        guid=f"g{i}",
        url=f"https://site{i}.example/{i}",
        title=f"post {i} about {' '.join(sorted(brands))}",
        text="some text",
        published_at=NOW - timedelta(days=days_ago),
    )
    label = "negative" if negative else "neutral"
    return replace(
        Mention(item, brands, f"k{i}", item.url, f"h{i}"),
        sentiment=Score(label, -0.5 if negative else 0.0, 0.9, "t"),
    )


def settings(raw: str = "") -> object:
    import tomllib

    text_ = (
        '[[brands]]\nname = "Velora"\nkeep_mentions = "40d"\n[[brands]]\nname = "Nordbahn"\n' + raw
    )
    return validate_config(tomllib.loads(text_), file=Path("t.toml"), env={})


def test_old_mentions_go_counts_stay(engine: Engine) -> None:
    config = settings()
    with store.transaction(engine, "test") as conn:
        store.sync_catalog(
            conn, ["Velora", "Nordbahn"], [store.CatalogSource("s", "feed", "https://x/")], NOW
        )
        source = store.load_states(conn)["s"].id
    batch = [mention(i, days_ago=100 + i % 3, brands=frozenset({"Velora"}), negative=i % 2 == 0)
             for i in range(2500)]  # fmt: skip
    batch.append(mention(9000, 100, frozenset({"Velora", "Nordbahn"}), True))  # Nordbahn keeps it
    batch += [mention(10_000 + i, 10, frozenset({"Velora"}), True) for i in range(20)]  # recent
    with store.transaction(engine, "test") as conn:
        poll_success = store.PollSuccess(
            source, now=NOW, next_poll_at=NOW, etag=None, last_modified=None, mentions=batch
        )
        store.record_successes(conn, [poll_success])
    recent_before = store.detection_rows(engine, "Velora", since=NOW - timedelta(days=32))

    plan = cutoffs(config, NOW)  # type: ignore[arg-type]
    assert set(plan) == {"Velora", "Nordbahn"}
    result = prune(engine, config, NOW)  # type: ignore[arg-type]
    assert result.mentions == 2500 and result.links == 2501
    counts = retention.daily_counts(engine, "Velora")
    assert sum(n for n, _ in counts.values()) == 2501
    assert sum(neg for _, neg in counts.values()) == 1250 + 1
    remaining = store.count_rows(engine)
    assert remaining["mentions"] == 21  # the shared one and the 20 recent ones
    assert store.detection_rows(engine, "Velora", since=NOW - timedelta(days=32)) == recent_before
    [shared] = store.query_mentions(engine, store.MentionFilter(search="post 9000"))
    assert shared.brands == ("Nordbahn",)
    with engine.connect() as conn:
        orphan_stories = conn.execute(
            text(
                "SELECT count(*) FROM stories WHERE id NOT IN "
                "(SELECT story_id FROM mentions WHERE story_id IS NOT NULL)"
            )
        ).scalar()
    assert orphan_stories == 0
    again = prune(engine, config, NOW)  # type: ignore[arg-type]
    assert again.mentions == 0


@pytest.mark.parametrize("value", ['"10d"', '"34d"'])
def test_retention_shorter_than_the_detectors_need_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="at least 35d"):
        settings(f"[retention]\nkeep_mentions = {value}\n")


def test_zero_keeps_forever() -> None:
    config = settings('[retention]\nkeep_mentions = "0d"\n')
    assert set(cutoffs(config, NOW)) == {"Velora"}  # type: ignore[arg-type]
