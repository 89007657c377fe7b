"""The card's "See all tags" button and the Previous / Next buttons of the modal it opens.

Anyone who can see the card may read its whole list: the card is already in their channel.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.core import blocks, tag_pages
from bot.listeners.actions import clicked_request
from bot.runtime import Services

log = logging.getLogger(__name__)

UNKNOWN_REQUEST = "That button does not belong to a request I know."


def _modal(services: Services, request_id: int, page: int) -> dict[str, Any] | None:
    request = services.store.get_request(request_id)
    if request is None:
        return None
    rows = services.store.request_tags(request_id)
    lines = blocks.tag_lines(rows)
    done = "restored" if request.is_restore else "deleted"
    not_done = {t.tag_id: t.outcome_detail or "" for t in rows if t.outcome and t.outcome != done}
    return tag_pages.all_tags_modal(request_id, lines, page, services.settings.large_tag_contacts, not_done, done)


def register(app: App, services: Services) -> None:
    @app.action(tag_pages.ACTION_SHOW_TAGS)
    def show_all(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()  # then open the modal at once: a trigger_id expires 3 s after the click
        request_id = clicked_request(body)
        view = _modal(services, request_id, 0) if request_id is not None else None
        if view is None:
            respond(response_type="ephemeral", replace_original=False, text=UNKNOWN_REQUEST)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(tag_pages.ACTION_PREVIOUS_PAGE)
    @app.action(tag_pages.ACTION_NEXT_PAGE)
    def turn_page(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        parsed = tag_pages.parse_page_value(str((body.get("actions") or [{}])[0].get("value") or ""))
        shown = body.get("view") or {}
        view = _modal(services, *parsed) if parsed else None
        if view is None or not shown.get("id"):
            log.info("page button refused", extra={"actor": (body.get("user") or {}).get("id")})
            return
        client.views_update(view_id=shown["id"], hash=shown.get("hash"), view=view)
