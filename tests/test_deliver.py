"""Delivery through apprise against real servers: an aiosmtpd SMTP server and pytest-httpserver on
127.0.0.1. Nothing in apprise is patched."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from pytest_httpserver import HTTPServer

from listener.alerting.deliver import Delivery, check_url, describe, send

SECRET = "S3cretPassw0rd"


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """aiosmtpd handler: keeps every message; refuses recipients named nobody@..."""

    messages: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


def refuse_everyone(*_: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    """A plain SMTP server (no TLS) that offers AUTH and refuses every login."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=refuse_everyone,
        auth_require_tls=False,  # offer AUTH on the plain connection so a login can be refused
    )
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def mailto(port: int, to: str = "pr@example.org", auth: str = "") -> str:
    return f"mailto://{auth}127.0.0.1:{port}?from=listener@example.org&to={to}&mode=insecure"


def stall(conn: socket.socket, head: bytes) -> None:
    """httpd handler: read the body, answer nothing; ends when the client gives up."""
    while conn.recv(4096):
        pass


def assert_secret_free(delivery: Delivery, caplog: pytest.LogCaptureFixture) -> None:
    assert SECRET not in (delivery.error or "")
    assert SECRET not in delivery.target
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()


# -- SMTP ----------------------------------------------------------------------------------------


