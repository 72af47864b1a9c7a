"""Alerting: lifecycle, rendering, outbox and delivery (the only apprise user)."""
