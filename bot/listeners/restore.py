"""`/deletetags restore N`: the snapshot of a finished deletion, previewed as a restore request."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.core import tags
from bot.listeners.errors import after_ack
from bot.listeners.replies import explain_cc_error
from bot.restores import views
from bot.restores.command import RestoreCommand, parse_restore
from bot.runtime import Services


def on_restore(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
               respond: Respond, client: WebClient) -> None:
    asked = parse_restore(parsed.argument)
    if isinstance(asked, str):
        ack(response_type="ephemeral", text=asked)
        return
    refusal = services.restore_intake.refusal(asked.request_id)  # the database only: answered in the ack
    if refusal:
        ack(response_type="ephemeral", text=refusal)
        return
    asked_at = time.monotonic()
    ack(response_type="ephemeral",
        text=f":mag: Reading the snapshot of request #{asked.request_id} and checking its tags in Constant Contact…")
    after_ack(services, command, client, lambda: show(services, command, asked, respond, asked_at))


def show(services: Services, command: dict[str, Any], asked: RestoreCommand, respond: Respond,
         asked_at: float) -> None:
    prepared = explain_cc_error(lambda: services.restore_intake.prepare(
        user_id=command["user_id"], team_id=command.get("team_id"), channel_id=command.get("channel_id"),
        restores_request=asked.request_id, ids=asked.ids, names=asked.names, reason=asked.reason, asked_at=asked_at))
    if isinstance(prepared, str):
        respond(response_type="ephemeral", text=prepared)
    else:
        respond(response_type="ephemeral", text=views.preview_text(prepared), blocks=views.preview_blocks(prepared))
