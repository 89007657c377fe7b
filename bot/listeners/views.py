"""Modal submissions: the new-request form, and the reasons asked for on confirm and reject."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.core import blocks, rules, tags

from bot import slack_files
from bot.listeners.replies import explain_cc_error
from bot.core.request_numbers import request_number
from bot.runtime import Services

log = logging.getLogger(__name__)


def field_value(view: dict[str, Any], block_id: str, action_id: str) -> Any:
    return ((view.get("state") or {}).get("values") or {}).get(block_id, {}).get(action_id, {})


def text_of(view: dict[str, Any], block_id: str, action_id: str) -> str:
    return str(field_value(view, block_id, action_id).get("value") or "").strip()


def request_id_of(view: dict[str, Any]) -> int | None:
    raw = view.get("private_metadata") or ""
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    value = value.get("request_id") if isinstance(value, dict) else value
    return request_number(str(value))


def selection_from_modal(services: Services, view: dict[str, Any], client: WebClient) -> tags.Selection:
    selection = tags.parse_text(text_of(view, "entries", "text"), max_entries=services.settings.max_entries)
    token = services.settings.slack_bot_token.reveal() if services.settings.slack_bot_token else ""
    for file in field_value(view, "file", "file").get("files") or []:
        name, data = slack_files.fetch(file, client, token, services.settings.max_file_bytes)
        from_file = tags.parse_file(data, filename=name, max_bytes=services.settings.max_file_bytes,
                                    max_entries=services.settings.max_entries)
        selection = tags.combine(selection, from_file, max_entries=services.settings.max_entries)
    return selection


def form_problem(view: dict[str, Any]) -> dict[str, str] | None:
    """What the form must say next to a field before anything is looked up, or None."""
    has_entries = bool(text_of(view, "entries", "text")) or bool(field_value(view, "file", "file").get("files"))
    rule_text = text_of(view, "rule", "rule")
    if not has_entries and not rule_text:
        return {"entries": "Paste tag ids or \"names\", attach a CSV/TXT file, or write a rule below."}
    if has_entries and rule_text:
        return {"rule": "Use either a rule or tags and a file, not both: clear one of them."}
    if rule_text:
        try:
            rules.parse_rule(rule_text)
        except rules.RuleError as error:
            return {"rule": error.message}
    return None


def on_new_request(services: Services, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
    problem = form_problem(view)
    if problem:
        ack(response_action="errors", errors=problem)
        return
    ack()
    user = body["user"]["id"]
    metadata = json.loads(view.get("private_metadata") or "{}")
    channel = metadata.get("channel")
    where = {"user_id": user, "team_id": metadata.get("team"), "channel_id": channel, "source": "modal",
             "reason": text_of(view, "reason", "reason")}

    def prepare() -> Any:
        if text_of(view, "rule", "rule"):
            return services.intake.prepare_rule(rule_text=text_of(view, "rule", "rule"), **where)
        try:
            selection = selection_from_modal(services, view, client)
        except slack_files.FileProblem as problem:
            return str(problem)
        return services.intake.prepare(selection=selection, **where)

    deliver_preview(services, channel, user, explain_cc_error(prepare))


def deliver_preview(services: Services, channel: str | None, user: str, prepared: Any) -> None:
    if isinstance(prepared, str):
        services.notifier.whisper(channel, user, prepared)
    elif prepared.preview is None:
        services.notifier.whisper(channel, user, prepared.message or "Nothing to delete.")
    else:
        services.notifier.whisper(channel, user, blocks.preview_text(prepared.preview),
                                  blocks.preview_blocks(prepared.preview))


def on_confirm_reason(services: Services, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
    ack()
    request_id = request_id_of(view)
    if request_id is None:
        return
    outcome = services.decisions.confirm(request_id, body["user"]["id"], text_of(view, "reason", "reason"))
    response_url = json.loads(view.get("private_metadata") or "{}").get("response_url")
    if response_url:
        WebhookClient(response_url).send(text=outcome.message, response_type="ephemeral", replace_original=outcome.ok)
    else:
        services.notifier.tell(body["user"]["id"], outcome.message)


def on_reject_reason(services: Services, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
    reason = text_of(view, "reason", "reason")
    if len(reason) < 3:
        ack(response_action="errors", errors={"reason": "Say in a few words why, so the requester can act on it."})
        return
    ack()
    request_id = request_id_of(view)
    if request_id is None:
        return
    outcome = services.decisions.reject(request_id, body["user"]["id"], reason)
    request = services.store.get_request(request_id)
    services.notifier.whisper(request.approval_channel if request else None, body["user"]["id"], outcome.message)


HANDLERS = {
    blocks.VIEW_NEW_REQUEST: on_new_request,
    blocks.VIEW_CONFIRM_REASON: on_confirm_reason,
    blocks.VIEW_REJECT_REASON: on_reject_reason,
}


def listener_for(services: Services, handler: Callable[..., None]) -> Callable[..., None]:
    # Bolt passes arguments by parameter name, so the handler is bound here, not as a default.
    def listener(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        log.info("view submitted", extra={"actor": body["user"]["id"], "event": view.get("callback_id")})
        handler(services, ack, body, view, client)

    return listener


def register(app: App, services: Services) -> None:
    for callback_id, handler in HANDLERS.items():
        app.view(callback_id)(listener_for(services, handler))
