"""Alert lifecycle decisions that name no detector: inhibition goes by the detector registry."""

from __future__ import annotations

from dataclasses import dataclass

from listener.alerting import lifecycle
from listener.detection.registry import INHIBITORS, REGISTRY


@dataclass(frozen=True)
class Alert:
    id: int
    brand: str
    detector: str
    severity: str


def test_the_registry_says_which_detectors_inhibit() -> None:
    assert {name for name, spec in REGISTRY.items() if spec.inhibits} == INHIBITORS
    assert "storm" in INHIBITORS and "smoulder" not in INHIBITORS


def test_a_firing_storm_inhibits_lesser_alerts_of_its_brand_only() -> None:
    storm = Alert(1, "Acme", "storm", "warning")
    firing = [storm]
    assert lifecycle.inhibited_by(firing, 2, "Acme", "smoulder", "warning", INHIBITORS) == storm
    # more severe than the storm, another brand, or the storm itself: notified
    assert lifecycle.inhibited_by(firing, 2, "Acme", "smoulder", "critical", INHIBITORS) is None
    assert lifecycle.inhibited_by(firing, 2, "Other", "smoulder", "warning", INHIBITORS) is None
    assert lifecycle.inhibited_by(firing, 1, "Acme", "storm", "warning", INHIBITORS) is None
    assert lifecycle.inhibited_by(firing, 3, "Acme", "storm", "warning", INHIBITORS) is None


def test_inhibition_follows_the_given_detectors_not_a_name() -> None:
    firing = [Alert(1, "Acme", "storm", "critical"), Alert(2, "Acme", "pulse", "critical")]
    # a new detector that declares itself an inhibitor inhibits; the storm, not declared, does not
    found = lifecycle.inhibited_by(firing, 3, "Acme", "smoulder", "warning", {"pulse"})
    assert found == firing[1]
    assert lifecycle.inhibited_by(firing, 3, "Acme", "smoulder", "warning", set()) is None
