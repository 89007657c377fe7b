"""Event listeners. Every subscribed event type is acknowledged, even when there is nothing to do.

An event Bolt leaves unhandled is answered 404 (HTTP) or left un-acked (Socket Mode); Slack
counts both as failed deliveries, retries them, and may disable the subscription.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot import slack_files, tags
from bot.listeners.replies import explain_cc_error
from bot.listeners.views import deliver_preview
from bot.runtime import Services

log = logging.getLogger(__name__)

SUBSCRIBED_EVENTS = ("message", "app_mention", "app_home_opened")
IGNORED_SUBTYPES = {"message_changed", "message_deleted", "bot_message", "channel_join", "channel_leave"}


def mentions(text: str, bot_user_id: str | None) -> bool:
    return bool(bot_user_id) and f"<@{bot_user_id}" in (text or "")


def without_mentions(text: str) -> str:
    return re.sub(r"<@[A-Z0-9]+(\|[^>]*)?>", "", text or "").strip()


def reason_from(text: str) -> str | None:
    """The words shared with a file are its reason; a `reason:` prefix is optional."""
    words = without_mentions(text)
    match = re.search(r"(?i)(?:^|\s)(?:reason:|--)\s*(.*)$", words, re.S)
    return (match.group(1) if match else words).strip() or None


def handle_upload(services: Services, event: dict[str, Any], client: WebClient) -> None:
    user, channel = event["user"], event["channel"]
    token = services.settings.slack_bot_token.reveal() if services.settings.slack_bot_token else ""
    settings = services.settings

    def prepare() -> Any:
        selection = tags.Selection()
        try:
            for file in event.get("files") or []:
                name, data = slack_files.fetch(file, client, token, settings.max_file_bytes)
                parsed = tags.parse_file(data, filename=name, max_bytes=settings.max_file_bytes,
                                         max_entries=settings.max_entries)
                selection = tags.combine(selection, parsed, max_entries=settings.max_entries)
        except slack_files.FileProblem as problem:
            return str(problem)
        reason = reason_from(event.get("text") or "")
        return services.intake.prepare(user_id=user, team_id=event.get("team"), channel_id=channel,
                                       source="file", selection=selection, reason=reason)

    deliver_preview(services, channel, user, explain_cc_error(prepare))


def register(app: App, services: Services) -> None:
    @app.event("message")
    def on_message(event: dict[str, Any], context: BoltContext, client: WebClient) -> None:
        subtype = event.get("subtype")
        if event.get("bot_id") or subtype in IGNORED_SUBTYPES or not event.get("user"):
            return
        if subtype == "file_share":
            if event.get("channel_type") == "im" or mentions(event.get("text", ""), context.bot_user_id):
                log.info("file shared", extra={"actor": event["user"], "event": "file_share"})
                handle_upload(services, event, client)
            return
        thread_ts = event.get("thread_ts")
        if thread_ts and thread_ts != event.get("ts"):
            services.reports.answer_thread(event, context.bot_user_id)

    @app.event("app_mention")
    def on_mention(event: dict[str, Any]) -> None:
        # Mentions also arrive as `message` events; they are answered from that path only.
        log.debug("app_mention event", extra={"actor": event.get("user")})

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab") == "home":
            services.reports.publish_home(event["user"])
