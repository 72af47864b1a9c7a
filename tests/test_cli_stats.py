"""`listener stats`: bars aligned to the hours, days or weeks of the user's time zone, today's
mentions on today's row, one screen by default, and brands side by side (share of voice)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from test_cli_stories import config  # noqa: F401  (the fixture: 60 mentions polled into SQLite)

import listener.cli.ops
import listener.cli.queries  # noqa: F401  (registers the commands)
from listener.cli import cli
from listener.cli.ops import buckets


def stats(path: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", path, "stats", *args], env={"COLUMNS": "100"})
    return result.exit_code, result.stdout, result.stderr


def test_days_follow_the_time_zone(config: str) -> None:  # noqa: F811
    def per_day(zone: str) -> dict[str, int]:
        code, out, err = stats(config, "--brand", "Kryptonite", "--since", "2026-11-19",
                               "--bucket", "day", "--tz", zone, "--format", "jsonl")  # fmt: skip
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        return {r["local"][4:10]: r["mentions"] for r in rows if r["mentions"]}

    utc, tokyo = per_day("UTC"), per_day("Asia/Tokyo")
    assert sum(utc.values()) == sum(tokyo.values()) == 60
    assert "23 Nov" not in utc  # the reviews were posted on Sunday 22 November, UTC ...
    assert tokyo["23 Nov"] > 0  # ... which ran into Monday morning in Tokyo
    code, _, err = stats(config, "--brand", "Kryptonite", "--tz", "Mars/Olympus")
    assert code == 2 and "--tz" in err


def test_bucket_starts_are_local_midnights_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # summer time ended on 25 October 2026, 03:00 CEST
    now = datetime(2026, 10, 27, 12, 0, tzinfo=UTC)
    starts = buckets(now, now - timedelta(days=3), "day", berlin)
    assert [s.astimezone(berlin).hour for s in starts] == [0, 0, 0]
    assert [s.hour for s in starts] == [22, 23, 23]  # CEST midnight, then CET midnights
    hours = buckets(now, now - timedelta(hours=24), "hour", berlin)
    assert len(hours) == 24 and hours[-1] <= now < hours[-1] + timedelta(hours=1)
    weeks = buckets(now, now - timedelta(days=90), "week", berlin)
    assert len(weeks) == 13 and all(w.astimezone(berlin).weekday() == 0 for w in weeks)


def test_now_is_on_the_last_row_and_the_default_fits_a_screen(config: str) -> None:  # noqa: F811
    code, out, _ = stats(config, "--brand", "Kryptonite", "--since", "90d", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) <= 14  # weekly bars for 90 days: one screen, not 91 lines
    last = datetime.fromisoformat(rows[-1]["start"].replace("Z", "+00:00"))
    assert last <= datetime.now(UTC) < last + timedelta(weeks=1)
    code, out, _ = stats(config, "--brand", "Kryptonite", "--since", "24h", "--format", "table")
    assert code == 0 and len(out.splitlines()) <= 26


def test_two_brands_side_by_side_with_share_of_voice(config: str) -> None:  # noqa: F811
    text = Path(config).read_text(encoding="utf-8")
    Path(config).write_text(
        text + '[[brands]]\nname = "Reviews"\nterms = ["review"]\n', encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["--config", config, "rematch"], env={})
    assert result.exit_code == 0, result.stderr
    both = ("--brand", "Kryptonite", "--brand", "reviews", "--since", "2026-11-19")
    code, out, err = stats(config, *both, "--bucket", "day", "--tz", "UTC", "--format", "table")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Kryptonite | Reviews: mentions per day")
    assert "Kryptonite: 60 mentions" in out and "share of voice" in out
    voice = {
        line.split(":")[0]: line.rsplit(" ", 1)[1] for line in lines if "share of voice" in line
    }
    assert voice == {"Kryptonite": "52%", "Reviews": "48%"}  # 60 vs 56 review mentions
    code, out, _ = stats(config, "--brand", "Kryptonite", "--brand", "Reviews", "--since",
                         "2026-11-19", "--bucket", "day", "--format", "jsonl")  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["brand"] for r in rows} == {"Kryptonite", "Reviews"}
