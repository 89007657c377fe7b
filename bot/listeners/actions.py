"""Buttons on the preview and on the request card. Every click is re-checked on the server."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.core import blocks
from bot.core.lifecycle import Action
from bot.listeners.errors import after_ack
from bot.core.request_numbers import request_number
from bot.runtime import Services

log = logging.getLogger(__name__)


def clicked_request(body: dict[str, Any]) -> int | None:
    return request_number(str((body.get("actions") or [{}])[0].get("value") or ""))


def tell_clicker(respond: Respond, text: str) -> None:
    respond(response_type="ephemeral", replace_original=False, text=text)


def answer(services: Services, body: dict[str, Any], respond: Respond, text: str) -> None:
    """Clicks on App Home have no response_url: answer those by DM and refresh the Home tab."""
    if body.get("response_url"):
        tell_clicker(respond, text)
        return
    services.notifier.tell(body["user"]["id"], text)
    services.reports.publish_home(body["user"]["id"])


def forged(services: Services, body: dict[str, Any], respond: Respond) -> None:
    user = body["user"]["id"]
    services.store.add_event(None, user, "refused.invalid_button", {"value": str((body.get("actions") or [{}])[0].get("value"))[:100]})
    answer(services, body, respond, "That button does not belong to a request I know.")


def on_confirm(services: Services, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
    request_id, user = clicked_request(body), body["user"]["id"]
    if request_id is None:
        return forged(services, body, respond)
    outcome = services.decisions.confirm(request_id, user)
    if outcome.code == "needs_reason":
        metadata = json.dumps({"request_id": request_id, "response_url": body.get("response_url")})
        view = blocks.reason_modal(blocks.VIEW_CONFIRM_REASON, request_id, "Why delete these?", "Send", "Reason (shown to approvers)")
        view["private_metadata"] = metadata
        client.views_open(trigger_id=body["trigger_id"], view=view)
        return
    respond(response_type="ephemeral", replace_original=outcome.ok, text=outcome.message)


def on_cancel(services: Services, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
    request_id, user = clicked_request(body), body["user"]["id"]
    if request_id is None:
        return forged(services, body, respond)
    outcome = services.decisions.cancel(request_id, user)
    on_preview = bool((body.get("container") or {}).get("is_ephemeral"))
    respond(response_type="ephemeral", replace_original=outcome.ok and on_preview, text=outcome.message)


def on_approve(services: Services, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
    request_id, user = clicked_request(body), body["user"]["id"]
    if request_id is None:
        return forged(services, body, respond)
    answer(services, body, respond, services.decisions.approve(request_id, user).message)


def on_reject(services: Services, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
    request_id, user = clicked_request(body), body["user"]["id"]
    if request_id is None:
        return forged(services, body, respond)
    _, check = services.decisions.may_decide(request_id, user, Action.REJECT)
    if not check.ok:
        return answer(services, body, respond, check.message)
    view = blocks.reason_modal(blocks.VIEW_REJECT_REASON, request_id, "Reject request", "Reject",
                               "Why is it rejected? (the requester sees this)")
    client.views_open(trigger_id=body["trigger_id"], view=view)


HANDLERS = {
    blocks.ACTION_CONFIRM: on_confirm,
    blocks.ACTION_CANCEL: on_cancel,
    blocks.ACTION_APPROVE: on_approve,
    blocks.ACTION_REJECT: on_reject,
}


def may_open_modal(services: Services, action_id: str, request_id: int | None) -> bool:
    """Reject always asks for a reason in a modal; Request approval does when the request has none."""
    if action_id == blocks.ACTION_REJECT:
        return True
    if action_id != blocks.ACTION_CONFIRM or request_id is None:
        return False
    request = services.store.get_request(request_id)
    return request is not None and not request.reason


def listener_for(services: Services, handler: Callable[..., None]) -> Callable[..., None]:
    # Bolt passes arguments by parameter name, so the handler is bound here, not as a default.
    def listener(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        action = body["actions"][0]
        log.info("click", extra={"actor": body["user"]["id"], "event": action["action_id"],
                                 "request_id": str(action.get("value"))[:20]})
        if may_open_modal(services, action["action_id"], clicked_request(body)):
            handler(services, body, respond, client)  # a trigger_id expires 3 s after the click: no queueing
        else:
            after_ack(services, body, client, lambda: handler(services, body, respond, client))

    return listener


def register(app: App, services: Services) -> None:
    for action_id, handler in HANDLERS.items():
        app.action(action_id)(listener_for(services, handler))
