"""Observability of the daemon: Prometheus metrics and a health check over HTTP.

Rules:
- Off unless ``[metrics] listen`` is set; bound to 127.0.0.1 by default (the config refuses
  nothing, but the example and docs say why a public address needs a proxy with auth).
- ``GET /metrics``: Prometheus text format (prometheus_client): polls, errors and latency per
  source, mentions ingested, alerts by state, outbox backlog, detector run time, brands
  evaluated by this instance.
- ``GET /healthz``: 200 "ok" while the scheduler loop runs and the database answered within
  the last two watchdog intervals, else 503 with the reason ("database failing (locked) for
  40 s: database is locked" while jobs or the probe see a database fault). Never a secret in either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from listener.errors import ListenerError

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.polls = Counter(
            "listener_polls", "Polls by source and outcome", ["source", "status"], registry=registry
        )
        self.poll_errors = Counter(
            "listener_poll_errors", "Failed polls by source", ["source"], registry=registry
        )
        self.poll_seconds = Histogram(
            "listener_poll_seconds",
            "Poll latency by source",
            ["source"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=registry,
        )
        self.mentions = Counter(
            "listener_mentions_ingested", "New mentions stored", registry=registry
        )
        self.alerts = Gauge("listener_alerts", "Alerts by state", ["state"], registry=registry)
        self.outbox = Gauge(
            "listener_outbox", "Notifications by state (pending, dead)", ["state"],
            registry=registry,
        )  # fmt: skip
        self.detector_seconds = Histogram(
            "listener_detection_seconds",
            "Run time of detection and delivery for all brands",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.brands = Gauge(
            "listener_brands_evaluated",
            "Brands this instance evaluated at its last detection run (all on SQLite, its "
            "share on PostgreSQL)",
            registry=registry,
        )
        self.healthy_at = time.monotonic()
        self.health_window = 120.0
        self.problem = ""
        self.database_problem: Callable[[], str] = str  # the daemon's DatabaseHealth.problem

    def count_alerts(self, by_state: dict[str, int], backlog: dict[str, int]) -> None:
        """Set the alert and outbox gauges from COUNT queries (``storage.alerts.count_by_state``,
        ``storage.outbox.backlog``): a state without alerts reads 0."""
        for state in ("pending", "firing", "resolved"):
            self.alerts.labels(state).set(by_state.get(state, 0))
        for state, count in backlog.items():
            self.outbox.labels(state).set(count)

    def healthy(self) -> tuple[bool, str]:
        database = self.database_problem()
        if database:
            return False, database
        if self.problem:
            return False, self.problem
        if time.monotonic() - self.healthy_at > self.health_window:
            return False, "no successful health check recently"
        return True, "ok"


async def serve(metrics: Metrics, host: str, port: int) -> asyncio.AbstractServer:
    """A minimal HTTP/1.0 server for /metrics and /healthz on the daemon's event loop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            if path.split("?")[0] == "/metrics":
                status, kind, body = (
                    "200 OK",
                    CONTENT_TYPE_LATEST,
                    generate_latest(metrics.registry),
                )
            elif path.split("?")[0] == "/healthz":
                ok, why = metrics.healthy()
                status = "200 OK" if ok else "503 Service Unavailable"
                kind, body = "text/plain; charset=utf-8", (why + "\n").encode()
            else:
                status, kind, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, host, port)
    except OSError as exc:
        raise ListenerError(
            f"cannot listen on {host}:{port} ([metrics] listen): {exc.strerror or exc}"
        ) from None
    log.info("metrics and health on http://%s:%d/metrics and /healthz", host, port)
    return server
