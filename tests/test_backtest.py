"""`listener backtest`: the --series CSV contract (header, causality, timestamps copied from the
input, clear one-line errors) and the replay of a brand's stored history from a real database."""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

import listener.cli.backtest  # noqa: F401  (registers the command)
from listener.cli import cli
from listener.models import Item, Mention, Score
from listener.storage import engine as db
from listener.storage import store

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"LISTENER_CONFIG": ""})
    return result.exit_code, result.stdout, result.stderr


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1


def storm_series(buckets: int = 30 * 96, onset: int = 25 * 96 + 40) -> list[int]:
    """15-minute buckets, a daily rhythm, and a storm at ``onset``."""
    rng = random.Random(2)
    values = []
    for i in range(buckets):
        hour = (i % 96) / 4
        values.append(poisson(rng, 1.0 + 0.8 * math.sin((hour - 6) / 24 * 2 * math.pi)))
    for j in range(16):
        values[onset + j] += 10 + 12 * j
    return values


def write_series(
    path: Path, values: list[int], stamp: str = "%Y-%m-%dT%H:%M:%S+00:00"
) -> list[str]:
    stamps = [(START + i * timedelta(minutes=15)).strftime(stamp) for i in range(len(values))]
    path.write_text(
        "timestamp,value\n" + "".join(f"{s},{v}\n" for s, v in zip(stamps, values, strict=True)),
        encoding="utf-8",
    )
    return stamps


def read_rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "timestamp,severity,score"
    return [line.split(",") for line in lines[1:]]


def test_series_contract(tmp_path: Path) -> None:
    values = storm_series()
    stamps = write_series(tmp_path / "in.csv", values)
    code, _, err = invoke(
        "backtest", "--series", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")
    )
    assert code == 0, err
    rows = read_rows(tmp_path / "out.csv")
    assert rows, "the storm was not detected"
    for stamp, severity, score in rows:
        assert stamp in stamps  # copied from the input, in its own spelling
        assert severity in {"warning", "critical"}
        assert float(score) > 0
    onset = stamps.index(rows[0][0])
    assert 25 * 96 + 40 <= onset <= 25 * 96 + 41  # within one bucket of onset
    assert "alerts written" in err


def test_series_decisions_are_causal(tmp_path: Path) -> None:
    values = storm_series()
    write_series(tmp_path / "in.csv", values)
    invoke("backtest", "--series", str(tmp_path / "in.csv"), "--output", str(tmp_path / "a.csv"))
    full = read_rows(tmp_path / "a.csv")
    for cut in (25 * 96 + 41, 25 * 96 + 60, 28 * 96):
        stamps = write_series(tmp_path / "cut.csv", values[:cut])
        invoke(
            "backtest", "--series", str(tmp_path / "cut.csv"), "--output", str(tmp_path / "b.csv")
        )
        assert read_rows(tmp_path / "b.csv") == [r for r in full if r[0] in stamps]


def test_missing_rows_count_as_zero_and_stdout_works(tmp_path: Path) -> None:
    values = storm_series()
    stamps = write_series(tmp_path / "in.csv", values, stamp="%Y-%m-%dT%H:%M:%SZ")
    lines = (tmp_path / "in.csv").read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if not line.endswith(",0")]
    (tmp_path / "sparse.csv").write_text("\n".join(kept) + "\n")
    code, out, _ = invoke("backtest", "--series", str(tmp_path / "sparse.csv"), "--output", "-")
    assert code == 0
    assert out.splitlines()[0] == "timestamp,severity,score"
    assert [r.split(",")[0] for r in out.splitlines()[1:]][:1] == [stamps[25 * 96 + 40]] or [
        r.split(",")[0] for r in out.splitlines()[1:]
    ][:1] == [stamps[25 * 96 + 41]]


