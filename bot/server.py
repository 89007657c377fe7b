"""HTTP mode: Bolt behind waitress (a production WSGI server) in this process.

`POST /slack/events` takes commands, interactivity and events; `GET /healthz` reports health and
`GET /metrics` serves Prometheus' text format (`OpsWsgiApp`, also served alone in Socket Mode).
What a client may send, and how slowly, is bounded here (README.md, Deploy): waitress itself only
closes connections that are idle.
"""

from __future__ import annotations

import io
import json
import logging
import resource
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer

from bot.ack_gate import AckGate
from bot.config import is_loopback_host
from bot.metrics import CONTENT_TYPE_LATEST, Metrics

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
HealthReport = Callable[[], dict[str, Any]]

# Slack's largest payloads are interactions that carry a whole view or message (at most 100 blocks
# of at most 3,000 characters, and this bot's own cards and modals are far smaller) and message
# events (at most 40,000 characters, twice with the rich-text blocks): a few hundred KB even with
# every character JSON-escaped. A body above this is not from Slack.
MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_MAX_AGE_SECONDS = 5 * 60  # what slack_sdk's verifier accepts
# Slack's headers are a few hundred bytes; a proxy adds a few more. waitress's default is 256 KiB.
MAX_HEADER_BYTES = 32 * 1024
# A body being received stays in memory up to this, then goes to a temporary file (waitress's
# default 512 KiB, times every open connection, would be the memory an attacker could pin).
IN_MEMORY_BODY_BYTES = 64 * 1024
CONNECTIONS_WANTED = 1000
FILES_KEPT_FOR_THE_REST = 200  # the database, Slack and Constant Contact connections, logs
# Headers that a reverse proxy adds: a request carrying one was relayed, even from loopback.
FORWARDING_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")


