"""Configuration: precedence of paths, validation errors as one line, interpolation, durations."""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path

import pytest

from listener.config import find_config_path, load_config, parse_duration, parse_size
from listener.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[database]
url = "sqlite:////tmp/listener-test.db"
[[brands]]
name = "Kryptonite"
terms = ["Kryptonite", "Kryptonit", "#kryptonitelock"]
exclude = ["Superman"]
[[sources]]
name = "bike-blogs"
kind = "feed"
url = "https://example.org/feed.xml"
interval = "15m"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "listener.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_issue_shape_loads(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, GOOD), env={})
    assert settings.brands[0].terms == ("Kryptonite", "Kryptonit", "#kryptonitelock")
    assert settings.brands[0].exclude == ("Superman",)
    assert settings.sources[0].interval == 900
    assert settings.database.url == "sqlite:////tmp/listener-test.db"


def test_example_config_loads_and_documents_every_key() -> None:
    env = {
        "BIKE_BLOGS_API_KEY": "k" * 8,
        "SLACK_URL": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
        "YOUTUBE_API_KEY": "AIza" + "x" * 35,
        "SMTP_USER": "listener",
        "SMTP_PASSWORD": "s3cret-pass",
    }
    settings = load_config(ROOT / "config.example.toml", env=env)
    assert {s.kind for s in settings.sources} == {
        "feed",
        "google_news",
        "reddit",
        "youtube",
        "mastodon",
        "hackernews",
        "bluesky",
        "lemmy",
        "stackexchange",
        "json",
    }
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    # every key of every settings model appears in the example, preceded by a comment line
    from listener.config import Settings

    def flat_args(annotation: object) -> list[object]:
        # through tuples, unions and Annotated (sources are a union of one class per kind)
        args = list(typing.get_args(annotation))
        return [inner for arg in args for inner in (arg, *flat_args(arg))]

    def keys(model: type) -> set[str]:
        found: set[str] = set()
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if name in ("path", "secrets"):
                continue
            inner = getattr(field.annotation, "model_fields", None)
            nested = [a for a in flat_args(field.annotation) if hasattr(a, "model_fields")]
            if inner is not None:
                found |= keys(field.annotation)
            elif nested:
                found |= keys(nested[0])
            else:
                found.add(name)
        return found

    for key in sorted(keys(Settings)):
        # optional keys may be shown commented out, as an example value
        at = [i for i, line in enumerate(lines) if line.lstrip("# ").startswith(f"{key} =")]
        assert at, f"config.example.toml does not show the key {key!r}"
        assert any(
            lines[i - 1].startswith("#") and not lines[i - 1].lstrip("# ").startswith(f"{key} =")
            for i in at
        ), f"{key!r} has no comment above it"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('interval = "15m"', 'interval = "15x"'), ["sources[0].interval", "'15x'", "15m"]),
        (
            ('kind = "feed"', 'knd = "feed"'),
            ["sources[0].knd", "unknown key", "did you mean 'kind'"],
        ),
        (('kind = "feed"', 'kind = "fed"'), ["sources[0].kind", "'fed'", "did you mean 'feed'"]),
        (("[database]", "[databse]"), ["databse", "did you mean 'database'"]),
        (
            ('url = "https://example.org/feed.xml"', 'url = "ftp://x"'),
            ["sources[0].url", "ftp://x"],
        ),
        (('exclude = ["Superman"]', 'exclude = "Superman"'), ["brands[0].exclude", "list"]),
        (('exclude = ["Superman"]', 'exclude = [" "]'), ["brands[0].exclude", "blank"]),
        (('name = "bike-blogs"', 'name = "bike-blogs"\nname2 = 1'), ["sources[0].name2"]),
        (('interval = "15m"', 'interval = "5s"'), ["sources[0].interval", "at least 10s"]),
        (
            ('kind = "feed"\nurl = "https://example.org/feed.xml"', 'kind = "youtube"'),
            ["sources[0]", "needs 'channel_id'"],
        ),
        (
            ("[[brands]]", '[[brands]]\nname = "KRYPTONITE"\n[[brands]]'),
            ["brands[1].name", "duplicate"],
        ),
        (("[database]", "[database\n"), ["invalid TOML", "line"]),
    ],
)
def test_bad_config_is_one_line_naming_file_path_value(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    path = write(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for part in expected:
        assert part in message


def test_env_and_file_interpolation_mark_secrets(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("file-secret-42\n", encoding="utf-8")
    text = GOOD.replace(
        'interval = "15m"',
        'interval = "15m"\nheaders = { Authorization = "Bearer ${TOKEN}", X-Key = "${file:'
        + str(secret_file)
        + '}", Literal = "$${NOT}" }',
    )
    settings = load_config(write(tmp_path, text), env={"TOKEN": "env-secret-17"})
    headers = settings.sources[0].headers
    assert headers == {
        "Authorization": "Bearer env-secret-17",
        "X-Key": "file-secret-42",
        "Literal": "${NOT}",
    }
    assert settings.secrets == {"env-secret-17", "file-secret-42"}


def test_missing_env_var_names_key_and_variable(tmp_path: Path) -> None:
    text = GOOD.replace('url = "sqlite', 'url = "${DB_URL}"\n#').replace(
        '[database]\nurl = "${DB_URL}"', '[database]\nurl = "${DB_URL}"'
    )
    with pytest.raises(ConfigError, match=r"database\.url: environment variable DB_URL is not set"):
        load_config(write(tmp_path, text), env={})


def test_secret_value_never_in_error(tmp_path: Path) -> None:
    text = GOOD.replace('interval = "15m"', 'interval = "${SECRET}"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"SECRET": "hunter2-secret"})
    assert "hunter2-secret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    (xdg / "listener").mkdir(parents=True)
    (xdg / "listener" / "config.toml").write_text(GOOD, encoding="utf-8")
    env = {"XDG_CONFIG_HOME": str(xdg)}
    assert find_config_path(None, env) == xdg / "listener" / "config.toml"
    write(tmp_path, GOOD)
    assert find_config_path(None, env) == Path("listener.toml")
    assert find_config_path(None, {**env, "LISTENER_CONFIG": "/x.toml"}) == Path("/x.toml")
    assert find_config_path("given.toml", {**env, "LISTENER_CONFIG": "/x.toml"}) == Path(
        "given.toml"
    )


def test_no_config_anywhere_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if Path("/etc/listener/config.toml").exists():
        pytest.skip("a system-wide config exists on this machine")
    with pytest.raises(ConfigError, match=r"no configuration file found.*--config"):
        find_config_path(None, {"XDG_CONFIG_HOME": str(tmp_path)})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("7d", 604800), ("250ms", 0.25), (30, 30)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "15 x", "1h 30", "-5m", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "size"), [("10MB", 10_000_000), ("1KiB", 1024), (512, 512)])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_example_shows_the_detectors_true_defaults() -> None:
    """The commented defaults under [detection.storm] and [detection.smoulder] are the code's."""
    from dataclasses import fields

    from listener.config import parse_duration
    from listener.detection.smoulder import SmoulderParams
    from listener.detection.storm import StormParams

    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section, params in (("storm", StormParams()), ("smoulder", SmoulderParams())):
        body = text.split(f"[detection.{section}]\n", 1)[1].split("\n\n", 1)[0]
        shown = dict(
            line.lstrip("# ").split(" = ", 1)
            for line in body.splitlines()
            if " = " in line and line.lstrip("# ").split(" = ")[0].isidentifier()
        )
        for f in fields(params):
            assert f.name in shown, f"[detection.{section}] does not show {f.name}"
            value = tomllib.loads(f"v = {shown[f.name]}")["v"]
            if isinstance(value, list):
                value = tuple(parse_duration(v) for v in value)
            elif isinstance(value, str):
                value = parse_duration(value)
            assert value == getattr(params, f.name), f"{section}.{f.name}"
