"""App Home's Tag health button: a preview of the clean-up it offers, sent to the person by DM."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core import tag_health
from bot.listeners.errors import after_ack
from bot.listeners.replies import explain_cc_error
from bot.listeners.views import deliver_preview
from bot.runtime import Services

log = logging.getLogger(__name__)

OFFERED_RULES = frozenset({"empty"})  # the rules App Home offers buttons for


def register(app: App, services: Services) -> None:
    @app.action(tag_health.ACTION_PREVIEW_RULE)
    def preview_rule(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        rule_text = str((body.get("actions") or [{}])[0].get("value") or "")
        if rule_text not in OFFERED_RULES:
            services.store.add_event(None, user, "refused.invalid_button", {"value": rule_text[:100]})
            services.notifier.tell(user, "That button does not offer a rule I know.")
            return
        after_ack(services, body, client, lambda: deliver_preview(services, None, user, explain_cc_error(
            lambda: services.intake.prepare_rule(user_id=user, team_id=(body.get("team") or {}).get("id"),
                                                 channel_id=None, source="home", rule_text=rule_text,
                                                 reason=None))))