def _json(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class OpsWsgiApp:
    """`/healthz` and `/metrics`. The health details and the metrics go only to this host (or to
    everyone with HEALTH_DETAILS=true): both tell how busy the bot is and what it is doing."""

    def __init__(self, health: HealthReport, metrics: Metrics | None = None, health_details: bool = False) -> None:
        self.health = health
        self.metrics = metrics
        self.health_details = health_details

    def serves(self, path: str, method: str) -> bool:
        return path in ("/healthz", "/metrics") and method in ("GET", "HEAD")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in ("GET", "HEAD"):
            return self._healthz(environ, start_response)
        if path == "/metrics" and method in ("GET", "HEAD") and self.metrics is not None:
            return self._metrics(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": "not found", "path": path})

    def _healthz(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        report = self.health()
        healthy = report.get("status") == "ok"
        status = "200 OK" if healthy else "503 Service Unavailable"
        if not (self.health_details or from_this_host(environ)):
            report = {"status": "ok" if healthy else "degraded"}
        return _json(start_response, status, report)

    def _metrics(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        assert self.metrics is not None
        if not (self.health_details or from_this_host(environ)):
            return _json(start_response, "403 Forbidden", {"error": "metrics are served to this host only"})
        body = self.metrics.text()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]


class SlackWsgiApp:
    def __init__(self, app: App, health: HealthReport, signing_secret: str | None = None,
                 gate: AckGate | None = None, health_details: bool = False, metrics: Metrics | None = None) -> None:
        self.slack = SlackRequestHandler(app, path="/slack/events")
        self.ops = OpsWsgiApp(health, metrics, health_details)
        self.metrics = metrics
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.gate = gate or AckGate()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if self.ops.serves(path, method):
            return self.ops(environ, start_response)
        if path == "/slack/events" and method == "POST":
            started = time.perf_counter()
            try:
                with self.gate.answering():
                    return self._slack(environ, start_response)
            finally:
                if self.metrics is not None:
                    self.metrics.ack_seconds.observe(time.perf_counter() - started)
        return _json(start_response, "404 Not Found", {"error": "not found", "path": path})

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Refused before a byte of the body is read: a request that cannot be Slack's, by its headers.
        refusal = self._refusal_by_headers(environ)
        if refusal is not None:
            return _json(start_response, refusal, {"error": "invalid request"})
        # Bolt parses the body and reads the timestamp with int() before it checks the signature, so a
        # malformed request raised inside Bolt, whose error handler then acted on the unverified body
        # (an apology posted to whatever response_url it named). Verify first, parse after.
        body = _read_body(environ)
        if self.verifier is not None and not _signed(self.verifier, environ, body):
            return _json(start_response, "401 Unauthorized", {"error": "invalid request"})
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        try:
            return self.slack(environ, start_response)
        except Exception as error:  # noqa: BLE001 - a signed body Bolt cannot even parse; Slack sends none
            log.warning("malformed Slack request refused: %s", type(error).__name__, extra={"outcome": "bad_request"})
            return _json(start_response, "400 Bad Request", {"error": "malformed request"})

    def _refusal_by_headers(self, environ: dict[str, Any]) -> str | None:
        if self.verifier is not None and not _plausibly_signed(environ, self.verifier.clock.now()):
            return "401 Unauthorized"
        if _declared_length(environ) > MAX_BODY_BYTES:
            return "413 Request Entity Too Large"
        return None



def from_this_host(environ: dict[str, Any]) -> bool:
    """A request from loopback that no proxy relayed (a proxy on this host connects from loopback too)."""
    if any(environ.get(header) for header in FORWARDING_HEADERS):
        return False
    return is_loopback_host(str(environ.get("REMOTE_ADDR", "")))


def _plausibly_signed(environ: dict[str, Any], now: float) -> bool:
    timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""))
    signature = str(environ.get("HTTP_X_SLACK_SIGNATURE", ""))
    return _fresh(timestamp, now) and signature.startswith("v0=")


def _fresh(timestamp: str, now: float) -> bool:
    # Header values arrive decoded as latin-1, where "²" is a digit that int() refuses.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    return abs(now - int(timestamp)) <= SIGNATURE_MAX_AGE_SECONDS


def _declared_length(environ: dict[str, Any]) -> int:
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _read_body(environ: dict[str, Any]) -> bytes:
    length = min(_declared_length(environ), MAX_BODY_BYTES)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _signed(verifier: SignatureVerifier, environ: dict[str, Any], body: bytes) -> bool:
    timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""))
    signature = str(environ.get("HTTP_X_SLACK_SIGNATURE", ""))
    try:
        return timestamp.isdigit() and bool(signature) and verifier.is_valid(body, timestamp, signature)
    except ValueError:  # slack_sdk decodes the body as UTF-8 to sign it; Slack never sends anything else
        return False


@dataclass(frozen=True)
class RequestDeadlines:
    """How long a client may take to send one request. waitress closes only idle connections, so a
    client sending a byte every few seconds kept its connection, and enough of them every slot."""

    head_seconds: float = 10.0  # from connecting, or from a request's first byte, to its blank line
    body_seconds: float = 10.0  # from the blank line to the body's last byte
    sweep_seconds: float = 1.0  # how often connections are checked


