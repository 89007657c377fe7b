"""`/deletetags`: parse the text, acknowledge at once, then do the slow part."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.core import blocks, rules, tags
from bot.intake import Prepared
from bot.listeners.errors import after_ack
from bot.listeners.replies import explain_cc_error
from bot.listeners.restore import on_restore
from bot.core.mrkdwn import outside_text
from bot.core.request_numbers import not_a_request_number, typed_request_number
from bot.runtime import Services

log = logging.getLogger(__name__)

Handler = Callable[[Services, Ack, dict[str, Any], tags.Command, Respond, WebClient], None]

# A longer text (a pasted list: 500 ids are about 18,500 characters) is parsed after the ack:
# Slack's 3 s clock is running, and parsing it would delay the acks of everyone else's requests.
PARSE_AFTER_ACK_CHARS = 2_000


def usage_reply(services: Services, note: str | None = None) -> dict[str, Any]:
    usage = tags.usage(services.settings.max_entries, services.settings.max_file_bytes,
                       services.settings.max_files_per_message)
    return {"response_type": "ephemeral", "text": f"{note}\n\n{usage}" if note else usage}


def on_help(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
            respond: Respond, client: WebClient) -> None:
    ack(**usage_reply(services))


def on_modal(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
             respond: Respond, client: WebClient) -> None:
    ack()
    metadata = json.dumps({"channel": command.get("channel_id"), "team": command.get("team_id")})
    client.views_open(trigger_id=command["trigger_id"], view=blocks.new_request_modal(metadata))


def on_request(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
               respond: Respond, client: WebClient) -> None:
    selection = parsed.selection or tags.Selection()
    problem = selection.problem()
    if problem:
        ack(response_type="ephemeral", text=problem)
        return
    # A listing begun after this moment shows the account as it was when the person asked; previews
    # queued behind a burst of commands then share one listing instead of waiting for one each.
    asked_at = time.monotonic()
    ack(response_type="ephemeral", text=f":mag: Checking {blocks.count(selection.entry_count, 'entry')} against Constant Contact…")
    after_ack(services, command, client,
              lambda: preview(services, command, selection, parsed.reason, respond, asked_at))


def preview(services: Services, command: dict[str, Any], selection: tags.Selection, reason: str | None,
            respond: Respond, asked_at: float | None = None) -> None:
    show_preview(respond, explain_cc_error(lambda: services.intake.prepare(
        user_id=command["user_id"], team_id=command.get("team_id"), channel_id=command.get("channel_id"),
        source="command", selection=selection, reason=reason, asked_at=asked_at,
    )))


def on_rule(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
            respond: Respond, client: WebClient) -> None:
    try:
        rule = rules.parse_rule(parsed.argument or "")
    except rules.RuleError as error:
        ack(response_type="ephemeral", text=error.message)
        return
    asked_at = time.monotonic()
    ack(response_type="ephemeral", text=f":mag: Finding the tags that match `{outside_text(rule.text, 400)}`…")
    after_ack(services, command, client, lambda: show_preview(respond, explain_cc_error(
        lambda: services.intake.prepare_rule(
            user_id=command["user_id"], team_id=command.get("team_id"), channel_id=command.get("channel_id"),
            source="rule", rule_text=parsed.argument or "", reason=parsed.reason, asked_at=asked_at))))


def show_preview(respond: Respond, prepared: Prepared | str) -> None:
    if isinstance(prepared, str):
        respond(response_type="ephemeral", text=prepared)
    elif prepared.preview is None:
        respond(response_type="ephemeral", text=prepared.message or "Nothing to delete.")
    else:
        respond(response_type="ephemeral", text=blocks.preview_text(prepared.preview),
                blocks=blocks.preview_blocks(prepared.preview))


def on_cancel(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
              respond: Respond, client: WebClient) -> None:
    request_id = typed_request_number(parsed.argument)
    if request_id is None:
        text = ("Which request? For example `/deletetags cancel 12` (see `/deletetags list`)." if not parsed.argument
                else not_a_request_number(parsed.argument, "cancel"))
        ack(response_type="ephemeral", text=text)
        return
    ack()
    outcome = services.decisions.cancel(request_id, command["user_id"])
    respond(response_type="ephemeral", text=outcome.message)


def on_status(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
              respond: Respond, client: WebClient) -> None:
    request_id = typed_request_number(parsed.argument)
    if parsed.argument and request_id is None:
        ack(response_type="ephemeral", text=not_a_request_number(parsed.argument, "status"))
        return
    ack()
    if request_id is not None:
        request = services.store.get_request(request_id)
    else:
        mine = services.store.requests(requester_id=command["user_id"], limit=1)
        request = mine[0] if mine else None
    if request is None:
        text = (f"There is no request #{request_id}." if request_id is not None
                else "You have no deletion requests yet. `/deletetags list` shows everyone's.")
    else:
        text = services.reports.status_of(request, with_link=True)
    respond(response_type="ephemeral", text=text)


def on_list(services: Services, ack: Ack, command: dict[str, Any], parsed: tags.Command,
            respond: Respond, client: WebClient) -> None:
    ack()
    respond(response_type="ephemeral", text=services.reports.list_text(command["user_id"]))


HANDLERS: dict[str, Handler] = {
    "help": on_help,
    "modal": on_modal,
    "request": on_request,
    "rule": on_rule,
    "cancel": on_cancel,
    "status": on_status,
    "list": on_list,
    "restore": on_restore,
}


def register(app: App, services: Services) -> None:
    @app.command("/deletetags")
    def deletetags(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        if len(command.get("text") or "") > PARSE_AFTER_ACK_CHARS:
            ack(response_type="ephemeral", text=":mag: Checking your list against Constant Contact…")
            after_ack(services, command, client, lambda: handle(services, command, respond, client, ack=None))
            return
        handle(services, command, respond, client, ack=ack)


def handle(services: Services, command: dict[str, Any], respond: Respond, client: WebClient,
           ack: Ack | None) -> None:
    """Parse the command and answer it; `ack` is None when Slack was already acknowledged, and
    what the handlers would put in the ack goes through response_url instead."""
    reply: Callable[..., Any] = ack if ack is not None else (lambda **answer: respond(**answer) if answer else None)
    try:
        parsed = tags.parse_command(command.get("text") or "", max_entries=services.settings.max_entries)
    except tags.InputError as error:  # more entries than MAX_ENTRIES
        reply(response_type="ephemeral", text=error.message)
        return
    log.info("command", extra={"actor": command.get("user_id"), "event": f"/deletetags {parsed.kind}"})
    handler = HANDLERS.get(parsed.kind)
    if handler is None:
        note = f"I don't know `{parsed.argument}`." if parsed.kind == "unknown" and parsed.argument else None
        reply(**usage_reply(services, note))
    elif parsed.kind == "request" and ack is None:
        selection = parsed.selection or tags.Selection()
        problem = selection.problem()
        if problem:
            respond(response_type="ephemeral", text=problem)
        else:
            preview(services, command, selection, parsed.reason, respond)
    else:
        handler(services, reply, command, parsed, respond, client)
