"""From what a person typed or uploaded to a draft request and its preview.

Nothing unknown is ever recorded for deletion: entries are resolved against the account's tags
first, and only the tags that matched exactly one tag become part of the request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.core import blocks, quota, resolver, rules, tags
from bot.core.lifecycle import batch_count
from bot.core.mrkdwn import outside_text
from bot.quota_ledger import QuotaCheck
from bot.core.snapshot_report import SnapshotPlan
from bot.store import NewTag, Store

log = logging.getLogger(__name__)

PREVIEW_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class Listing:
    """One listing of the account's tags, indexed once for `resolver.resolve`."""

    started_at: float
    account_tags: Sequence[Any]
    index: resolver.TagIndex


class TagCatalog:
    """The account's tags as they are now: every preview is resolved against a listing that began
    after it was asked for, so a tag created or deleted a second before is seen as it is.

    Previews asked for while a listing is under way share the next one (a burst of 200 previews
    costs a few listings, not 200); a listing that began earlier is never reused for them.
    """

    def __init__(self, fetch: Callable[[], Sequence[Any]], clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._changed = threading.Condition()
        self._latest: Listing | None = None
        self._fetching_since: float | None = None

    def listing(self, *, not_before: float | None = None) -> Listing:
        """A listing that began at `not_before` or later (default: now)."""
        wanted = self._clock() if not_before is None else not_before
        with self._changed:
            while True:
                if self._latest is not None and self._latest.started_at >= wanted:
                    return self._latest
                if self._fetching_since is None:
                    break
                # A listing under way: wait for it; if it began too early, the next one is ours.
                self._changed.wait()
            started_at = self._fetching_since = self._clock()
        return self._fetch_listing(started_at)

    def _fetch_listing(self, started_at: float) -> Listing:
        try:
            account_tags = list(self._fetch())
            fetched = Listing(started_at, account_tags, resolver.TagIndex.of(account_tags))
        except BaseException:
            with self._changed:
                self._fetching_since = None
                self._changed.notify_all()
            raise
        with self._changed:
            self._latest, self._fetching_since = fetched, None
            self._changed.notify_all()
        return fetched

    def recent(self, max_age_seconds: float) -> Listing:
        """A listing at most this old, for views that may lag a little (App Home's tag health)."""
        return self.listing(not_before=self._clock() - max_age_seconds)


@dataclass(frozen=True)
class Prepared:
    """Either a preview of a new draft request, or the message that explains why there is none."""

    preview: blocks.PreviewView | None = None
    message: str | None = None


def nothing_matched(selection: tags.Selection, resolution: resolver.Resolution) -> str:
    parts = [f"None of the {selection.entry_count:,} entries matches exactly one tag in Constant Contact, so there is nothing to delete."]
    if resolution.unknown_ids:
        parts.append("Unknown ids: " + ", ".join(f"`{blocks.escape(i)}`" for i in resolution.unknown_ids[:10]))
    if resolution.unknown_names:
        parts.append("Unknown names: " + ", ".join(f"“{blocks.escape(n)}”" for n in resolution.unknown_names[:10]))
    for ambiguity in resolution.ambiguous[:5]:
        ids = ", ".join(f"`{blocks.escape(c.tag_id)}`" for c in ambiguity.candidates[:5])
        parts.append(f"“{blocks.escape(ambiguity.name)}” matches several tags ({ids}): use the id.")
    return "\n".join(parts)


class Intake:
    def __init__(self, store: Store, catalog: TagCatalog, clock: Callable[[], datetime],
                 required_approvals: int, large_tag_contacts: int = 0, max_entries: int = tags.MAX_ENTRIES) -> None:
        self.store = store
        self.max_entries = max_entries
        self.large_tag_contacts = large_tag_contacts
        self.catalog = catalog
        self.clock = clock
        self.required_approvals = required_approvals
        self.quota_check: QuotaCheck | None = None  # set by the runtime; None: no quota estimate
        self.snapshot_plan: Callable[[int], SnapshotPlan] | None = None  # set by the runtime

    def _cost(self, contact_counts: Sequence[int | None],
              account_tags: int) -> tuple[quota.Estimate | None, str | None]:
        """The request's estimated Constant Contact calls, and why it cannot run today (or None)."""
        if self.quota_check is None:
            return None, None
        snapshot = self.snapshot_plan is not None and self.snapshot_plan(sum(c or 0 for c in contact_counts)).will_snapshot
        estimate = self.quota_check.estimate(contact_counts, account_tags, snapshot)
        return estimate, self.quota_check.refusal(estimate)

    def _costed(self, estimate: quota.Estimate | None, view: blocks.PreviewView) -> Prepared:
        if self.snapshot_plan is not None:
            view = replace(view, snapshot_line=self.snapshot_plan(view.total_contacts).line())
        if estimate is None:
            return Prepared(preview=view)
        return Prepared(preview=replace(view, quota_line=quota.estimate_line(estimate)))

    def prepare(self, *, user_id: str, team_id: str | None, channel_id: str | None, source: str,
                selection: tags.Selection, reason: str | None, asked_at: float | None = None) -> Prepared:
        """`asked_at`: when the person asked (the catalog's clock); any listing begun since will do."""
        problem = selection.problem()
        if problem:
            return Prepared(message=problem)
        listing = self.catalog.listing(not_before=asked_at)
        resolution = resolver.resolve(selection, listing.index)
        if not resolution.tags:
            return Prepared(message=nothing_matched(selection, resolution))
        estimate, refusal = self._cost([t.contacts_count for t in resolution.tags], len(listing.account_tags))
        if refusal:
            return Prepared(message=refusal)
        request_id = self.store.create_request(
            requester_id=user_id, team_id=team_id, origin_channel=channel_id, source=source,
            reason=reason, required_approvals=self.required_approvals,
            tags=[NewTag(t.tag_id, t.name, t.contacts_count, t.matched_by) for t in resolution.tags],
            unresolved=_unresolved(selection, resolution), expires_at=self.clock() + PREVIEW_TTL,
            quota_estimate=estimate.as_record() if estimate else None,
        )
        log.info("draft created", extra={"request_id": str(request_id), "actor": user_id, "outcome": "draft"})
        return self._costed(estimate, preview_of(request_id, selection, resolution, reason, self.large_tag_contacts))


    def prepare_rule(self, *, user_id: str, team_id: str | None, channel_id: str | None, source: str,
                     rule_text: str, reason: str | None, asked_at: float | None = None) -> Prepared:
        """A draft of exactly the tags a rule matches now; the request keeps that list, not the rule."""
        try:
            rule = rules.parse_rule(rule_text)
        except rules.RuleError as error:
            return Prepared(message=error.message)
        listing = self.catalog.listing(not_before=asked_at)
        matched = rule.select(listing.account_tags)
        problem = rule_problem(rule, len(matched), len(listing.account_tags), self.max_entries)
        if problem:
            return Prepared(message=problem)
        found = [NewTag(t.tag_id.strip().lower(), t.name, t.contacts_count, "rule") for t in matched]
        estimate, refusal = self._cost([t.contacts_count for t in found], len(listing.account_tags))
        if refusal:
            return Prepared(message=refusal)
        request_id = self.store.create_request(
            requester_id=user_id, team_id=team_id, origin_channel=channel_id, source=source, reason=reason,
            required_approvals=self.required_approvals, tags=found, expires_at=self.clock() + PREVIEW_TTL,
            rule=rule.text, account_tag_count=len(listing.account_tags),
            quota_estimate=estimate.as_record() if estimate else None,
        )
        log.info("draft created by rule", extra={"request_id": str(request_id), "actor": user_id, "outcome": "draft"})
        return self._costed(estimate, blocks.PreviewView(
            request_id=request_id, tags=blocks.tag_lines(found), total_contacts=sum(t.contacts_count or 0 for t in found),
            batch_count=batch_count(len(found)), reason=reason, large_threshold=self.large_tag_contacts,
            rule=rule.text, account_tag_count=len(listing.account_tags),
        ))


def rule_problem(rule: rules.Rule, matched: int, account_tags: int, max_entries: int) -> str | None:
    shown = outside_text(rule.text, 400)
    if not matched:
        return (f"The rule `{shown}` matches none of the account's {account_tags:,} tags, so there is nothing "
                "to delete.")
    if matched > max_entries:
        return (f"The rule `{shown}` matches {matched:,} tags, more than the {max_entries:,} one request may "
                "delete. Narrow it, for example with `and created before 2024-01-01`.")
    return None


def _unresolved(selection: tags.Selection, resolution: resolver.Resolution) -> dict[str, Any]:
    return {
        "unknown_ids": list(resolution.unknown_ids),
        "unknown_names": list(resolution.unknown_names),
        "ambiguous": {a.name: [c.tag_id for c in a.candidates] for a in resolution.ambiguous},
        "duplicates": resolution.duplicates,
        "junk": selection.junk_count,
    }


def preview_of(request_id: int, selection: tags.Selection, resolution: resolver.Resolution,
               reason: str | None, large_threshold: int = 0) -> blocks.PreviewView:
    return blocks.PreviewView(
        request_id=request_id,
        tags=blocks.tag_lines(resolution.tags),
        total_contacts=resolution.total_contacts,
        batch_count=resolution.batch_count(),
        unknown_ids=resolution.unknown_ids,
        unknown_names=resolution.unknown_names,
        ambiguous=[(a.name, blocks.tag_lines(a.candidates)) for a in resolution.ambiguous],
        duplicates=resolution.duplicates,
        junk_summary=selection.junk_summary() if selection.junk_count else None,
        reason=reason,
        large_threshold=large_threshold,
    )