class _TimedParser(HTTPRequestParser):
    """waitress's parser, remembering when its request began (its first byte) and its head ended."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.began_at = time.monotonic()
        self.head_ended_at: float | None = None

    def received(self, data: bytes) -> int:
        consumed = int(super().received(data))
        if self.headers_finished and self.head_ended_at is None:
            self.head_ended_at = time.monotonic()
        return consumed


class _DeadlineChannel(HTTPChannel):
    parser_class = _TimedParser

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Adjustments, map: Any = None) -> None:  # noqa: A002
        self.opened_at = time.monotonic()
        self.spoke = False
        super().__init__(server, sock, addr, adj, map=map)

    def received(self, data: bytes) -> bool:
        self.spoke = self.spoke or bool(data)
        return bool(super().received(data))

    def overdue(self, now: float, deadlines: RequestDeadlines) -> bool:
        if self.requests or self.will_close or self.close_when_flushed:
            return False  # being answered, or closing already
        request = self.request
        if request is None:  # between keep-alive requests waitress's channel_timeout applies
            return not self.spoke and now - self.opened_at > deadlines.head_seconds
        if request.head_ended_at is None:
            return now - request.began_at > deadlines.head_seconds
        return now - request.head_ended_at > deadlines.body_seconds


class _DeadlineServer(TcpWSGIServer):
    """waitress's TCP server, also closing connections whose request is arriving too slowly."""

    channel_class = _DeadlineChannel

    def __init__(self, application: Any, deadlines: RequestDeadlines, **adjustments: Any) -> None:
        self.deadlines = deadlines
        self.next_sweep = 0.0
        # waitress calls maintenance() on every loop turn with a cleanup_interval of 0 (an int setting):
        # the sweeps are paced here instead, at deadlines.sweep_seconds.
        super().__init__(application, adj=Adjustments(cleanup_interval=0, **adjustments))

    def maintenance(self, now: float) -> None:
        moment = time.monotonic()
        if moment < self.next_sweep:
            return
        self.next_sweep = moment + self.deadlines.sweep_seconds
        super().maintenance(now)
        self._close_overdue(moment)

    def _close_overdue(self, now: float) -> None:
        overdue = [c for c in list(self.active_channels.values()) if c.overdue(now, self.deadlines)]
        for channel in overdue:
            channel.will_close = True  # the loop closes it on its next turn, as waitress's own sweep does
        if overdue:
            log.info("closed %d connection(s) whose request did not arrive in time", len(overdue),
                     extra={"event": "slow_client", "outcome": "closed"})


def connection_limit_for_this_process(wanted: int = CONNECTIONS_WANTED) -> int:
    """As many connections as wanted, leaving files for everything else: past the open-files limit
    accept() fails, and waitress keeps trying."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(100, min(wanted, soft - FILES_KEPT_FOR_THE_REST))


class HttpServer:
    """A waitress server that can run in the foreground or in a thread and stop cleanly."""

    def __init__(self, app: App | None, health: HealthReport, host: str, port: int, threads: int = 16,
                 signing_secret: str | None = None, gate: AckGate | None = None, *,
                 health_details: bool = False, deadlines: RequestDeadlines = RequestDeadlines(),
                 connection_limit: int | None = None, metrics: Metrics | None = None) -> None:
        # Without a Bolt app (Socket Mode), only /healthz and /metrics are served.
        wsgi: Callable[..., Iterable[bytes]] = (
            SlackWsgiApp(app, health, signing_secret, gate, health_details, metrics) if app is not None
            else OpsWsgiApp(health, metrics, health_details))
        self.server = _DeadlineServer(
            wsgi, deadlines, host=host, port=port, threads=threads, ident="deletetags-bot", channel_timeout=30,
            connection_limit=connection_limit or connection_limit_for_this_process(),
            # waitress answers 413 itself, from the Content-Length or once a chunked body passes this
            # (it refuses at >=, the app above at >), before the app or a temporary file sees the body.
            max_request_body_size=MAX_BODY_BYTES + 1, max_request_header_size=MAX_HEADER_BYTES,
            inbuf_overflow=IN_MEMORY_BODY_BYTES,
            # An int setting: the 0.2 given here before became 0, and the loop never slept. Its wake-ups
            # come from the sockets and waitress's trigger; the timeout only paces maintenance().
            asyncore_loop_timeout=1,
            # poll() rather than select(), which fails on any descriptor past 1,024.
            asyncore_use_poll=True,
            # waitress drops X-Forwarded-* and Forwarded from peers it does not trust (every peer, with
            # no trusted_proxy); /healthz needs them to tell a proxy on this host from a local client.
            # Nothing else reads them.
            clear_untrusted_proxy_headers=False,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{self.server.effective_host}:{self.port}"

    def run(self) -> None:
        self.server.run()

    def start_in_thread(self) -> "HttpServer":
        self._thread = threading.Thread(target=self.run, name="http-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            # Closing waitress's sockets from another thread races its poll() (EBADF):
            # close every dispatcher from inside its own loop, which then ends.
            server = self.server
            server.trigger.pull_trigger(lambda: [d.close() for d in list(server._map.values())])
            self._thread.join(timeout=5)
        else:
            self.server.close()
        self.server.task_dispatcher.shutdown(timeout=5)
