"""Synthetic scenarios with known truth for the detection bench: brands, crises and look-alikes.

Lives next to the bench that uses it (``detection_bench.py``), outside the listener package:
the daemon never runs it and the demo replays its own feeds (``listener.demo.crisis``). Over
400 lines on purpose: nine scenarios, each a short builder over one shared generator, read best
side by side.

Owns the scenario library (``NAMES``, ``scenario(name)``): streams of ``Event`` as the
monitor's ``replay`` consumes them, each with the truth a bench scores against (when a crisis
starts and ends, or where a harmless special event sits).

Rules:
- Pure and deterministic: every scenario draws from its own ``random.Random`` with a fixed seed
  (``seed`` shifts it for robustness runs); no I/O, no clock. Times are whole seconds, UTC.
- Every scenario starts on a Monday 00:00 with ``HISTORY_DAYS`` (42) days of ordinary background
  before anything happens, so the detectors' 28-day baselines exist, then the episode, then a few
  days after.
- Background is a non-homogeneous Poisson process of stories: a weekday rate, an hour-of-day
  profile (busy 07-21 UTC, low at night), a weekend factor, a lognormal day-to-day multiplier and
  a small day-to-day wobble of the negative share. A story is negative with the brand's base
  probability and has one mention, sometimes two or three (reposts within hours, same story id,
  other voices). Voices come from a Zipf-weighted author pool, each author posting on a home
  domain out of ~200 Zipf-weighted domains; some mentions have no author (the voice is then the
  domain, as in ``Series``).
- Episodes come from other people than the usual voices: mostly first-time authors (some of whom
  post more than once) on a flatter spread of domains, with a few big stories reposted widely.
- Arrival: a mention arrives a uniform ``[0, polling)`` after its event time (the feed was polled
  some time after publication); during a source outage nothing arrives, and everything that would
  have arrives at recovery plus a small jitter. Events are sorted by arrival.
- Truth: ``crisis_onset``/``crisis_end`` bound the time an alert is right (None: none is);
  ``event_at`` marks where the episode or look-alike starts; ``share_rise_at`` (crisis scenarios)
  is the start of the first UTC day from the onset on whose negative share exceeds the background
  share by 50%, computed from the scenario's own events (never before the onset).
- Generated from the scenario's shape, not from the detectors: nothing here knows their
  parameters.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from listener.detection.series import Event

HISTORY_DAYS = 42
POLLING = timedelta(minutes=10)
SLICE = 300.0  # seconds: rates are piecewise constant over 5-minute slices
HOUR_S = 3600.0
DAY_S = 86400.0
START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
HOLIDAY_START = datetime(2024, 11, 11, tzinfo=UTC)  # a Monday, six weeks before Christmas week

RateFn = Callable[[float], float]  # mentions per second at t seconds after the scenario start


@dataclass(frozen=True)
class Scenario:
    name: str  # short slug
    description: str  # one line
    start: datetime  # UTC, a Monday 00:00
    end: datetime  # UTC
    events: tuple[Event, ...]  # sorted by arrival time
    crisis_onset: datetime | None  # None: no crisis, nothing should alert
    crisis_end: datetime | None  # end of the crisis plus a settle time
    expect_alert: bool
    polling: timedelta  # source poll interval, the arrival lateness
    event_at: datetime | None = None  # where the episode or look-alike starts
    share_rise_at: datetime | None = None  # first day the negative share clearly rose


class _Mention(NamedTuple):
    at: float  # seconds after the scenario start
    negative: bool
    story: str
    voice: str
    domain: str


@dataclass(frozen=True)
class _Brand:
    daily: float  # mentions on an average weekday
    negative: float  # base probability that a story is negative
    weekend: float = 0.7  # weekend volume relative to weekdays
    night: float = 0.25  # volume of a night hour relative to an average hour
    day_sigma: float = 0.12  # sd of the log day-to-day volume multiplier
    share_sigma: float = 0.12  # sd of the log day-to-day negative-share multiplier


QUIET = _Brand(daily=4.0, negative=0.20, weekend=0.8, night=0.35, day_sigma=0.25)
MEDIUM = _Brand(daily=150.0, negative=0.15)
LARGE = _Brand(daily=3000.0, negative=0.12, weekend=0.4, night=0.08, day_sigma=0.18)

_PREFIXES = (
    "daily city metro bike ride cycle urban gear tech consumer review trail commute street "
    "local valley north coast river capital"
).split()
_SUFFIXES = "news times forum blog post hub talk wire journal herald club".split()
_TLDS = ("com", "net", "org", "co.uk", "de", "io")


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _cumulative(n: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in range(n)))


def _draw(rng: random.Random, cumulative: list[float]) -> int:
    index = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
    return min(index, len(cumulative) - 1)


def _profile(night: float) -> list[float]:
    """Relative volume per UTC hour, mean 1: busy 07-21 (peak mid-afternoon), low at night."""
    raw = []
    for hour in range(24):
        if 7 <= hour <= 21:
            raw.append(0.8 + 0.4 * math.sin(math.pi * (hour - 7) / 14))
        elif hour in (6, 22):
            raw.append(0.5)
        elif hour == 23:
            raw.append(0.3)
        else:
            raw.append(0.0)
    scale = 24 / sum(raw)
    shaped = [value * scale for value in raw]
    # the night hours get ``night`` times an average hour; the day shrinks to keep the mean at 1
    nights = sum(1 for value in raw if value == 0.0)
    day_scale = (24 - nights * night) / 24
    return [night if value == 0.0 else value * day_scale for value in shaped]


def _poisson_times(rng: random.Random, t0: float, t1: float, rate: RateFn) -> list[float]:
    """Event times of a Poisson process with a rate that is constant over each 5-minute slice."""
    times: list[float] = []
    slice_start = t0
    while slice_start < t1:
        slice_end = min(t1, slice_start + SLICE)
        lam = rate((slice_start + slice_end) / 2) * (slice_end - slice_start)
        if lam > 0:
            count, total = 0, rng.expovariate(1.0)
            while total < lam:
                count += 1
                total += rng.expovariate(1.0)
            times.extend(sorted(rng.uniform(slice_start, slice_end) for _ in range(count)))
        slice_start = slice_end
    return times


class _World:
    """The voices and domains around one brand, and the story counter."""

    def __init__(self, rng: random.Random, brand: _Brand) -> None:
        self.rng = rng
        names = [f"{p}{s}.{t}" for p in _PREFIXES for s in _SUFFIXES for t in _TLDS]
        rng.shuffle(names)
        self.domains = names[:200]
        self.domain_weights = _cumulative(len(self.domains), 1.0)  # a few big platforms
        self.flat_domains = _cumulative(len(self.domains), 0.4)  # blogs and forums in a crisis
        pool = max(2000, int(40 * brand.daily))
        self.authors = _cumulative(pool, 0.8)
        self.home = [_draw(rng, self.domain_weights) for _ in range(pool)]
        self.story_ids = itertools.count()
        self.newcomers = itertools.count()

    def story(self, kind: str) -> str:
        return f"{kind}-{next(self.story_ids)}"

    def regular_voice(self) -> tuple[str, str]:
        """(voice, domain) of one of the brand's usual authors; 15% have no author."""
        author = _draw(self.rng, self.authors)
        domain = self.domains[self.home[author]]
        if self.rng.random() < 0.15:
            return domain, domain
        return f"user{author}", domain

    def newcomer(self) -> tuple[str, str]:
        """(voice, domain) of someone who has not written about the brand before."""
        domain = self.domains[_draw(self.rng, self.flat_domains)]
        return f"new{next(self.newcomers)}", domain

    def background(
        self, brand: _Brand, start: datetime, days: int, scale: RateFn | None = None
    ) -> list[_Mention]:
        """Ordinary mentions over ``days`` days; ``scale(t)`` multiplies the volume."""
        rng = self.rng
        profile = _profile(brand.night)
        volume = [
            math.exp(rng.gauss(0.0, brand.day_sigma) - brand.day_sigma**2 / 2) for _ in range(days)
        ]
        share = [math.exp(rng.gauss(0.0, brand.share_sigma)) for _ in range(days)]
        first_weekday = start.weekday()
        mean_size = 1.2  # mentions per story: 85% one, 10% two, 5% three

        def story_rate(t: float) -> float:
            day = int(t // DAY_S)
            weekend = (first_weekday + day) % 7 >= 5
            per_day = brand.daily * volume[day] * (brand.weekend if weekend else 1.0)
            rate = per_day * profile[int(t % DAY_S // HOUR_S)] / DAY_S / mean_size
            return rate * (scale(t) if scale is not None else 1.0)

        end = days * DAY_S
        mentions = []
        for at in _poisson_times(rng, 0.0, end, story_rate):
            day = int(at // DAY_S)
            negative = rng.random() < min(0.9, brand.negative * share[day])
            story = self.story("bg")
            r = rng.random()
            size = 1 if r < 0.85 else 2 if r < 0.95 else 3
            for copy in range(size):
                when = at if copy == 0 else at + rng.expovariate(1 / 5400)
                if when < end:
                    voice, domain = self.regular_voice()
                    mentions.append(_Mention(when, negative, story, voice, domain))
        return mentions


@dataclass
class _Episode:
    """Mentions of one episode: a few big stories reposted widely, reposts of recent stories,
    and new stories, mostly by newcomers (who sometimes post again)."""

    world: _World
    kind: str
    big: int = 3
    big_share: float = 0.25
    repost: float = 0.2
    fresh: float = 0.85
    again: float = 0.2
    big_stories: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)
    voices: list[tuple[str, str]] = field(default_factory=list)
    big_weights: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.big_stories = [self.world.story(self.kind) for _ in range(self.big)]
        self.big_weights = _cumulative(self.big, 1.0)

    def mention(self, at: float, negative: bool) -> _Mention:
        rng = self.world.rng
        r = rng.random()
        if r < self.big_share and self.big_stories:
            story = self.big_stories[_draw(rng, self.big_weights)]
        elif r < self.big_share + self.repost and self.recent:
            story = rng.choice(self.recent[-50:])
        else:
            story = self.world.story(self.kind)
            self.recent.append(story)
        if rng.random() < self.fresh:
            if self.voices and rng.random() < self.again:
                voice, domain = rng.choice(self.voices)
            else:
                voice, domain = self.world.newcomer()
                self.voices.append((voice, domain))
        else:
            voice, domain = self.world.regular_voice()
        return _Mention(at, negative, story, voice, domain)


def _seconds(start: datetime, when: datetime) -> float:
    return (when - start).total_seconds()


def _events(
    rng: random.Random,
    start: datetime,
    end: datetime,
    mentions: list[_Mention],
    polling: timedelta,
    outage: tuple[float, float] | None = None,
) -> tuple[Event, ...]:
    """Events with arrival times, sorted by arrival; mentions after ``end`` are dropped."""
    horizon = _seconds(start, end)
    poll = polling.total_seconds()
    timed = []
    for mention in mentions:
        if not 0 <= mention.at < horizon:
            continue
        arrived = mention.at + rng.uniform(0.0, poll)
        if outage is not None and outage[0] <= arrived < outage[1]:
            arrived = outage[1] + rng.uniform(0.0, 120.0)
        timed.append((arrived, mention))
    timed.sort(key=lambda pair: (pair[0], pair[1].at))
    return tuple(
        Event(
            at=start + timedelta(seconds=round(m.at)),
            negative=m.negative,
            story=m.story,
            voice=m.voice,
            domain=m.domain,
            arrived=start + timedelta(seconds=round(arrived)),
        )
        for arrived, m in timed
    )


def _share_rise(events: tuple[Event, ...], start: datetime, onset: datetime) -> datetime | None:
    """Start of the first UTC day from the onset on that ends three days (it and the two before)
    whose negative share is at least twice the background share (before the onset), with at
    least three times the background's negative mentions of three days: "clearly" rising, not
    one noisy day (on a brand with four mentions a day, one day in four beats 1.5x by chance)."""
    negative = total = 0
    days: dict[int, list[int]] = {}
    for event in events:
        if event.at < onset:
            negative += event.negative
            total += 1
        counts = days.setdefault((event.at - start) // timedelta(days=1), [0, 0])
        counts[0] += event.negative
        counts[1] += 1
    if total == 0 or negative == 0:
        return None
    background = negative / total
    per_three_days = 3 * negative / ((onset - start) / timedelta(days=1))
    first_day = (onset - start) // timedelta(days=1)
    for day in range(first_day, max(days) + 1):
        neg = sum(days.get(d, [0, 0])[0] for d in range(day - 2, day + 1))
        all_ = sum(days.get(d, [0, 0])[1] for d in range(day - 2, day + 1))
        if all_ and neg / all_ >= 2 * background and neg >= 3 * per_three_days:
            return max(start + timedelta(days=day), onset)
    return None


def _at(start: datetime, day: int, hour: int, minute: int = 0) -> datetime:
    return start + timedelta(days=day, hours=hour, minutes=minute)


# ---------------------------------------------------------------------------------- scenarios


def _background(
    seed: int, brand: _Brand, days: int
) -> tuple[random.Random, _World, datetime, list[_Mention]]:
    """The random source, the world and the end of a scenario of ``days`` days from START, and
    the brand's everyday mentions over them."""
    rng = _rng(seed)
    world = _World(rng, brand)
    return rng, world, START + timedelta(days=days), world.background(brand, START, days)


def _crisis(
    name: str,
    description: str,
    rng: random.Random,
    mentions: list[_Mention],
    end: datetime,
    onset: datetime,
    crisis_end: datetime,
    episode: _Episode,
    negative_rate: RateFn,
    other_share: float,
) -> Scenario:
    """A crisis scenario: the episode's negative mentions at ``negative_rate`` from the onset,
    and its other coverage at ``other_share`` of that rate, on top of ``mentions``."""
    t0, horizon = _seconds(START, onset), _seconds(START, end)
    for at in _poisson_times(rng, t0, horizon, negative_rate):
        mentions.append(episode.mention(at, True))
    for at in _poisson_times(rng, t0, horizon, lambda t: other_share * negative_rate(t)):
        mentions.append(episode.mention(at, False))
    events = _events(rng, START, end, mentions, POLLING)
    return Scenario(
        name=name,
        description=description,
        start=START,
        end=end,
        events=events,
        crisis_onset=onset,
        crisis_end=crisis_end,
        expect_alert=True,
        polling=POLLING,
        event_at=onset,
        share_rise_at=_share_rise(events, START, onset),
    )


def _lookalike(
    name: str, description: str, end: datetime, events: tuple[Event, ...], at: datetime | None
) -> Scenario:
    """A scenario without a crisis: nothing should alert; ``at`` marks the look-alike event."""
    return Scenario(
        name=name,
        description=description,
        start=START,
        end=end,
        events=events,
        crisis_onset=None,
        crisis_end=None,
        expect_alert=False,
        polling=POLLING,
        event_at=at,
    )


def _quiet_brand(seed: int) -> Scenario:
    rng, _, end, mentions = _background(seed, QUIET, HISTORY_DAYS + 14)
    return _lookalike(
        "quiet-brand",
        "a few mentions a day (about 4, 20% negative) for 8 weeks, nothing happens",
        end,
        _events(rng, START, end, mentions, POLLING),
        None,
    )


def _slow_burn(seed: int) -> Scenario:
    """Kryptonite 2004: a forum post shows a pen opening a bike lock; blogs pick it up day by day
    for ten days until the maker responds and the mainstream press covers it, then it fades."""
    rng, world, end, mentions = _background(seed, QUIET, HISTORY_DAYS + 16)
    onset = _at(START, HISTORY_DAYS, 0)
    crisis_end = onset + timedelta(days=12)
    profile = _profile(QUIET.night)
    t0 = _seconds(START, onset)

    def negatives_per_day(k: int) -> float:
        if k < 10:
            return 1.5 * 1.35**k
        if k == 10:
            return 30.0  # the maker responds, the mainstream press covers it
        return 20.0 * 0.45 ** (k - 11)

    def negative_rate(t: float) -> float:
        if t < t0:
            return 0.0
        k = int((t - t0) // DAY_S)
        return negatives_per_day(k) * profile[int(t % DAY_S // HOUR_S)] / DAY_S

    # coverage and discussion that is not negative: about half as much again
    return _crisis(
        "slow-burn",
        "quiet brand; negative posts grow ~35% a day for ten days (Kryptonite 2004)",
        rng,
        mentions,
        end,
        onset,
        crisis_end,
        _Episode(world, "kryptonite", big=3, big_share=0.2, repost=0.2, fresh=0.85),
        negative_rate,
        0.5,
    )


def _storm(seed: int) -> Scenario:
    """Domino's 2009: a video of employees abusing food goes viral in hours; news follow-ups
    keep negative talk above normal for a few days."""
    rng, world, end, mentions = _background(seed, MEDIUM, HISTORY_DAYS + 5)
    onset = _at(START, HISTORY_DAYS + 1, 16)  # a Tuesday afternoon
    t0 = _seconds(START, onset)
    ramp, tau = 2 * HOUR_S, 2.2 * HOUR_S

    def negative_rate(t: float) -> float:
        if t < t0:
            return 0.0
        dt = t - t0
        # 6 per 5 min at first, tenfold within two hours, then fading over about 12 hours
        per_slice = 6.0 * 10 ** (dt / ramp) if dt < ramp else 60.0 * math.exp(-(dt - ramp) / tau)
        follow_up = 15.0 * 0.5 ** (dt / DAY_S) / DAY_S if dt > HOUR_S * 12 else 0.0
        return per_slice / SLICE + follow_up

    return _crisis(
        "storm",
        "medium brand; angry posts explode within two hours, fade in ~12 (Domino's)",
        rng,
        mentions,
        end,
        onset,
        onset + timedelta(days=1),
        _Episode(world, "dominos", big=4, big_share=0.35, repost=0.25, fresh=0.9),
        negative_rate,
        0.35,
    )


def _seasonal_large(seed: int) -> Scenario:
    rng, _, end, mentions = _background(seed, LARGE, HISTORY_DAYS + 7)
    return _lookalike(
        "seasonal-large",
        "large brand (~3000/day, 12% negative), strong daily and weekly cycle",
        end,
        _events(rng, START, end, mentions, POLLING),
        None,
    )


def _syndicated(seed: int) -> Scenario:
    rng, world, end, mentions = _background(seed, MEDIUM, HISTORY_DAYS + 7)
    at = _at(START, HISTORY_DAYS + 2, 9, 40)  # a Wednesday morning
    story = world.story("wire")
    t0 = _seconds(START, at)
    used: set[str] = set()
    for copy in range(40):
        offset = 0.0 if copy == 0 else 1800.0 * rng.random() ** 2  # most copies come early
        domain = world.domains[_draw(rng, world.flat_domains)]
        while domain in used:
            domain = world.domains[rng.randrange(len(world.domains))]
        used.add(domain)
        mentions.append(_Mention(t0 + offset, True, story, f"desk@{domain}", domain))
    return _lookalike(
        "syndicated",
        "medium brand; one negative wire story copied by 40 sites within 30 minutes",
        end,
        _events(rng, START, end, mentions, POLLING),
        at,
    )


def _outage_catchup(seed: int) -> Scenario:
    rng, _, end, mentions = _background(seed, MEDIUM, HISTORY_DAYS + 7)
    down = _at(START, HISTORY_DAYS + 2, 8)  # a Wednesday, 08:00-16:00 UTC
    up = down + timedelta(hours=8)
    return _lookalike(
        "outage-catchup",
        "medium brand; all sources down for 8 hours, the backlog arrives at once",
        end,
        _events(
            rng, START, end, mentions, POLLING, outage=(_seconds(START, down), _seconds(START, up))
        ),
        down,
    )


def _positive_spike(seed: int) -> Scenario:
    rng, world, end, mentions = _background(seed, MEDIUM, HISTORY_DAYS + 7)
    launch = _at(START, HISTORY_DAYS + 1, 15)  # a Tuesday afternoon
    t0, length = _seconds(START, launch), 12 * HOUR_S
    profile = _profile(MEDIUM.night)

    def extra_rate(t: float) -> float:
        dt = t - t0
        if not 0 <= dt < length:
            return 0.0
        ramp = min(1.0, dt / 1800.0)  # half an hour to full volume
        normal = MEDIUM.daily * profile[int(t % DAY_S // HOUR_S)] / DAY_S
        return 5.0 * normal * ramp  # total about 6x normal

    # launch coverage: the press release reposted widely, reviews and posts by regulars and new
    episode = _Episode(world, "launch", big=3, big_share=0.3, repost=0.2, fresh=0.5)
    for at in _poisson_times(rng, t0, t0 + length, extra_rate):
        mentions.append(episode.mention(at, rng.random() < 0.13))
    return _lookalike(
        "positive-spike",
        "medium brand; product launch, six times the volume for 12 hours, usual tone",
        end,
        _events(rng, START, end, mentions, POLLING),
        launch,
    )


def _spammer(seed: int) -> Scenario:
    rng, world, end, mentions = _background(seed, MEDIUM, HISTORY_DAYS + 7)
    at = _at(START, HISTORY_DAYS + 3, 20)  # a Thursday evening
    t0 = _seconds(START, at)
    domain = world.domains[_draw(rng, world.domain_weights)]
    for _ in range(60):
        mentions.append(
            _Mention(t0 + rng.uniform(0, HOUR_S), True, world.story("spam"), "angry_rider", domain)
        )
    return _lookalike(
        "spammer",
        "medium brand; one author posts 60 negative mentions within an hour",
        end,
        _events(rng, START, end, mentions, POLLING),
        at,
    )


def _holiday_lull(seed: int) -> Scenario:
    rng = _rng(seed)
    world = _World(rng, MEDIUM)
    days = HISTORY_DAYS + 14
    start = HOLIDAY_START
    end = start + timedelta(days=days)
    lull = _at(start, HISTORY_DAYS, 0)  # Monday 23 December
    t0, t1 = _seconds(start, lull), _seconds(start, lull + timedelta(days=7))
    mentions = world.background(MEDIUM, start, days, scale=lambda t: 0.25 if t0 <= t < t1 else 1.0)
    return Scenario(
        name="holiday-lull",
        description="medium brand; a holiday week at 25% of normal volume, then back to normal",
        start=start,
        end=end,
        events=_events(rng, start, end, mentions, POLLING),
        crisis_onset=None,
        crisis_end=None,
        expect_alert=False,
        polling=POLLING,
        event_at=lull,
    )


_BUILDERS: dict[str, tuple[Callable[[int], Scenario], int]] = {
    "quiet-brand": (_quiet_brand, 101),
    "slow-burn": (_slow_burn, 202),
    "storm": (_storm, 303),
    "seasonal-large": (_seasonal_large, 404),
    "syndicated": (_syndicated, 505),
    "outage-catchup": (_outage_catchup, 606),
    "positive-spike": (_positive_spike, 707),
    "spammer": (_spammer, 808),
    "holiday-lull": (_holiday_lull, 909),
}

NAMES = tuple(_BUILDERS)


def scenario(name: str, seed: int = 0) -> Scenario:
    """One scenario by name; ``seed`` 0 is the fixed default, others redraw it."""
    try:
        build, base = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(NAMES)}") from None
    return build(base + 1000 * seed)
