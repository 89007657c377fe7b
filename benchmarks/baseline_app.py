"""The ack-latency baseline: a Bolt app that only acknowledges, served exactly like the bot.

Same Bolt settings (no token verification, 16 listener threads, a Web API client pointed at the
emulator, so Bolt's one auth.test on the first request stays on loopback), same waitress server
(the bot's own `HttpServer`, 16 threads), its own process. Run with `python -m benchmarks.baseline_app`;
it reads SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL, HOST and PORT and stops on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.server import HttpServer


def build_baseline_app(signing_secret: str, token: str, api_url: str) -> App:
    app = App(
        client=WebClient(token=token, base_url=api_url, timeout=10),
        signing_secret=signing_secret,
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="bolt-listener"),
        raise_error_for_unhandled_request=False,
    )

    @app.command("/deletetags")
    def on_command(ack: Ack) -> None:
        ack()

    @app.action(re.compile(".*"))
    def on_action(ack: Ack) -> None:
        ack()

    return app


def healthy() -> dict[str, Any]:
    return {"status": "ok"}


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> int:
    app = build_baseline_app(os.environ["SLACK_SIGNING_SECRET"], os.environ["SLACK_BOT_TOKEN"],
                             os.environ["SLACK_API_URL"])
    server = HttpServer(app, healthy, os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"]))
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        server.run()
    finally:
        server.server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
