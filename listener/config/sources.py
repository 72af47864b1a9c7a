"""``[[sources]]``: one class per kind, chosen by ``kind`` (a discriminated union; a missing
``kind`` is "feed").

Every kind accepts the same keys (``SourceSettings``): the file format has always allowed them,
and the code that builds URLs reads them off any source. What differs per kind is what it
requires, and each kind's class says so itself (``required``, ``builds_url``, ``check_kind``);
the shared rules (http URLs, ``interval`` of at least 10s, known ``fields`` names, no ``url``
for kinds that build their own) are checked once, in ``SourceSettings``, in this order:
required keys, ``fields``, the kind's own rules, ``url``. An unknown kind is validated against
``SourceSettings`` itself, so its error lists every kind there is.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from listener.config.units import Duration, Section, check_http_url

JSON_FIELDS = frozenset(
    {
        "id", "title", "text", "url", "author", "published", "reach", "points", "likes",
        "reposts", "replies", "language", "html", "next",
    }
)  # fmt: skip

SourceKind = Literal[
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
]
KINDS: tuple[str, ...] = get_args(SourceKind)
TAG_PREFIX = "kind:"  # the union's tags; they appear in pydantic's error locations


class SourceSettings(Section):
    """The keys every source accepts. Built from a file, a source is an instance of its kind's
    subclass; constructed directly, it is checked by its kind's rules all the same."""

    required: ClassVar[tuple[str, ...]] = ()  # keys this kind cannot do without
    builds_url: ClassVar[bool] = True  # the URL is built from other keys: ``url`` is an error

    name: str = Field(min_length=1)
    kind: SourceKind = "feed"
    url: str | None = None
    interval: Duration | None = None
    enabled: bool = True
    headers: dict[str, str] = Field(default_factory=dict)
    # URL builders, and search kinds
    query: str | None = None
    language: str | None = None
    country: str | None = None
    subreddit: str | None = None
    channel_id: str | None = None
    instance: str | None = None
    hashtag: str | None = None
    # API kinds
    base_url: str | None = None
    page_cap: int = Field(default=5, ge=1, le=100)
    cross_origin_redirects: bool = False
    client_id: str | None = None
    client_secret: str | None = None
    identifier: str | None = None
    app_password: str | None = None
    token: str | None = None
    api_key: str | None = None
    site: str | None = None
    items_path: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("url", "base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("interval")
    @classmethod
    def _min_interval(cls, value: float | None) -> float | None:
        if value is not None and value < 10:
            raise ValueError("interval must be at least 10s")
        return value

    @model_validator(mode="after")
    def _check(self) -> SourceSettings:
        rules = BY_KIND.get(self.kind, SourceSettings)  # constructed directly: still its kind's
        for key in rules.required:
            value = getattr(self, key)
            if value is None or (key != "items_path" and not value):
                raise ValueError(f"a source of kind '{self.kind}' needs '{key}'")
        unknown = sorted(set(self.fields) - JSON_FIELDS)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(JSON_FIELDS), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(
                f"fields.{unknown[0]} is not a field listener knows{hint} "
                f"(known: {', '.join(sorted(JSON_FIELDS))})"
            )
        rules.check_kind(self)
        if rules.builds_url and self.url is not None:
            raise ValueError(f"'url' is built from the other keys for kind '{self.kind}'")
        return self

    @staticmethod
    def check_kind(source: SourceSettings) -> None:
        """This kind's own rules beyond ``required``; raises ValueError."""


class FeedSource(SourceSettings):
    required = ("url",)
    builds_url = False
    kind: Literal["feed"] = "feed"


class GoogleNewsSource(SourceSettings):
    required = ("query",)
    kind: Literal["google_news"] = "google_news"


class RedditSource(SourceSettings):
    kind: Literal["reddit"] = "reddit"

    @staticmethod
    def check_kind(source: SourceSettings) -> None:
        if not (source.subreddit or source.query):
            raise ValueError("a source of kind 'reddit' needs 'subreddit' or 'query'")
        if bool(source.client_id) != bool(source.client_secret):
            raise ValueError("reddit app credentials need both 'client_id' and 'client_secret'")


class YoutubeSource(SourceSettings):
    kind: Literal["youtube"] = "youtube"

    @staticmethod
    def check_kind(source: SourceSettings) -> None:
        if not (source.channel_id or source.query):
            raise ValueError("a source of kind 'youtube' needs 'channel_id' or 'query'")
        if source.query and not source.api_key:
            raise ValueError(
                "youtube search needs 'api_key' (a YouTube Data API key); channel feeds "
                "('channel_id' alone) need none"
            )


class MastodonSource(SourceSettings):
    kind: Literal["mastodon"] = "mastodon"

    @staticmethod
    def check_kind(source: SourceSettings) -> None:
        if not (source.instance and (source.hashtag or source.query)):
            raise ValueError(
                "a source of kind 'mastodon' needs 'instance' and 'hashtag' or 'query'"
            )
        if source.query and not source.token:
            raise ValueError(
                "mastodon status search needs 'token' (an access token of the instance); "
                "hashtag timelines need none"
            )


class HackerNewsSource(SourceSettings):
    required = ("query",)
    kind: Literal["hackernews"] = "hackernews"


class BlueskySource(SourceSettings):
    required = ("query",)
    kind: Literal["bluesky"] = "bluesky"

    @staticmethod
    def check_kind(source: SourceSettings) -> None:
        if not (source.identifier and source.app_password):
            raise ValueError(
                "bluesky needs 'identifier' and 'app_password' (create an app password in "
                "the Bluesky settings): unauthenticated search was closed in 2025"
            )


class LemmySource(SourceSettings):
    required = ("instance", "query")
    kind: Literal["lemmy"] = "lemmy"


class StackExchangeSource(SourceSettings):
    required = ("query", "site")
    kind: Literal["stackexchange"] = "stackexchange"


class JsonSource(SourceSettings):
    required = ("url", "items_path")
    builds_url = False
    kind: Literal["json"] = "json"

    @staticmethod
    def check_kind(source: SourceSettings) -> None:
        if not ({"id", "title"} <= set(source.fields) or "text" in source.fields):
            raise ValueError(
                "a source of kind 'json' needs fields.id and fields.title or fields.text"
            )


BY_KIND: dict[str, type[SourceSettings]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        FeedSource,
        GoogleNewsSource,
        RedditSource,
        YoutubeSource,
        MastodonSource,
        HackerNewsSource,
        BlueskySource,
        LemmySource,
        StackExchangeSource,
        JsonSource,
    )
}