def test_detector_options_apply(tmp_path: Path) -> None:
    write_series(tmp_path / "in.csv", storm_series())
    out = str(tmp_path / "out.csv")
    code, _, _ = invoke(
        "backtest", "--series", str(tmp_path / "in.csv"), "--output", out,
        "--storm-min-count", "100000", "--detector", "storm",
    )  # fmt: skip
    assert code == 0 and read_rows(Path(out)) == []
    code, _, err = invoke(
        "backtest", "--series", str(tmp_path / "in.csv"), "--output", out,
        "--storm-clear-after", "soon",
    )  # fmt: skip
    assert code == 2 and "--storm-clear-after" in err


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("time,value\n2026-01-01T00:00:00Z,1\n", ":1:", "header"),
        ("timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T01:00:00Z,x\n", ":3:", "integer"),
        ("timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T01:00:00Z,-4\n", ":3:", "negative"),
        ("timestamp,value\n2026-01-01T02:00:00Z,1\n2026-01-01T01:00:00Z,4\n", ":3:", "not after"),
        ("timestamp,value\nyesterday,1\n2026-01-01T01:00:00Z,4\n", ":2:", "ISO-8601"),
        ("timestamp,value\n2026-01-01T00:00:00Z,1\n", "", "at least 2 rows"),
        ("timestamp,value\n2026-01-01T00:00:00Z,1,2\n", ":2:", "2 fields"),
        (
            "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T01:00:00Z,1\n"
            "2026-01-01T02:00:00Z,1\n2026-01-01T02:30:00Z,1\n",
            ":5:",
            "multiple",
        ),
    ],
)
def test_bad_series_is_one_line_with_file_and_line(
    tmp_path: Path, content: str, where: str, what: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    code, out, err = invoke("backtest", "--series", str(path), "--output", str(tmp_path / "o.csv"))
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("Error: ") and f"in.csv{where}" in line and what in line
    assert not (tmp_path / "o.csv").exists()


def test_series_or_brand_is_required() -> None:
    code, _, err = invoke("backtest")
    assert code == 2 and "--series" in err


# -- stored history ---------------------------------------------------------------------------


def negative_mention(i: int, when: datetime, author: str, negative: bool = True) -> Mention:
    item = Item(
        guid=f"g{i}",
        url=f"https://site{i % 50}.example/{i}",
        title=f"post {i}",
        text="text",
        published_at=when,
        author=author,
    )
    label = "negative" if negative else "neutral"
    return replace(
        Mention(item, frozenset({"Velora"}), f"k{i}", item.url, f"h{i}"),
        domain=f"site{i % 50}.example",
        sentiment=Score(label, -0.7 if negative else 0.0, 0.8, "t"),
    )


def fill_history(engine: Engine, now: datetime) -> datetime:
    """Three weeks of ordinary mentions, polled hourly, then a storm two days before ``now``."""
    rng = random.Random(4)
    with store.transaction(engine, "test") as conn:
        store.sync_catalog(conn, ["Velora"], [store.CatalogSource("s", "feed", "https://x/")], now)
        source = store.load_states(conn)["s"].id
    onset = now - timedelta(days=2)
    i = 0
    hour = now - timedelta(days=21)
    while hour < now:
        batch = []
        for _ in range(poisson(rng, 2.0)):
            when = hour + timedelta(minutes=rng.randrange(60))
            batch.append(negative_mention(i, when, f"a{rng.randrange(300)}", rng.random() < 0.2))
            i += 1
        if onset <= hour < onset + timedelta(hours=3):
            for n in range(40):  # 40 angry posts an hour from many people
                when = hour + timedelta(minutes=n * 1.5)
                batch.append(negative_mention(i, when, f"angry{i}"))
                i += 1
        arrival = hour + timedelta(hours=1, minutes=5)
        with store.transaction(engine, "test") as conn:
            store.record_successes(
                conn, [store.PollSuccess(source, now=arrival, next_poll_at=arrival, etag=None,
                last_modified=None, mentions=batch)])  # fmt: skip
        hour += timedelta(hours=1)
    return onset


def test_detection_rows_come_in_arrival_order(engine: Engine) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    fill_history(engine, now)
    rows = store.detection_rows(engine, "Velora", since=now - timedelta(days=3))
    assert rows and all(a.fetched_at <= b.fetched_at for a, b in itertools.pairwise(rows))
    assert all(r.event_at >= now - timedelta(days=3) for r in rows)
    assert sum(r.negative for r in rows) > 100


def test_backtest_brand_replays_stored_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = db.connect(url)
    db.upgrade(engine)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    onset = fill_history(engine, now)
    engine.dispose()
    config = tmp_path / "listener.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[log]\nlevel = "error"\n'
        '[detection]\nlateness = "70m"\n[[brands]]\nname = "Velora"\n',
        encoding="utf-8",
    )
    code, out, err = invoke(
        "backtest",
        "--brand",
        "velora",
        "--since",
        "7d",
        "--config",
        str(config),
        "--format",
        "json",
    )
    assert code == 0, err
    records = json.loads(out)
    fired = [r for r in records if r["event"] == "fired"]
    assert fired and fired[0]["detector"] == "storm"
    judged = datetime.fromisoformat(fired[0]["judged_at"].replace("Z", "+00:00"))
    assert onset < judged <= onset + timedelta(hours=3)  # found while it happened, not after
    assert "expected" in fired[0]["explanation"] and "voices" in fired[0]["explanation"]
    assert any(r["event"] == "resolved" for r in records)
    code, _, err = invoke("backtest", "--brand", "Nobody", "--config", str(config))
    assert code == 2 and "Nobody" in err and "Velora" in err