def test_text_mail_arrives_with_title_as_subject(smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    delivery = send(
        mailto(port), title="Spike: ACME negative", body="line one\nline two", body_format="text"
    )
    assert delivery == Delivery(ok=True, error=None, target=delivery.target)
    assert delivery.target.startswith(f"mailto://127.0.0.1:{port}/pr%40example.org?")
    [received] = inbox.messages
    assert received.mail_from == "listener@example.org"
    assert received.rcpt_tos == ["pr@example.org"]
    assert received.message["Subject"] == "Spike: ACME negative"
    assert received.message.get_content_type() == "text/plain"
    assert received.message.get_content().replace("\r\n", "\n").strip() == "line one\nline two"


def test_html_mail_is_multipart_alternative_with_derived_plain_part(
    smtp: tuple[int, Inbox],
) -> None:
    port, inbox = smtp
    html = "<p>Mentions of <b>ACME</b> tripled</p>"
    delivery = send(
        mailto(port),
        title="Spike",
        body=html,
        body_format="html",
        attach_plain="OUR OWN PLAIN PART",
    )
    assert delivery.ok, delivery.error
    [received] = inbox.messages
    assert received.message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part for part in received.message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "<b>ACME</b>" in parts["text/html"].get_content()
    plain = parts["text/plain"].get_content()
    assert "ACME" in plain
    assert "<b>" not in plain
    # apprise builds the plain part from the HTML itself; attach_plain cannot reach the mail
    assert "OUR OWN PLAIN PART" not in plain


def test_markdown_mail_is_sent_as_html(smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    delivery = send(mailto(port), title="Spike", body="**ACME** tripled", body_format="markdown")
    assert delivery.ok, delivery.error
    [received] = inbox.messages
    html = received.message.get_body(preferencelist=("html",))
    assert html is not None
    assert "<strong>ACME</strong>" in html.get_content()


def test_title_cannot_inject_a_header_or_recipient(smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    delivery = send(
        mailto(port),
        title="Spike\r\nBcc: evil@example.org\nX-Evil: 1",
        body="body",
        body_format="text",
    )
    assert delivery.ok, delivery.error
    [received] = inbox.messages
    assert received.rcpt_tos == ["pr@example.org"]
    assert received.message["Bcc"] is None
    assert received.message["X-Evil"] is None
    assert received.message["Subject"] == "Spike Bcc: evil@example.org X-Evil: 1"


def test_refused_recipient_gives_a_verdict_with_the_smtp_code(smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    delivery = send(mailto(port, to="nobody@example.org"), title="t", body="b", body_format="text")
    assert not delivery.ok
    assert delivery.error is not None
    assert delivery.error.startswith(f"mailto://127.0.0.1:{port}/nobody%40example.org: ")
    assert "550" in delivery.error
    assert "\n" not in delivery.error
    assert inbox.messages == []


def test_refused_login_masks_the_password(
    smtp: tuple[int, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port, inbox = smtp
    delivery = send(mailto(port, auth=f"user:{SECRET}@"), title="t", body="b", body_format="text")
    assert not delivery.ok
    assert delivery.error is not None
    assert delivery.error.startswith(f"mailto://****:****@127.0.0.1:{port}/")
    assert "535" in delivery.error  # aiosmtpd: 535 5.7.8 Authentication credentials invalid
    assert "****:****@" in delivery.target  # the user name is masked too
    assert "user" not in delivery.target.split("@")[0]
    assert_secret_free(delivery, caplog)
    assert inbox.messages == []


def test_smtp_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    delivery = send(mailto(free_port()), title="t", body="b", body_format="text")
    assert not delivery.ok
    assert delivery.error is not None
    assert "refused" in delivery.error.lower()


# -- JSON webhook --------------------------------------------------------------------------------


def test_json_payload_has_title_and_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks/listener", method="POST").respond_with_json({"ok": True})
    delivery = send(
        f"json://127.0.0.1:{httpserver.port}/hooks/listener",
        title="Spike: ACME",
        body="Mentions tripled",
        body_format="text",
    )
    assert delivery.ok, delivery.error
    assert delivery.error is None
    [(request, _)] = httpserver.log
    payload = request.get_json()
    assert payload["title"] == "Spike: ACME"
    assert payload["message"] == "Mentions tripled"


def test_json_server_error_is_a_verdict_naming_the_status(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("boom", status=500)
    delivery = send(
        f"json://127.0.0.1:{httpserver.port}/hook", title="t", body="b", body_format="text"
    )
    assert not delivery.ok
    assert delivery.error is not None
    assert delivery.error.startswith(f"json://127.0.0.1:{httpserver.port}/hook: ")
    assert "500" in delivery.error


def test_json_connection_refused_is_quick_and_clear(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    started = time.monotonic()
    delivery = send(
        f"json://user:{SECRET}@127.0.0.1:{port}/hook", title="t", body="b", body_format="text"
    )
    assert time.monotonic() - started < 5
    assert not delivery.ok
    assert delivery.error is not None
    assert delivery.error.startswith(f"json://****:****@127.0.0.1:{port}/hook: ")
    assert "Connection refused" in delivery.error
    assert_secret_free(delivery, caplog)


def test_a_stalled_server_is_given_up_after_the_timeout() -> None:
    with httpd.serve(stall) as base:
        url = base.replace("http://", "json://") + "/hook"
        started = time.monotonic()
        delivery = send(url, title="t", body="b", body_format="text", timeout=0.5)
    assert time.monotonic() - started < 5
    assert not delivery.ok
    assert delivery.error is not None
    assert "timed out" in delivery.error.lower()


def test_the_urls_own_socket_timeouts_win() -> None:
    with httpd.serve(stall) as base:
        url = base.replace("http://", "json://") + "/hook?method=POST&rto=0.3"
        started = time.monotonic()
        delivery = send(url, title="t", body="b", body_format="text", timeout=60)
    assert time.monotonic() - started < 5
    assert "timed out" in (delivery.error or "").lower()


def test_tokens_the_privacy_url_hides_are_masked_in_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "GotifyAppToken1234"
    delivery = send(
        f"gotify://127.0.0.1:{free_port()}/{token}", title="t", body="b", body_format="text"
    )
    assert not delivery.ok
    for text in (delivery.error or "", delivery.target, caplog.text):
        assert token not in text


def test_header_values_are_masked_although_apprise_prints_them(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/hook", headers={"Authorization": f"Bearer {SECRET}"}
    ).respond_with_data("nope", status=403)
    url = f"json://127.0.0.1:{httpserver.port}/hook?+Authorization=Bearer%20{SECRET}"
    delivery = send(url, title="t", body="b", body_format="text")
    assert not delivery.ok
    assert "403" in (delivery.error or "")
    assert SECRET not in (delivery.error or "")
    assert SECRET not in delivery.target
    assert SECRET not in describe(url)
    [(request, _)] = httpserver.log
    assert request.headers["Authorization"] == f"Bearer {SECRET}"  # masking is for display only


def test_concurrent_sends_keep_their_own_errors(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("boom", status=500)
    refused_port = free_port()
    urls = [f"json://127.0.0.1:{httpserver.port}/hook", f"json://127.0.0.1:{refused_port}/hook"]
    with ThreadPoolExecutor(max_workers=2) as pool:
        failing, refused = pool.map(
            lambda url: send(url, title="t", body="b", body_format="text"), urls
        )
    assert "500" in (failing.error or "")
    assert "refused" not in (failing.error or "").lower()
    assert "refused" in (refused.error or "").lower()
    assert "500" not in (refused.error or "").replace(str(refused_port), "")


def test_a_url_apprise_cannot_load_is_a_verdict_too(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    delivery = send(f"nonsense://user:{SECRET}@x/", title="t", body="b", body_format="text")
    assert delivery == Delivery(ok=False, error=delivery.error, target="nonsense://***")
    assert (delivery.error or "").startswith("nonsense://***: apprise cannot use this URL: ")
    assert_secret_free(delivery, caplog)


def test_bad_body_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="body_format"):
        send("json://127.0.0.1/hook", title="t", body="b", body_format="rtf")


# -- check_url and describe ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "json://127.0.0.1:8080/hook",
        "mailto://user:pw@127.0.0.1:2525?from=listener@example.org&to=pr@example.org&mode=insecure",
        "mailtos://user:pw@smtp.example.org?to=pr@example.org",
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#alerts",
    ],
)
def test_check_url_accepts_what_apprise_understands(url: str) -> None:
    assert check_url(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "nonsense://x",
        "mailto://",
        "",
        f"nonsense://user:{SECRET}@host.example.org/{SECRET}xyz",
        f"mailto://user:{SECRET}@",
    ],
)
def test_check_url_explains_a_refusal_without_secrets(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reason = check_url(url)
    assert reason is not None
    assert reason.startswith("apprise cannot use this URL: ")
    assert "\n" not in reason
    assert SECRET not in reason
    assert SECRET not in caplog.text


def test_check_url_does_not_echo_apprise_half_masked_url() -> None:
    reason = check_url(f"nonsense://user:{SECRET}@x")
    assert reason is not None
    assert reason.endswith("nonsense://***")
    assert f"{SECRET[0]}...{SECRET[-1]}" not in reason  # apprise's own "S...d" form


def test_describe_uses_the_privacy_url() -> None:
    assert describe(f"json://user:{SECRET}@127.0.0.1:8080/hook").startswith(
        "json://****:****@127.0.0.1:8080/hook?"
    )
    slack = describe("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#alerts")
    assert "TIiajkdnlazkcOXrIdevi7F" not in slack
    assert slack.startswith("slack://T...2/A...D/T...F/")
    assert describe(f"nonsense://user:{SECRET}@x") == "nonsense://***"
    assert describe("not a url") == "***"


# -- one key per notification, and what a failure means -----------------------------------------


def test_a_webhook_gets_the_key_as_idempotency_key_on_every_attempt(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    url = f"json://127.0.0.1:{httpserver.port}/hook"
    for _ in range(2):
        assert send(url, title="t", body="b", body_format="text", key="listener-abc").ok
    keys = [request.headers.get("Idempotency-Key") for request, _ in httpserver.log]
    assert keys == ["listener-abc", "listener-abc"]


def test_a_key_the_url_sets_itself_wins(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    url = f"json://127.0.0.1:{httpserver.port}/hook?+Idempotency-Key=mine"
    assert send(url, title="t", body="b", body_format="text", key="listener-abc").ok
    [(request, _)] = httpserver.log
    assert request.headers.get("Idempotency-Key") == "mine"


def test_mail_carries_exactly_one_message_id_derived_from_the_key(
    smtp: tuple[int, Inbox],
) -> None:
    port, inbox = smtp
    for _ in range(2):
        assert send(mailto(port), title="t", body="b", body_format="html", key="listener-k1").ok
    ids = [r.message.get_all("Message-ID") for r in inbox.messages]
    assert ids == [["<listener-k1@example.org>"], ["<listener-k1@example.org>"]]
    assert send(mailto(port), title="t", body="b", body_format="text").ok  # no key: apprise's own
    assert inbox.messages[-1].message["Message-ID"] != "<listener-k1@example.org>"


@pytest.mark.parametrize(
    ("status", "permanent"), [(404, True), (400, True), (408, False), (429, False), (500, False)]
)
def test_http_4xx_but_408_and_429_is_permanent(
    httpserver: HTTPServer, status: int, permanent: bool
) -> None:
    httpserver.expect_request("/hook").respond_with_data("no", status=status)
    url = f"json://127.0.0.1:{httpserver.port}/hook"
    delivery = send(url, title="t", body="b", body_format="text", key="k")
    assert not delivery.ok and not delivery.uncertain
    assert delivery.permanent is permanent
    assert str(status) in (delivery.error or "")


@pytest.mark.parametrize("value", ["120", "HTTP-DATE"])
def test_retry_after_of_a_webhook_is_reported(httpserver: HTTPServer, value: str) -> None:
    from email.utils import format_datetime

    if value == "HTTP-DATE":
        value = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    httpserver.expect_request("/hook").respond_with_data(
        "slow down", status=429, headers={"Retry-After": value}
    )
    delivery = send(f"json://127.0.0.1:{httpserver.port}/hook", title="t", body="b",
                    body_format="text")  # fmt: skip
    assert not delivery.ok and not delivery.permanent
    assert delivery.retry_after is not None and 110 <= delivery.retry_after <= 120


def test_a_refused_recipient_is_permanent(smtp: tuple[int, Inbox]) -> None:
    port, _ = smtp
    delivery = send(mailto(port, to="nobody@example.org"), title="t", body="b", body_format="text")
    assert delivery.permanent and not delivery.uncertain


def test_a_read_timeout_is_uncertain_and_a_refused_connection_is_not() -> None:
    with httpd.serve(stall) as base:
        url = base.replace("http://", "json://") + "/hook"
        stalled = send(url, title="t", body="b", body_format="text", timeout=0.5)
    assert not stalled.ok and stalled.uncertain and not stalled.permanent
    assert "uncertain" in (stalled.error or "")
    refused = send(f"json://127.0.0.1:{free_port()}/hook", title="t", body="b",
                   body_format="text", timeout=2)  # fmt: skip
    assert not refused.ok and not refused.uncertain


class SilentAfterData(Inbox):
    """Takes the message, then answers DATA only after ``delay`` seconds."""

    delay = 3.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        answer = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return answer


def test_smtp_silent_after_data_is_uncertain_and_copies_share_the_message_id() -> None:
    inbox = SilentAfterData()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        first = send(mailto(port), title="t", body="b", body_format="text", timeout=1, key="k9")
        second = send(mailto(port), title="t", body="b", body_format="text", timeout=1, key="k9")
        time.sleep(inbox.delay + 0.5)
    finally:
        controller.stop()
    assert not first.ok and first.uncertain and not first.permanent
    assert not second.ok and second.uncertain
    assert [r.message["Message-ID"] for r in inbox.messages] == ["<k9@example.org>"] * 2
