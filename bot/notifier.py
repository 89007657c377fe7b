"""Posts and edits a request's card and thread: the background side of Slack.

Every milestone message is claimed in the database before it is queued, so a retry, a second
thread or a restart never posts it twice. Thread posts, DMs and card edits go through the
`SlackOutbox`, which sends them at Slack's pace; the card itself (whose ts the request needs) and
ephemeral answers are sent at once, with a client that sleeps on Retry-After, which is why
listeners only call this after they have acknowledged Slack.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core import blocks, quota
from bot.approvers import ApproverDirectory
from bot.restores import plan as restore_plan
from bot.restores import views as restore_views
from bot.core.lifecycle import batch_count
from bot.slack_files import NO_REDIRECTS, file_origins, origin_of
from bot.slack_outbox import SlackOutbox, slack_error
from bot.core.snapshot_report import SnapshotPlan
from bot.store import Request, Store

log = logging.getLogger(__name__)

FIX_CHANNEL = {
    "not_in_channel": "I am not a member of <#{channel}>. Invite me there with `/invite @deletetags` and try again.",
    "channel_not_found": "I cannot see the channel `{channel}`. Invite me to it, or ask an admin to set APPROVAL_CHANNEL to a channel I am in.",
    "is_archived": "<#{channel}> is archived. Ask an admin to set APPROVAL_CHANNEL to an active channel.",
}


NOTICE_EVENT = "deletetags_notice"
SUMMARY_KEY = "summary"  # the milestone people wait for: sent ahead of routine posts


def file_key(filename: str) -> str:
    """The notice key of a file uploaded to a thread, by its name."""
    return f"file:{filename}"


class CardNotPosted(Exception):
    """The approval card could not be posted; `advice` tells the requester how to fix it."""

    def __init__(self, advice: str) -> None:
        super().__init__(advice)
        self.advice = advice


class UploadRefused(Exception):
    """A file's bytes were not handed over: the upload URL was not Slack's, or it refused them."""


class Notifier:
    def __init__(self, store: Store, client: WebClient, approvers: ApproverDirectory,
                 progress: Callable[[int], blocks.Progress | None] | None = None,
                 outbox: SlackOutbox | None = None, outbox_client: WebClient | None = None,
                 large_tag_contacts: int = 0) -> None:
        self.store = store
        self.client = client
        self.approvers = approvers
        self.progress = progress or (lambda request_id: None)
        self.outbox = outbox or SlackOutbox()
        # The outbox answers a 429 itself (it holds the channel): its client must not sleep on it.
        self.queued_client = outbox_client or client
        self.large_tag_contacts = large_tag_contacts
        self.snapshot_plan: Callable[[int], SnapshotPlan] | None = None  # set by the runtime

    # --- the card --------------------------------------------------------------------------

    def card_view(self, request: Request, outcome: str | None = None) -> blocks.CardView:
        tags = blocks.tag_lines(self.store.request_tags(request.id))
        view = self._card_view(request, tags, outcome)
        if not request.is_restore or request.restores_request is None:
            return view
        activities = restore_plan.activity_count(t.contacts_count or 0 for t in tags)
        return replace(view, batch_count=activities, snapshot_line=None, running_label="Restoring",
                       intro=restore_views.card_intro(request.id, request.restores_request, request.requester_id,
                                                      len(tags), request.total_contacts, activities),
                       title=restore_views.card_title(request.id, request.restores_request, request.requester_id))

    def _card_view(self, request: Request, tags: list[blocks.TagLine], outcome: str | None) -> blocks.CardView:
        return blocks.CardView(
            request_id=request.id,
            state=request.state,
            requester_id=request.requester_id,
            reason=request.reason,
            tags=tags,
            total_contacts=request.total_contacts,
            batch_count=batch_count(len(tags)),
            required_approvals=request.required_approvals,
            approvals=self.store.approvals(request.id),
            approver_mention=self.approvers.mention_text(),
            decided_by=request.decided_by,
            rejection_reason=request.rejection_reason,
            expires_at=request.expires_at,
            progress=self.progress(request.id) if request.state in ("running", "completed", "completed_with_errors", "failed") else None,
            outcome=outcome,
            large_threshold=self.large_tag_contacts,
            changes_since_approval=request.changes_since_approval,
            started=bool(request.changes_since_approval) and any(b.state != "pending" for b in self.store.batches(request.id)),
            rule=request.rule,
            account_tag_count=request.account_tag_count,
            snapshot_line=self.snapshot_plan(request.total_contacts).line() if self.snapshot_plan else None,
            **_quota_lines(request),
        )

    def post_card(self, request: Request, channel: str) -> str:
        """Post the approval card; raises CardNotPosted with advice for the requester."""
        view = self.card_view(request)
        try:
            response = self.client.chat_postMessage(
                channel=channel, text=blocks.card_text(view), blocks=blocks.card_blocks(view)
            )
        except SlackApiError as error:
            code = slack_error(error)
            advice = FIX_CHANNEL.get(code, "Slack refused the message ({code}). Ask the bot's operators to run `deletetags-bot check`.")
            raise CardNotPosted(advice.format(channel=channel, code=code)) from error
        return str(response["ts"])

    def refresh_card(self, request_id: int, *, final: bool = False) -> None:
        """Have the card edited to show the request as it is when the edit goes out."""
        self.outbox.edit(("card", request_id), lambda: self._edit_card(request_id), f"card edit of #{request_id}",
                         urgent=final)

    def _edit_card(self, request_id: int) -> None:
        request = self.store.get_request(request_id)
        if request is None or not request.card_ts or not request.approval_channel:
            return
        lines = restore_views.OUTCOME_LINES if request.is_restore else blocks.OUTCOME_LINES
        view = self.card_view(request, lines.get(request.state) if request.is_terminal else None)
        self.queued_client.chat_update(
            channel=request.approval_channel, ts=request.card_ts,
            text=blocks.card_text(view), blocks=blocks.card_blocks(view),
        )

    # --- thread replies, once each ---------------------------------------------------------

    def post_once(self, request_id: int, key: str, text: str, *, blocks_: Sequence[dict[str, Any]] | None = None,
                  broadcast: bool = False) -> bool:
        """Queue a milestone for the card's thread, exactly once; False if it was already claimed."""
        request = self.store.get_request(request_id)
        if request is None or not request.card_ts or not self.store.claim_notice(request_id, key):
            return False
        channel, thread_ts = request.approval_channel, request.card_ts

        def send() -> None:
            response = self.queued_client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=text,
                blocks=list(blocks_) if blocks_ else None, reply_broadcast=broadcast,
                metadata={"event_type": NOTICE_EVENT, "event_payload": {"request_id": request_id, "key": key}},
            )
            self.store.notice_posted(request_id, key, str(response.get("ts")))

        def give_up() -> None:
            # Slack kept refusing it, so nothing was posted: leave it to be claimed again later.
            self.store.release_notice(request_id, key)

        self.outbox.post(channel, send, f"thread post {key!r} of #{request_id}", thread_ts=thread_ts,
                         urgent=key == SUMMARY_KEY, on_give_up=give_up)
        return True

    def upload_file_once(self, request_id: int, filename: str, content: bytes, comment: str) -> bool:
        """Upload a file to the card's thread once per file name: after a crash the thread shows
        whether a claimed upload landed (files carry no message metadata, but they carry their name)."""
        return self.upload_to_thread(request_id, file_key(filename), filename, content, comment)

    def upload_to_thread(self, request_id: int, key: str, filename: str, content: bytes, comment: str) -> bool:
        """Queue a file for the card's thread, exactly once per (request, key); False if already claimed.

        The three steps of Slack's upload (files.getUploadURLExternal, a POST of the bytes to the
        URL it returns, files.completeUploadExternal) are made here rather than by slack_sdk's
        files_upload_v2, so the upload URL is checked before the bytes go anywhere: only Slack's
        file host (or, in tests and the sandbox, the emulator's own origin) gets them, with no
        token (the URL is pre-signed) and no redirect followed. A refusal is retried by the outbox
        like any other; when it gives up the claim is released, so a later call may upload again.
        """
        request = self.store.get_request(request_id)
        if request is None or not request.card_ts or not self.store.claim_notice(request_id, key):
            return False
        channel, thread_ts = request.approval_channel, request.card_ts
        client = self.queued_client

        def send() -> None:
            ticket = client.files_getUploadURLExternal(filename=filename, length=len(content))
            url, file_id = str(ticket.get("upload_url") or ""), str(ticket.get("file_id") or "")
            origin = origin_of(url)
            if origin not in file_origins(client.base_url):
                log.warning("upload URL refused: not on Slack's file host", extra={
                    "outcome": "refused", "request_id": str(request_id),
                    "event": f"file {file_id} to {origin[1] if origin else '?'}"})
                raise UploadRefused(f"upload URL not on Slack's file host ({origin[1] if origin else '?'})")
            post = urllib.request.Request(url, data=content, method="POST",
                                          headers={"Content-Type": "application/octet-stream"})
            try:
                with NO_REDIRECTS.open(post, timeout=client.timeout) as answer:  # noqa: S310 - origin checked above
                    answer.read()
            except urllib.error.HTTPError as error:
                error.close()
                raise UploadRefused(f"Slack's file host answered HTTP {error.code}") from None
            client.files_completeUploadExternal(files=[{"id": file_id, "title": filename}], channel_id=channel,
                                                thread_ts=thread_ts, initial_comment=comment)
            self.store.notice_posted(request_id, key, file_id)

        def give_up() -> None:
            self.store.release_notice(request_id, key)

        self.outbox.post(channel, send, f"file upload {key!r} of #{request_id}", thread_ts=thread_ts,
                         on_give_up=give_up)
        return True

    def settle_claimed(self, request_id: int) -> None:
        """After a crash: a milestone claimed but not marked posted may or may not be in Slack.
        The thread says which (each post carries its key as message metadata)."""
        claimed = [key for key, state in self.store.notices(request_id).items() if state == "claimed" and key != "card"]
        request = self.store.get_request(request_id)
        if not claimed or request is None or not request.card_ts:
            return
        try:
            replies = self.client.conversations_replies(channel=request.approval_channel, ts=request.card_ts,
                                                       include_all_metadata=True, limit=200)
        except SlackApiError as error:
            log.warning("could not read the thread: %s", slack_error(error), extra={"request_id": str(request_id)})
            return
        messages = replies.get("messages") or []
        posted = {self._notice_key(m): m.get("ts") for m in messages}
        # A file upload carries no metadata: its key names the file (see upload_to_thread).
        posted |= {file_key(str(f.get("name"))): m.get("ts") for m in messages for f in m.get("files") or []}
        for key in claimed:
            if key in posted:
                self.store.notice_posted(request_id, key, posted[key])
            else:
                self.store.release_notice(request_id, key)

    @staticmethod
    def _notice_key(message: dict[str, Any]) -> str | None:
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") != NOTICE_EVENT:
            return None
        return str((metadata.get("event_payload") or {}).get("key"))

    def reply_in_thread(self, channel: str, thread_ts: str, text: str) -> None:
        # Somebody asked and is waiting: ahead of routine posts.
        self.outbox.post(channel, lambda: self.queued_client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=text), "thread reply", thread_ts=thread_ts, urgent=True)

    # --- people ----------------------------------------------------------------------------

    def tell(self, user_id: str, text: str) -> None:
        """A direct message (posting to a user id opens the DM)."""
        self.outbox.post(user_id, lambda: self.queued_client.chat_postMessage(channel=user_id, text=text),
                         f"direct message to {user_id}")

    def whisper(self, channel: str | None, user_id: str, text: str, blocks_: list[dict[str, Any]] | None = None) -> None:
        """An ephemeral message; falls back to a DM where the bot cannot post in the channel."""
        if channel:
            try:
                self.client.chat_postEphemeral(channel=channel, user=user_id, text=text, blocks=blocks_)
                return
            except SlackApiError as error:
                log.info("ephemeral failed (%s); sending a DM instead", slack_error(error), extra={"actor": user_id})
        self.client.chat_postMessage(channel=user_id, text=text, blocks=blocks_)

    def permalink(self, channel: str, ts: str) -> str | None:
        try:
            return str(self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except SlackApiError:
            return None


def _quota_lines(request: Request) -> dict[str, str | None]:
    estimate = quota.Estimate.from_record(request.quota_estimate)
    return {
        "quota_line": quota.estimate_line(estimate) if estimate else None,
        "hold_line": quota.hold_line(request.quota_held_until, request.is_restore) if request.quota_held_until else None,
    }
