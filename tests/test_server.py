"""The WSGI app in front of Bolt, called directly: what it refuses before reading a body, and who
sees /healthz's whole report. The server around it is tested in tests/reliability/test_http_abuse.py."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import Ack, App
from slack_bolt.authorization import AuthorizeResult

from bot import server
from bot.server import MAX_BODY_BYTES, SlackWsgiApp

SECRET = "test-signing-secret"
REPORT = {"status": "ok", "database": "ok", "scheduler": "running", "in_flight_requests": 3,
          "last_constant_contact_success": "2026-01-01T00:00:00+00:00"}


class RecordingInput(io.BytesIO):
    """wsgi.input that remembers every read."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.reads: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.reads.append(size)
        return super().read(size)


@pytest.fixture(scope="module")
def bolt() -> App:
    # Authorised without asking Slack: nothing here may leave the process.
    authorized = AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-test", bot_user_id="U0BOT",
                                 bot_id="B0BOT")
    app = App(signing_secret=SECRET, authorize=lambda **_: authorized)

    @app.command("/deletetags")
    def answer(ack: Ack) -> None:
        ack("help text")

    return app


def wsgi(bolt: App, report: dict[str, Any] | None = None, *, health_details: bool = False) -> SlackWsgiApp:
    return SlackWsgiApp(bolt, lambda: dict(report or REPORT), SECRET, health_details=health_details)


def signature(timestamp: str, body: bytes) -> str:
    return "v0=" + hmac.new(SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def post(body: bytes, headers: dict[str, str], declared: int | None = None) -> dict[str, Any]:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/slack/events", "wsgi.input": RecordingInput(body),
               "CONTENT_LENGTH": str(len(body) if declared is None else declared),
               "CONTENT_TYPE": "application/x-www-form-urlencoded", "SERVER_NAME": "test", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1"}
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return environ


def call(app: SlackWsgiApp, environ: dict[str, Any]) -> tuple[str, bytes]:
    answered: list[str] = []
    chunks = app(environ, lambda status, headers: answered.append(status))
    return answered[0], b"".join(chunks)


COMMAND = urlencode({"command": "/deletetags", "text": "help", "user_id": "U0RITA", "channel_id": "C1",
                     "team_id": "T1", "response_url": "http://127.0.0.1:9/r", "trigger_id": "1.2"}).encode()


def header_variants() -> Iterator[tuple[str, dict[str, str]]]:
    now = str(int(time.time()))
    good = signature(now, COMMAND)
    yield "no headers", {}
    yield "timestamp only", {"X-Slack-Request-Timestamp": now}
    yield "signature only", {"X-Slack-Signature": good}
    yield "signed 6 minutes ago", {"X-Slack-Request-Timestamp": str(int(now) - 360),
                                   "X-Slack-Signature": signature(str(int(now) - 360), COMMAND)}
    yield "6 minutes ahead", {"X-Slack-Request-Timestamp": str(int(now) + 360), "X-Slack-Signature": good}
    yield "timestamp not a number", {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": good}
    yield "a latin-1 digit", {"X-Slack-Request-Timestamp": "\xb2", "X-Slack-Signature": good}
    yield "5,000 digits", {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": good}
    yield "not a v0 signature", {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v1=" + good[3:]}


@pytest.mark.parametrize("name", [name for name, _ in header_variants()])
def test_a_request_that_cannot_be_signed_is_refused_without_reading_its_body(bolt: App, name: str) -> None:
    headers = dict(header_variants())[name]
    environ = post(COMMAND, headers, declared=300_000_000)
    status, _ = call(wsgi(bolt), environ)
    assert status.startswith("401")
    assert environ["wsgi.input"].reads == []


def test_a_body_declared_over_the_cap_is_refused_without_being_read(bolt: App) -> None:
    now = str(int(time.time()))
    environ = post(COMMAND, {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": signature(now, COMMAND)},
                   declared=MAX_BODY_BYTES + 1)
    status, _ = call(wsgi(bolt), environ)
    assert status.startswith("413")
    assert environ["wsgi.input"].reads == []


def test_a_signed_request_is_read_once_and_answered(bolt: App) -> None:
    now = str(int(time.time()))
    environ = post(COMMAND, {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": signature(now, COMMAND)})
    stream = environ["wsgi.input"]
    status, body = call(wsgi(bolt), environ)
    assert (status, body) == ("200 OK", b"help text")
    assert stream.reads == [len(COMMAND)]


def health(remote: str, **headers: str) -> dict[str, Any]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz", "REMOTE_ADDR": remote}
    environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    return environ


@pytest.mark.parametrize("remote", ["203.0.113.7", "10.0.0.5", "192.168.1.20", "2001:db8::1", "", "unix"])
def test_healthz_tells_other_hosts_only_the_status(bolt: App, remote: str) -> None:
    status, body = call(wsgi(bolt), health(remote))
    assert (status, json.loads(body)) == ("200 OK", {"status": "ok"})


def test_healthz_tells_other_hosts_degraded_with_503_and_nothing_else(bolt: App) -> None:
    status, body = call(wsgi(bolt, {**REPORT, "status": "degraded", "database": "error: OperationalError"}),
                        health("203.0.113.7"))
    assert (status, json.loads(body)) == ("503 Service Unavailable", {"status": "degraded"})


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_healthz_gives_this_host_the_whole_report(bolt: App, remote: str) -> None:
    status, body = call(wsgi(bolt), health(remote))
    assert (status, json.loads(body)) == ("200 OK", REPORT)


@pytest.mark.parametrize("header", ["X_FORWARDED_FOR", "FORWARDED", "X_REAL_IP"])
def test_healthz_relayed_by_a_proxy_on_this_host_gets_only_the_status(bolt: App, header: str) -> None:
    status, body = call(wsgi(bolt), health("127.0.0.1", **{header: "203.0.113.7"}))
    assert json.loads(body) == {"status": "ok"}


def test_health_details_setting_shows_the_report_to_everyone(bolt: App) -> None:
    status, body = call(wsgi(bolt, health_details=True), health("203.0.113.7", X_FORWARDED_FOR="203.0.113.7"))
    assert json.loads(body) == REPORT


def test_the_connection_limit_leaves_files_for_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.resource, "getrlimit", lambda which: (1024, 4096))
    assert server.connection_limit_for_this_process() == 1024 - server.FILES_KEPT_FOR_THE_REST
    monkeypatch.setattr(server.resource, "getrlimit", lambda which: (65536, 65536))
    assert server.connection_limit_for_this_process() == server.CONNECTIONS_WANTED
