"""Status answers, the request list and App Home: read-only views of the store for people."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.core import blocks, tag_health
from bot.approvers import ApproverDirectory
from bot.core.blocks import Progress
from bot.core.lifecycle import TERMINAL_BATCH_STATES, RequestState, batch_count
from bot.notifier import Notifier
from bot.core.polling import eta_seconds
from bot.core.status import StatusFacts, is_status_question, status_text
from bot.store import Batch, Request, Store

log = logging.getLogger(__name__)


def _labelled_reason(request: Request) -> str | None:
    """App Home shows a restore's reason after what it restores."""
    if not request.is_restore:
        return request.reason
    return f"Restore of #{request.restores_request}. {request.reason or ''}".strip()


class Reports:
    def __init__(self, store: Store, notifier: Notifier, approvers: ApproverDirectory,
                 observe: Callable[[Any], Any]) -> None:
        self.store = store
        self.notifier = notifier
        self.approvers = approvers
        self.observe = observe
        self.quota_today: Callable[[], str] | None = None  # today's quota in words (set by the runtime)
        # The account's tag health for App Home (set by the runtime; None when it cannot be read).
        self.tag_health: Callable[[], tag_health.TagHealth | None] = lambda: None

    def progress(self, request: Request, batches: list[Batch] | None = None) -> Progress:
        """The card's progress bar: batches only, no tag rows."""
        batches = self.store.batches(request.id) if batches is None else batches
        total_items = sum(b.items_total or 0 for b in batches) or None
        return Progress(
            percent=round(sum(b.percent_done or 0 for b in batches) / len(batches)) if batches else 0,
            batches_done=sum(1 for b in batches if b.state in TERMINAL_BATCH_STATES),
            batch_count=len(batches) or batch_count(request.tag_count),
            items_completed=sum(b.items_completed or 0 for b in batches) if total_items else None,
            items_total=total_items,
            snapshot=self.store.recording_snapshot(request.id) if request.state == "running" else None,
        )

    def facts(self, request: Request, with_link: bool = False) -> StatusFacts:
        batches = self.store.batches(request.id)
        progress = self.progress(request, batches)
        etas = [eta_seconds(o) for o in map(self.observe, batches) if o is not None]
        tags = self.store.request_tags(request.id)
        outcomes = [t.outcome for t in tags if t.outcome]
        done = "restored" if request.is_restore else "deleted"
        link = None
        if with_link and request.approval_channel and request.card_ts:
            link = self.notifier.permalink(request.approval_channel, request.card_ts)
        return StatusFacts(
            request_id=request.id, state=request.state, requester_id=request.requester_id,
            approvers=self.store.approvals(request.id), tag_count=request.tag_count, percent=progress.percent,
            batches_done=progress.batches_done, batch_count=progress.batch_count,
            items_completed=progress.items_completed, items_total=progress.items_total,
            eta_seconds=max((e for e in etas if e is not None), default=None),
            required_approvals=request.required_approvals, expires_at=request.expires_at,
            deleted=outcomes.count(done) if outcomes else None,
            not_deleted=(len(outcomes) - outcomes.count(done)) if outcomes else None, link=link,
            held_until=request.quota_held_until, restores_request=request.restores_request,
        )

    def status_of(self, request: Request, with_link: bool = False) -> str:
        return status_text(self.facts(request, with_link))

    def answer_thread(self, event: dict[str, Any], bot_user_id: str | None) -> bool:
        """Reply in a request card's thread when someone asks about it; ignore other chatter."""
        request = self.store.request_by_card(event.get("channel", ""), event.get("thread_ts", ""))
        if request is None:
            return False
        text = event.get("text") or ""
        mentioned = bool(bot_user_id) and f"<@{bot_user_id}" in text
        if not is_status_question(text, mentioned):
            return False
        self.notifier.reply_in_thread(event["channel"], event["thread_ts"], self.status_of(request))
        self.store.add_event(request.id, event.get("user"), "status.asked", {"where": "thread"})
        return True

    def list_text(self, user_id: str, limit: int = 10) -> str:
        requests = self.store.requests(limit=limit)
        if not requests:
            return "No deletion requests yet. Type `/deletetags help` to start one."
        lines = ["*Recent deletion requests*"]
        for request in requests:
            link = self._link(request)
            label = blocks.STATE_LABELS.get(request.state, request.state)
            restore = f" (restore of #{request.restores_request})" if request.is_restore else ""
            lines.append(f"• {link}{restore} by <@{request.requester_id}> — {label}, "
                         f"{blocks.count(request.tag_count, 'tag')}, "
                         f"{request.created_at:%Y-%m-%d %H:%M} UTC")
        return "\n".join(lines)

    def _link(self, request: Request) -> str:
        permalink = None
        if request.approval_channel and request.card_ts:
            permalink = self.notifier.permalink(request.approval_channel, request.card_ts)
        return f"<{permalink}|#{request.id}>" if permalink else f"#{request.id}"

    def home_blocks(self, user_id: str) -> list[dict[str, Any]]:
        mine = self.store.requests(requester_id=user_id, limit=10)
        waiting: list[Request] = []
        approver = user_id in self.approvers.current()
        if approver:
            waiting = [r for r in self.store.requests(states=(RequestState.AWAITING_APPROVAL.value,), limit=20)
                       if r.requester_id != user_id and user_id not in self.store.approvals(r.id)]
        home = blocks.home_blocks(
            [(r.id, r.state, r.tag_count, _labelled_reason(r)) for r in mine],
            [(r.id, r.requester_id, r.tag_count, r.total_contacts, _labelled_reason(r)) for r in waiting],
        )
        if approver and self.quota_today is not None:
            home.insert(1, blocks.context(f":bar_chart: Constant Contact calls: {self.quota_today()}"))
        return (home[:1] + tag_health.home_part(self.tag_health()) + home[1:])[:100]

    def publish_home(self, user_id: str) -> None:
        self.notifier.client.views_publish(user_id=user_id, view={"type": "home", "blocks": self.home_blocks(user_id)})
