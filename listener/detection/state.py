"""Detection state as plain data: a resumable replay (``monitor.Replay``) to and from JSON values.

Rules:
- No pickle: the state may be stored in a database other programs share, so it is plain JSON
  values (dicts, lists, strings, numbers) that ``load`` validates by shape as it rebuilds.
- What is kept: the series' counts (sparse: only non-zero buckets), its per-bucket detail from
  ``detail_from`` on, every detector's episode state, calibration record and last episode, and
  the replay's progress (next bucket to judge, position in time). The roll-up is rebuilt from
  the buckets; caches start empty.
- The parameters are not kept: the caller stores a fingerprint of them with the state
  (``fingerprint``) and rebuilds by a full replay when it no longer matches.
- ``load(dump(r))`` continues exactly as ``r`` would: the same verdicts, to the last digit
  (floats are written with ``repr`` precision).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import MutableSequence, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from listener.detection.monitor import Replay
from listener.detection.registry import DetectionParams
from listener.models import Finding

FORMAT = 1  # bump when the layout or the detectors' semantics change: states are rebuilt


def fingerprint(
    params: DetectionParams, width: timedelta, lateness: timedelta, version: str
) -> str:
    """What a stored state is valid for: detector parameters, bucket width, lateness, format and
    listener version (a new version may judge differently)."""
    text = repr((FORMAT, version, params, width.total_seconds(), lateness.total_seconds()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def dump(replay: Replay) -> dict[str, Any]:
    """The replay as JSON values."""
    series, monitor = replay.series, replay.monitor
    buckets = sorted({*series.stories, *series.voices, *series.domains})
    detail = [
        [i, series.stories.get(i, {}), series.voices.get(i, {}), sorted(series.domains.get(i, ()))]
        for i in buckets
        if i >= series.detail_from
    ]
    trackers = {}
    for name, tracker in monitor.trackers.items():
        trackers[name] = {
            "firing": tracker.firing,
            "severity": tracker.severity,
            "started": _time(tracker.started),
            "clear_since": _time(tracker.clear_since),
            "peak": _finding(tracker.peak) if tracker.peak is not None else None,
            "last_resolved": _time(tracker.last_resolved),
            "opened": tracker.opened,
        }
    return {
        "format": FORMAT,
        "start": series.start.isoformat(),
        "length": len(series),
        "negative": _sparse(series.negative),
        "total": _sparse(series.total) if series.total is not None else None,
        "first_data": series.first_data,
        "detailed": series.detailed,
        "dropped": series.dropped,
        "detail_from": series.detail_from,
        "anonymous": series.anonymous,
        "detail": detail,
        "trackers": trackers,
        "peaks": {name: _pairs(p.peaks) for name, p in monitor.peaks.items()},
        "sizes": {name: _pairs(p.peaks) for name, p in monitor.sizes.items()},
        "last_episode": {n: [t.isoformat(), s] for n, (t, s) in monitor.last_episode.items()},
        "done": replay.done,
        "position": _time(replay.position),
    }


def load(
    data: dict[str, Any], *, width: timedelta, lateness: timedelta, params: DetectionParams
) -> Replay:
    """The replay ``data`` describes; ValueError when it is not a state this version wrote."""
    try:
        return _load(data, width, lateness, params)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"not a detection state: {exc!r}") from exc


def _add_coarse(coarse: MutableSequence[int], values: Sequence[int], per: int) -> None:
    """Add each run of ``per`` buckets of ``values`` to its coarse bucket (bucket ``i`` counts
    in ``coarse[i // per]``): one sum a coarse bucket, not one addition a bucket."""
    for index, begin in enumerate(range(0, len(values), per)):
        coarse[index] += sum(values[begin : begin + per])


def _load(
    data: dict[str, Any], width: timedelta, lateness: timedelta, params: DetectionParams
) -> Replay:
    if data["format"] != FORMAT:
        raise ValueError(f"format {data['format']}")
    replay = Replay(
        start=datetime.fromisoformat(data["start"]),
        width=width,
        lateness=lateness,
        params=params,
        with_total=data["total"] is not None,
    )
    series = replay.series
    length = int(data["length"])
    series.extend_to(length - 1)
    for values, stored in ((series.negative, data["negative"]), (series.total, data["total"])):
        if values is None:
            continue
        for i, n in zip(stored[::2], stored[1::2], strict=True):
            values[int(i)] = int(n)
    per = series.per_coarse
    _add_coarse(series.coarse_negative, series.negative, per)
    _add_coarse(
        series.coarse_total, series.total if series.total is not None else series.negative, per
    )
    series.first_data = None if data["first_data"] is None else int(data["first_data"])
    series.detailed = bool(data["detailed"])
    series.dropped = int(data["dropped"])
    series.detail_from = int(data["detail_from"])
    series.anonymous = int(data["anonymous"])
    for i, stories, voices, domains in data["detail"]:
        i = int(i)
        if stories:
            series.stories[i] = {str(k): int(v) for k, v in stories.items()}
        if voices:
            series.voices[i] = {str(k): int(v) for k, v in voices.items()}
        if domains:
            series.domains[i] = {str(d) for d in domains}
    monitor = replay.monitor
    for name, stored in data["trackers"].items():
        tracker = monitor.trackers[name]
        tracker.firing = bool(stored["firing"])
        tracker.severity = str(stored["severity"])
        tracker.started = _parse(stored["started"])
        tracker.clear_since = _parse(stored["clear_since"])
        tracker.peak = _unfinding(stored["peak"]) if stored["peak"] is not None else None
        tracker.last_resolved = _parse(stored["last_resolved"])
        tracker.opened = int(stored["opened"])
    for records, stored in ((monitor.peaks, data["peaks"]), (monitor.sizes, data["sizes"])):
        for name, pairs in stored.items():
            days, scores = pairs[::2], pairs[1::2]
            records[name].peaks = {int(d): float(s) for d, s in zip(days, scores, strict=True)}
    monitor.last_episode = {
        name: (datetime.fromisoformat(at), float(score))
        for name, (at, score) in data["last_episode"].items()
    }
    replay.done = int(data["done"])
    replay.position = _parse(data["position"])
    return replay


def encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def decode(blob: bytes) -> dict[str, Any]:
    data = json.loads(blob)
    if not isinstance(data, dict):
        raise ValueError("not a detection state")
    return data


def _sparse(values: Sequence[int]) -> list[int]:
    out: list[int] = []
    for i, n in enumerate(values):
        if n:
            out += (i, n)
    return out


def _pairs(values: dict[int, float]) -> list[float]:
    out: list[float] = []
    for day, score in values.items():
        out += (day, score)
    return out


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


_FINDING_TIMES = ("at", "window_start", "window_end")


def _finding(finding: Finding) -> dict[str, Any]:
    out = {f.name: getattr(finding, f.name) for f in fields(finding)}
    for name in _FINDING_TIMES:
        out[name] = out[name].isoformat()
    return out


def _unfinding(data: dict[str, Any]) -> Finding:
    values = dict(data)
    for name in _FINDING_TIMES:
        values[name] = datetime.fromisoformat(values[name])
    return Finding(**values)
