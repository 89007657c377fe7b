"""HTTP mode: Bolt behind waitress (a production WSGI server) in this process.

`POST /slack/events` takes commands, interactivity and events; `GET /healthz` reports health.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from waitress.server import create_server

from bot.ack_gate import AckGate

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
HealthReport = Callable[[], dict[str, Any]]


class SlackWsgiApp:
    def __init__(self, app: App, health: HealthReport, signing_secret: str | None = None,
                 gate: AckGate | None = None) -> None:
        self.slack = SlackRequestHandler(app, path="/slack/events")
        self.health = health
        self.verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self.gate = gate or AckGate()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz" and method in ("GET", "HEAD"):
            report = self.health()
            status = "200 OK" if report.get("status") == "ok" else "503 Service Unavailable"
            return self._json(start_response, status, report)
        if path == "/slack/events" and method == "POST":
            with self.gate.answering():
                return self._slack(environ, start_response)
        return self._json(start_response, "404 Not Found", {"error": "not found", "path": path})

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Bolt parses the body and reads the timestamp with int() before it checks the signature, so a
        # malformed request raised inside Bolt, whose error handler then acted on the unverified body
        # (an apology posted to whatever response_url it named). Verify first, parse after.
        body = _read_body(environ)
        if self.verifier is not None and not _signed(self.verifier, environ, body):
            return self._json(start_response, "401 Unauthorized", {"error": "invalid request"})
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
        try:
            return self.slack(environ, start_response)
        except Exception as error:  # noqa: BLE001 - a signed body Bolt cannot even parse; Slack sends none
            log.warning("malformed Slack request refused: %s", type(error).__name__, extra={"outcome": "bad_request"})
            return self._json(start_response, "400 Bad Request", {"error": "malformed request"})

    @staticmethod
    def _json(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
        body = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _signed(verifier: SignatureVerifier, environ: dict[str, Any], body: bytes) -> bool:
    timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""))
    signature = str(environ.get("HTTP_X_SLACK_SIGNATURE", ""))
    try:
        return timestamp.isdigit() and bool(signature) and verifier.is_valid(body, timestamp, signature)
    except ValueError:  # slack_sdk decodes the body as UTF-8 to sign it; Slack never sends anything else
        return False


class HttpServer:
    """A waitress server that can run in the foreground or in a thread and stop cleanly."""

    def __init__(self, app: App, health: HealthReport, host: str, port: int, threads: int = 16,
                 signing_secret: str | None = None, gate: AckGate | None = None) -> None:
        self.server = create_server(
            SlackWsgiApp(app, health, signing_secret, gate), host=host, port=port, threads=threads,
            ident="deletetags-bot", channel_timeout=30, connection_limit=200, asyncore_loop_timeout=0.2,
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
            # Closing waitress's sockets from another thread races its select() (EBADF):
            # close every dispatcher from inside its own loop, which then ends.
            server = self.server
            server.trigger.pull_trigger(lambda: [d.close() for d in list(server._map.values())])
            self._thread.join(timeout=5)
        else:
            self.server.close()
        self.server.task_dispatcher.shutdown(timeout=5)
