"""`/deletetags`: parse the text and send each kind of command to its handler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import tags
from bot.runtime import Services

log = logging.getLogger(__name__)


def usage_reply(note: str | None = None) -> dict[str, Any]:
    text = f"{note}\n\n{tags.USAGE}" if note else tags.USAGE
    return {"response_type": "ephemeral", "text": text}


def register(app: App, services: Services) -> None:
    @app.command("/deletetags")
    def deletetags(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        parsed = tags.parse_command(command.get("text") or "")
        log.info("command", extra={"actor": command.get("user_id"), "event": f"/deletetags {parsed.kind}"})
        handler = HANDLERS.get(parsed.kind)
        if handler is None:
            note = f"I don't know `{parsed.argument}`." if parsed.kind == "unknown" and parsed.argument else None
            ack(**usage_reply(note))
            return
        handler(services, ack, command, parsed, respond, client)


Handler = Callable[..., None]
# Filled in by the request, status and list features as they land; unknown kinds get usage.
HANDLERS: dict[str, Handler] = {
    "help": lambda services, ack, command, parsed, respond, client: ack(**usage_reply()),
}
