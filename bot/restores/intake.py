"""From `/deletetags restore N ["name" …] [reason: …]` to a draft restore request and its preview."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from bot.core import quota
from bot.intake import PREVIEW_TTL, TagCatalog
from bot.core.lifecycle import RequestState
from bot.quota_ledger import QuotaCheck
from bot.restores import plan, views
from bot.store import NewTag, Request, Store

log = logging.getLogger(__name__)

IN_FLIGHT = (RequestState.AWAITING_APPROVAL.value, RequestState.APPROVED.value, RequestState.RUNNING.value)


class RestoreIntake:
    def __init__(self, store: Store, catalog: TagCatalog, clock: Callable[[], datetime],
                 required_approvals: int) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.required_approvals = required_approvals
        self.quota_check: QuotaCheck | None = None  # set by the runtime; None: no quota estimate

    def refusal(self, request_id: int) -> str | None:
        """Why request #N cannot be restored (before Constant Contact is asked anything), or None."""
        source = self.store.get_request(request_id)
        if source is None:
            return f"There is no request #{request_id}. `/deletetags list` shows recent ones."
        if source.is_restore:
            return (f"Request #{request_id} is itself a restore. To take back what it added, delete those "
                    "tags with a new request.")
        if not source.is_terminal:
            return (f"Request #{request_id} is {source.state.replace('_', ' ')}: it can be restored once it "
                    "has finished.")
        if not any(b.activity_id or b.state == "reconciled" for b in self.store.batches(request_id)):
            return f"Request #{request_id} deleted nothing, so there is nothing to restore."
        return self._snapshot_refusal(source) or self._busy(request_id)

    def _snapshot_refusal(self, source: Request) -> str | None:
        states = {s.state for s in self.store.snapshots(source.id)}
        if "complete" in states:
            return None
        if "purged" in states:
            return (f"The snapshot of request #{source.id} was purged (snapshots are kept "
                    "`SNAPSHOT_RETENTION_DAYS` days), so it cannot be restored.")
        return (f"Request #{source.id} was deleted without a snapshot (snapshots were off, or its tags carried "
                "more than `SNAPSHOT_MAX_CONTACTS` contacts), so it cannot be restored.")

    def confirm_refusal(self, request: Request) -> str | None:
        """Why this draft restore may not go to the approvers now (another restore of the same request
        is on its way), or None; asked again when the requester confirms."""
        if not request.is_restore or request.restores_request is None:
            return None
        return self._busy(request.restores_request, besides=request.id)

    def _busy(self, request_id: int, besides: int | None = None) -> str | None:
        for other in self.store.restores_of(request_id, IN_FLIGHT):
            if other.id != besides:
                return (f"Restore #{other.id} of request #{request_id} is already "
                        f"{other.state.replace('_', ' ')}: see `/deletetags status {other.id}`.")
        return None

    def _restored_before(self, request_id: int) -> dict[str, int]:
        """Old tag id -> the finished restore of this request that restored it."""
        done = (RequestState.COMPLETED.value, RequestState.COMPLETED_WITH_ERRORS.value)
        restored: dict[str, int] = {}
        for other in self.store.restores_of(request_id, done):  # newest first: the latest one is named
            for tag in self.store.request_tags(other.id):
                if tag.outcome == "restored":
                    restored.setdefault(tag.tag_id, other.id)
        return restored

    def prepare(self, *, user_id: str, team_id: str | None, channel_id: str | None, restores_request: int,
                ids: Sequence[str], names: Sequence[str], reason: str | None,
                asked_at: float | None = None) -> views.RestorePreview | str:
        """A draft restore and its preview, or the message that says why there is none."""
        refusal = self.refusal(restores_request)
        if refusal:
            return refusal
        listing = self.catalog.listing(not_before=asked_at)
        snapshotted = {s.batch_no for s in self.store.snapshots(restores_request) if s.state == "complete"}
        choice = plan.choose(self.store.request_tags(restores_request), self.store.snapshot_counts(restores_request),
                             snapshotted, listing.account_tags, ids, names, self._restored_before(restores_request))
        if not choice.tags:
            return views.nothing_to_restore(restores_request, choice)
        estimate = None
        if self.quota_check is not None:
            estimate = self.quota_check.restore_estimate(
                [count for _, _, count in plan.chunks((t.old_tag_id, t.contacts) for t in choice.tags)], len(choice.tags),
                sum(1 for t in choice.tags if t.existing_tag_id), len(listing.account_tags))
            refusal = self.quota_check.refusal(estimate)
            if refusal:
                return refusal
        request_id = self.store.create_request(
            requester_id=user_id, team_id=team_id, origin_channel=channel_id, source="restore", reason=reason,
            required_approvals=self.required_approvals,
            tags=[NewTag(t.old_tag_id, t.name, t.contacts, "snapshot") for t in choice.tags],
            unresolved={"into_existing": {t.old_tag_id: t.existing_tag_id for t in choice.tags if t.existing_tag_id},
                        "deleted_then": sum(t.deleted_then for t in choice.tags),
                        "skipped": len(choice.skipped), "unmatched": list(choice.unmatched)},
            expires_at=self.clock() + PREVIEW_TTL, restores_request=restores_request,
            quota_estimate=estimate.as_record() if estimate else None,
        )
        log.info("restore draft created", extra={"request_id": str(request_id), "actor": user_id, "outcome": "draft"})
        return views.RestorePreview(request_id, restores_request, choice, reason,
                                    quota.estimate_line(estimate) if estimate else None)
