"""From what a person typed or uploaded to a draft request and its preview.

Nothing unknown is ever recorded for deletion: entries are resolved against the account's tags
first, and only the tags that matched exactly one tag become part of the request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import blocks, tags
from bot.store import NewTag, Store

log = logging.getLogger(__name__)

PREVIEW_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class _Listing:
    fetched_at: float
    account_tags: Sequence[Any]
    index: tags.TagIndex


class TagCatalog:
    """The account's tags from one listing, cached briefly so a burst of previews costs one call.

    The listing is indexed for `tags.resolve` once per fetch, not once per preview.
    """

    def __init__(self, fetch: Callable[[], Sequence[Any]], ttl_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: _Listing | None = None

    def tags(self) -> Sequence[Any]:
        return self._listing().account_tags

    def index(self) -> tags.TagIndex:
        return self._listing().index

    def _listing(self) -> _Listing:
        with self._lock:
            if self._cached is None or self._clock() - self._cached.fetched_at >= self._ttl:
                fetched_at = self._clock()
                account_tags = list(self._fetch())
                self._cached = _Listing(fetched_at, account_tags, tags.TagIndex.of(account_tags))
            return self._cached

    def forget(self) -> None:
        with self._lock:
            self._cached = None


@dataclass(frozen=True)
class Prepared:
    """Either a preview of a new draft request, or the message that explains why there is none."""

    preview: blocks.PreviewView | None = None
    message: str | None = None


def _lines(resolved: Sequence[Any]) -> list[blocks.TagLine]:
    return [blocks.TagLine(t.tag_id, t.name, t.contacts_count) for t in resolved]


def nothing_matched(selection: tags.Selection, resolution: tags.Resolution) -> str:
    parts = [f"None of the {selection.entry_count:,} entries matches exactly one tag in Constant Contact, so there is nothing to delete."]
    if resolution.unknown_ids:
        parts.append("Unknown ids: " + ", ".join(f"`{i}`" for i in resolution.unknown_ids[:10]))
    if resolution.unknown_names:
        parts.append("Unknown names: " + ", ".join(f"“{blocks.escape(n)}”" for n in resolution.unknown_names[:10]))
    for ambiguity in resolution.ambiguous[:5]:
        ids = ", ".join(f"`{c.tag_id}`" for c in ambiguity.candidates[:5])
        parts.append(f"“{blocks.escape(ambiguity.name)}” matches several tags ({ids}): use the id.")
    return "\n".join(parts)


class Intake:
    def __init__(self, store: Store, catalog: TagCatalog, clock: Callable[[], datetime],
                 required_approvals: int, large_tag_contacts: int = 0) -> None:
        self.store = store
        self.large_tag_contacts = large_tag_contacts
        self.catalog = catalog
        self.clock = clock
        self.required_approvals = required_approvals

    def prepare(self, *, user_id: str, team_id: str | None, channel_id: str | None, source: str,
                selection: tags.Selection, reason: str | None) -> Prepared:
        problem = selection.problem()
        if problem:
            return Prepared(message=problem)
        resolution = tags.resolve(selection, self.catalog.index())
        if not resolution.tags:
            return Prepared(message=nothing_matched(selection, resolution))
        request_id = self.store.create_request(
            requester_id=user_id, team_id=team_id, origin_channel=channel_id, source=source,
            reason=reason, required_approvals=self.required_approvals,
            tags=[NewTag(t.tag_id, t.name, t.contacts_count, t.matched_by) for t in resolution.tags],
            unresolved=_unresolved(selection, resolution), expires_at=self.clock() + PREVIEW_TTL,
        )
        log.info("draft created", extra={"request_id": str(request_id), "actor": user_id, "outcome": "draft"})
        return Prepared(preview=preview_of(request_id, selection, resolution, reason, self.large_tag_contacts))


def _unresolved(selection: tags.Selection, resolution: tags.Resolution) -> dict[str, Any]:
    return {
        "unknown_ids": list(resolution.unknown_ids),
        "unknown_names": list(resolution.unknown_names),
        "ambiguous": {a.name: [c.tag_id for c in a.candidates] for a in resolution.ambiguous},
        "duplicates": resolution.duplicates,
        "junk": selection.junk_count,
    }


def preview_of(request_id: int, selection: tags.Selection, resolution: tags.Resolution,
               reason: str | None, large_threshold: int = 0) -> blocks.PreviewView:
    return blocks.PreviewView(
        request_id=request_id,
        tags=_lines(resolution.tags),
        total_contacts=resolution.total_contacts,
        batch_count=resolution.batch_count(),
        unknown_ids=resolution.unknown_ids,
        unknown_names=resolution.unknown_names,
        ambiguous=[(a.name, _lines(a.candidates)) for a in resolution.ambiguous],
        duplicates=resolution.duplicates,
        junk_summary=selection.junk_summary() if selection.junk_count else None,
        reason=reason,
        large_threshold=large_threshold,
    )

