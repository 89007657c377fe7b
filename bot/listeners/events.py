"""Event listeners: every subscribed event type is acknowledged, even when there is nothing to do.

An event Bolt leaves unhandled is answered 404 (HTTP) or left un-acked (Socket Mode); Slack
counts both as failed deliveries, retries them, and may disable the subscription.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.runtime import Services

log = logging.getLogger(__name__)

SUBSCRIBED_EVENTS = ("message", "app_mention", "app_home_opened")


def register(app: App, services: Services) -> None:
    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        log.debug("message event", extra={"actor": event.get("user"), "event": event.get("subtype") or "message"})

    @app.event("app_mention")
    def on_mention(event: dict[str, Any]) -> None:
        # Mentions also arrive as `message` events; they are answered from that path only.
        log.debug("app_mention event", extra={"actor": event.get("user")})

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        log.debug("app_home_opened", extra={"actor": event.get("user")})
