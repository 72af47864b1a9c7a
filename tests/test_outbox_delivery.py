"""The outbox dispatcher against real receivers on 127.0.0.1 and real databases: one key per
notification on every attempt, uncertain outcomes, permanent refusals, Retry-After, and a
shutdown in the middle of a hanging send."""

from __future__ import annotations

import socket
import threading
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpd
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine

from listener.config import Settings, validate_config
from listener.models import Notification, OutboxItem
from listener.service.deliver import IN_FLIGHT, PERMANENT_ATTEMPTS, deliver
from listener.storage import outbox
from listener.storage.sql import transaction

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def settings_for(url: str, extra: str = "") -> Settings:
    text = (
        '[[brands]]\nname = "Velora"\n[alerts]\nretry_for = "1h"\n'
        f'[[routes]]\nname = "chat"\nurls = ["{url}"]\n{extra}\n'
    )
    return validate_config(tomllib.loads(text), file=Path("listener.toml"), env={})


def enqueue(engine: Engine, title: str = "Storm: Velora") -> int:
    note = Notification("chat#0", "fired", title, "body", "text", NOW)
    with transaction(engine, "test") as conn:
        outbox.enqueue(conn, None, [note], NOW)
    [item] = outbox.outbox(engine)
    return item.id


def row(engine: Engine) -> OutboxItem:
    [item] = outbox.outbox(engine, include_delivered=True)
    return item


def test_a_permanent_refusal_is_dead_after_a_few_attempts_with_the_reason(
    engine: Engine, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("gone", status=404)
    settings = settings_for(f"json://127.0.0.1:{httpserver.port}/hook")
    enqueue(engine)
    moment = NOW
    for attempt in range(1, PERMANENT_ATTEMPTS + 1):
        report = deliver(engine, settings, moment)
        item = row(engine)
        assert item.attempts == attempt
        moment = item.next_attempt_at
    assert report.dead == 1 and item.dead_at is not None
    assert (item.last_error or "").startswith("permanent: ")
    assert "404" in (item.last_error or "") and f"after {PERMANENT_ATTEMPTS} attempts" in (
        item.last_error or ""
    )
    keys = {request.headers["Idempotency-Key"] for request, _ in httpserver.log}
    assert len(httpserver.log) == PERMANENT_ATTEMPTS and len(keys) == 1


def test_retry_after_delays_the_next_attempt(engine: Engine, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "busy", status=429, headers={"Retry-After": "900"}
    )
    enqueue(engine)
    deliver(engine, settings_for(f"json://127.0.0.1:{httpserver.port}/hook"), NOW)
    item = row(engine)
    assert item.dead_at is None and item.next_attempt_at == NOW + timedelta(seconds=900)


def stall(conn: socket.socket, head: bytes) -> None:
    while conn.recv(4096):
        pass


def test_an_uncertain_send_is_retried_after_send_timeout_with_the_same_key(
    engine: Engine,
) -> None:
    keys: list[str] = []

    def handler(conn: socket.socket, head: bytes) -> None:
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("idempotency-key:"):
                keys.append(line.split(":", 1)[1].strip())
        stall(conn, head)

    with httpd.serve(handler) as base:
        settings = settings_for(base.replace("http://", "json://") + "/hook", 'send_timeout = "1s"')
        enqueue(engine)
        report = deliver(engine, settings, NOW)
        first = row(engine)
        assert report.failed == 1 and "uncertain" in (first.last_error or "")
        deliver(engine, settings, first.next_attempt_at)
    assert first.next_attempt_at >= NOW + timedelta(seconds=30)  # backoff, and >= send_timeout
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("listener-")


def test_stop_abandons_a_hanging_send_and_keeps_the_row_due(engine: Engine) -> None:
    with httpd.serve(stall) as base:
        settings = settings_for(base.replace("http://", "json://") + "/hook")  # 60 s timeout
        enqueue(engine)
        stop = threading.Event()
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        report = deliver(engine, settings, NOW, stop=stop)
        took = time.monotonic() - started
    item = row(engine)
    assert report.delivered == report.failed == 0
    assert took < 30  # far below the route's 60 s send timeout
    assert item.delivered_at is None and item.dead_at is None and item.next_attempt_at == NOW
    assert (item.last_error or "").startswith(IN_FLIGHT)
    assert "interrupted by shutdown" in (item.last_error or "")
