"""Event listeners. Every subscribed event type is acknowledged, even when there is nothing to do.

An event Bolt leaves unhandled is answered 404 (HTTP) or left un-acked (Socket Mode); Slack
counts both as failed deliveries, retries them, and may disable the subscription.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.core import tags

from bot import slack_files
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


@dataclass(frozen=True)
class UploadPlan:
    """Which files of one message are read, and a note naming the others and why they were skipped."""

    to_read: tuple[dict[str, Any], ...]
    skipped_note: str | None


def plan_upload(files: list[dict[str, Any]], max_files: int, max_total_bytes: int) -> UploadPlan:
    """At most `max_files` files, together at most `max_total_bytes` (the first is always read: its own
    size check explains itself)."""
    to_read: list[dict[str, Any]] = []
    too_many: list[str] = []
    too_big: list[str] = []
    total = 0
    for file in files:
        size = int(file.get("size") or 0)
        if len(to_read) >= max_files:
            too_many.append(_file_name(file))
        elif to_read and total + size > max_total_bytes:
            too_big.append(_file_name(file))
        else:
            to_read.append(file)
            total += size
    return UploadPlan(tuple(to_read), _skipped_note(too_many, too_big, max_files, max_total_bytes))


def _file_name(file: dict[str, Any]) -> str:
    return tags.quote_for_slack(str(file.get("name") or file.get("title") or file.get("id") or "file"))


def _skipped_note(too_many: list[str], too_big: list[str], max_files: int, max_total_bytes: int) -> str | None:
    lines = []
    if too_many:
        lines.append(f"I read at most {max_files} file{'s' if max_files != 1 else ''} per message, so I skipped "
                     f"{_listed(too_many)}. Upload {'them' if len(too_many) > 1 else 'it'} in another message.")
    if too_big:
        lines.append(f"The files of one message may add up to {max_total_bytes / 1_000_000:.1f} MB, so I skipped "
                     f"{_listed(too_big)}. Upload {'them' if len(too_big) > 1 else 'it'} in another message.")
    return ":warning: " + "\n".join(lines) if lines else None


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def handle_upload(services: Services, event: dict[str, Any], client: WebClient) -> None:
    user, channel = event["user"], event["channel"]
    token = services.settings.slack_bot_token.reveal() if services.settings.slack_bot_token else ""
    settings = services.settings
    plan = plan_upload(list(event.get("files") or []), settings.max_files_per_message, settings.max_file_bytes)
    if plan.skipped_note:
        services.notifier.whisper(channel, user, plan.skipped_note)

    def prepare() -> Any:
        selection = tags.Selection()
        try:
            for file in plan.to_read:
                name, data = slack_files.fetch(file, client, token, settings.max_file_bytes, settings.slack_api_url)
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
