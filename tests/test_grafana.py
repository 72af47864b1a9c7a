"""The Grafana dashboard in contrib/ queries only metrics the daemon's /metrics exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from listener.daemon.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "contrib" / "grafana" / "listener.json"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
}


def exported() -> set[str]:
    """Every series name /metrics can show: the metric families and their suffixes."""
    metrics = Metrics()
    names = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    text = generate_latest(metrics.registry).decode()
    names.update(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE))
    return names


def queried() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    return exprs


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    known = exported()
    used = set()
    for expr in queried():
        for name in re.findall(r"\blistener_[a-z_]+\b", expr):
            used.add(name)
            assert name in known, f"{name} in {expr!r} is not exported by /metrics"
    # every family the daemon exports is on the dashboard somewhere
    families = {family.name for family in Metrics().registry.collect()}
    for family in families:
        assert any(name.startswith(family) for name in used), f"{family} is on no panel"


def test_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
