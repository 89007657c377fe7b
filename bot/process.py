"""One bot process: services, the Bolt app, and HTTP or Socket Mode, started and stopped in order.

Exactly one process may run per Slack app and database: it owns the scheduler (polls would run
twice otherwise) and, in Socket Mode, the connection (Slack would split events between two).
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from urllib.parse import urlsplit

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.app import build_app
from bot.config import Settings
from bot.ops.check import BAD_TOKEN_ERRORS, slack_error_code
from bot.runtime import Services
from bot.server import HttpServer

log = logging.getLogger(__name__)


# Young collections this much rarer than Python's default (700, 10, 10): each of them is cheap,
# but a full collection of a heap holding 500-tag cards stalls every thread, acks included.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_garbage_collector() -> None:
    """Objects alive once the process is up (modules, settings, the app) are moved out of the
    collector's reach (`gc.freeze`), and collections run less often: the slowest acks under load
    were the ones that met a full collection (benchmarks/README.md)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


TOKEN_CHECK_SECONDS = 10
TOKEN_FIX = ("reinstall the app to the workspace (OAuth & Permissions), copy its Bot User OAuth Token (xoxb-…) "
             "into SLACK_BOT_TOKEN and start again; `deletetags-bot check` tests the settings without starting")


def slack_token_accepted(settings: Settings) -> bool:
    """auth.test once at start-up. False only when Slack refuses the token: a bot that cannot post is
    of no use. An unreachable or failing Slack is a warning: it may well be back before anyone asks."""
    token = settings.slack_bot_token.reveal() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=TOKEN_CHECK_SECONDS)
    try:
        answer = client.auth_test()
    except SlackApiError as error:
        return _starting_despite(slack_error_code(error))
    except (OSError, SlackClientError) as error:
        log.warning("could not reach Slack at %s to check SLACK_BOT_TOKEN (%s); starting anyway",
                    urlsplit(settings.slack_api_url).netloc, type(error).__name__, extra={"event": "startup"})
        return True
    log.info("Slack accepted SLACK_BOT_TOKEN: bot @%s in workspace %s", answer.get("user"), answer.get("team"),
             extra={"event": "startup"})
    return True


def _starting_despite(code: str) -> bool:
    if code in BAD_TOKEN_ERRORS:
        log.error("SLACK_BOT_TOKEN was refused by Slack (%s): %s", code, TOKEN_FIX, extra={"event": "startup"})
        return False
    log.warning("could not check SLACK_BOT_TOKEN: Slack answered auth.test with %s; starting anyway", code,
                extra={"event": "startup"})
    return True


class BotProcess:
    def __init__(self, settings: Settings, *, socket_mode: bool = False, services: Services | None = None) -> None:
        self.settings = settings
        self.socket_mode = socket_mode
        self.services = services or Services.build(settings)
        self.listener_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="bolt-listener")
        self.app: App = build_app(self.services, self.listener_pool)
        self.http: HttpServer | None = None
        self._socket_handler = None
        self.ops_http: HttpServer | None = None  # /metrics and /healthz in Socket Mode, on METRICS_PORT
        self._stopped = threading.Event()

    def start(self, *, serve_http_in_thread: bool = True) -> "BotProcess":
        self.services.start()
        if self.socket_mode:
            self._connect_socket_mode()
        else:
            secret = self.settings.slack_signing_secret
            self.http = HttpServer(self.app, self.services.health, self.settings.host, self.settings.port,
                                   signing_secret=secret.reveal() if secret else None,
                                   gate=self.services.ack_gate, health_details=self.settings.health_details,
                                   metrics=self.services.metrics)
            if serve_http_in_thread:
                self.http.start_in_thread()
        tune_garbage_collector()
        return self

    def _connect_socket_mode(self) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        ack_seconds = self.services.metrics.ack_seconds

        class TimedSocketModeHandler(SocketModeHandler):
            def handle(self, client: object, req: object) -> None:  # type: ignore[override]
                started = time.perf_counter()  # the ack is sent before handle() returns
                try:
                    super().handle(client, req)  # type: ignore[arg-type]
                finally:
                    ack_seconds.observe(time.perf_counter() - started)

        token = self.settings.slack_app_token.reveal() if self.settings.slack_app_token else None
        self._socket_handler = TimedSocketModeHandler(self.app, app_token=token)
        self._socket_handler.connect()
        log.info("connected to Slack in Socket Mode", extra={"event": "startup"})
        if self.settings.metrics_port is not None:
            self.ops_http = HttpServer(None, self.services.health, self.settings.host, self.settings.metrics_port,
                                       health_details=self.settings.health_details,
                                       metrics=self.services.metrics).start_in_thread()
            log.info("serving /metrics and /healthz on %s", self.ops_http.url, extra={"event": "startup"})

    def serve_forever(self) -> None:
        """Block until SIGTERM/SIGINT, then shut down cleanly."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            if self.http is not None:
                log.info("serving HTTP on %s", self.http.url, extra={"event": "startup"})
                self.http.run()
            else:
                self._heartbeat_until_stopped()
        finally:
            self.stop()

    def _heartbeat_until_stopped(self, every_seconds: float = 60.0) -> None:
        while not self._stopped.wait(every_seconds):
            log.info("heartbeat %s", self.services.health(), extra={"event": "heartbeat"})

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name, extra={"event": "shutdown"})
        self._stopped.set()
        if self.http is not None:
            raise SystemExit(0)

    def stop(self) -> None:
        """Stop taking requests, let running listeners finish, then stop the scheduler and close."""
        steps = [self._close_socket_mode, self._close_http, self._close_ops_http,
                 lambda: self.listener_pool.shutdown(wait=True, cancel_futures=False), self.services.stop]
        for step in steps:
            try:
                step()
            except Exception:  # noqa: BLE001 - one failing step must not keep the others from running
                log.warning("shutdown step failed", exc_info=True, extra={"event": "shutdown"})
        self._stopped.set()

    def _close_socket_mode(self) -> None:
        if self._socket_handler is not None:
            self._socket_handler.close()
            self._socket_handler = None

    def _close_ops_http(self) -> None:
        if self.ops_http is not None:
            self.ops_http.stop()
            self.ops_http = None

    def _close_http(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