def _as_data(value: Any) -> Any:
    """A source constructed directly as ``SourceSettings`` (not its kind's class) is validated
    again as data, so it becomes its kind's class like one read from a file."""
    if type(value) is SourceSettings:
        return value.model_dump()
    return value


def _tag(value: Any) -> str:
    kind = value.get("kind", "feed") if isinstance(value, dict) else getattr(value, "kind", None)
    return TAG_PREFIX + (kind if isinstance(kind, str) and kind in BY_KIND else "?")


AnySource = Annotated[
    Annotated[FeedSource, Tag(TAG_PREFIX + "feed")]
    | Annotated[GoogleNewsSource, Tag(TAG_PREFIX + "google_news")]
    | Annotated[RedditSource, Tag(TAG_PREFIX + "reddit")]
    | Annotated[YoutubeSource, Tag(TAG_PREFIX + "youtube")]
    | Annotated[MastodonSource, Tag(TAG_PREFIX + "mastodon")]
    | Annotated[HackerNewsSource, Tag(TAG_PREFIX + "hackernews")]
    | Annotated[BlueskySource, Tag(TAG_PREFIX + "bluesky")]
    | Annotated[LemmySource, Tag(TAG_PREFIX + "lemmy")]
    | Annotated[StackExchangeSource, Tag(TAG_PREFIX + "stackexchange")]
    | Annotated[JsonSource, Tag(TAG_PREFIX + "json")]
    | Annotated[SourceSettings, Tag(TAG_PREFIX + "?")],  # an unknown kind: its error names all
    Discriminator(_tag),
    BeforeValidator(_as_data),
]
