"""The last line of defence: any failure becomes a short apology to the person and a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.runtime import Services

log = logging.getLogger(__name__)

APOLOGY = (
    ":warning: Sorry, something went wrong on my side and I could not finish that. "
    "Nothing was deleted. Please try again in a minute; if it keeps happening, tell the bot's operators."
)


def _person_and_place(body: dict[str, Any]) -> tuple[str | None, str | None]:
    user = body.get("user_id") or (body.get("user") or {}).get("id") or (body.get("event") or {}).get("user")
    channel = (
        body.get("channel_id")
        or (body.get("channel") or {}).get("id")
        or (body.get("event") or {}).get("channel")
    )
    return user, channel


def apologise(body: dict[str, Any], client: WebClient) -> None:
    response_url = body.get("response_url")
    try:
        if response_url:
            WebhookClient(response_url).send(text=APOLOGY, response_type="ephemeral", replace_original=False)
            return
        user, channel = _person_and_place(body)
        if user and channel:
            client.chat_postEphemeral(channel=channel, user=user, text=APOLOGY)
    except Exception:  # noqa: BLE001 - nothing more can be done for this person
        log.warning("could not deliver the apology", exc_info=True)


def after_ack(services: Services, body: dict[str, Any], client: WebClient, work: Callable[[], None]) -> None:
    """Run work that follows an ack on the services' pool, once the acks in flight are answered,
    with the same apology on failure."""
    queued_at = services.ack_gate.clock()

    def run() -> None:
        services.ack_gate.wait_for_quiet(queued_at)
        try:
            work()
        except Exception as error:  # noqa: BLE001 - Bolt's error handler no longer sees this work
            user, _ = _person_and_place(body)
            log.error("work after ack failed: %s: %s", type(error).__name__, error, exc_info=error,
                      extra={"actor": user, "outcome": "error"})
            apologise(body, client)

    services.after_ack.submit(run)


def register(app: App, services: Services) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any], client: WebClient) -> BoltResponse | None:
        user, _ = _person_and_place(body)
        log.error(
            "listener failed: %s: %s", type(error).__name__, error,
            exc_info=error, extra={"actor": user, "outcome": "error"},
        )
        apologise(body, client)
        return None
