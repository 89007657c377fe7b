"""Cross-cutting request handling: payload shape checks and Slack event de-duplication."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse

from bot.runtime import Services

log = logging.getLogger(__name__)


def _has_id(value: Any, key: str) -> bool:
    return isinstance(value, dict) and isinstance(value.get(key), str)


def malformed(body: dict[str, Any]) -> bool:
    """An interaction without the fields Bolt's own matchers read (they raise on a wrong shape)."""
    kind = body.get("type")
    if "view" in body and not isinstance(body["view"], dict):
        return True
    if kind not in ("block_actions", "view_submission", "view_closed"):
        return False
    if not _has_id(body.get("user"), "id"):
        return True
    if kind == "block_actions":
        actions = body.get("actions")
        return not (isinstance(actions, list) and actions and all(_has_id(a, "action_id") for a in actions))
    return not _has_id(body.get("view"), "callback_id")


def register(app: App, services: Services) -> None:
    @app.middleware
    def refuse_malformed_payloads(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        # Only Slack can sign a request, and Slack never sends these; answer 400 instead of failing later.
        if malformed(body):
            log.warning("malformed Slack payload refused", extra={"outcome": "bad_request"})
            return BoltResponse(status=400, body="")
        return next()

    @app.middleware
    def drop_repeated_events(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        # Slack redelivers an event it thinks was not acknowledged in time (X-Slack-Retry-Num);
        # the first delivery may still be running, so the event id is the only safe key.
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not services.store.first_sighting(event_id):
            log.info("dropping repeated Slack event", extra={"event": event_id, "outcome": "duplicate"})
            return BoltResponse(status=200, body="")
        return next()
