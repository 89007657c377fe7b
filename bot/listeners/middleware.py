"""Cross-cutting request handling: Slack event de-duplication."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse

from bot.runtime import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    @app.middleware
    def drop_repeated_events(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        # Slack redelivers an event it thinks was not acknowledged in time (X-Slack-Retry-Num);
        # the first delivery may still be running, so the event id is the only safe key.
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not services.store.first_sighting(event_id):
            log.info("dropping repeated Slack event", extra={"event": event_id, "outcome": "duplicate"})
            return BoltResponse(status=200, body="")
        return next()
