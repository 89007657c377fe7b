"""What changed about the approved tags between the approval and the delete POST. Pure.

Approvers decide on the names and contact counts they saw on the card. Constant Contact keeps
changing while a request waits (people rename tags, imports tag thousands of contacts), so right
before each batch goes out the runner looks at those tags again and asks this module whether the
difference is one an approver would want to see before anything is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Growth below both of these is noise (a few sign-ups a day); above either, approvers decide again.
GROWTH_SHARE = 0.10
GROWTH_CONTACTS = 10


@dataclass(frozen=True)
class TagFacts:
    """A tag as the approvers saw it, or as Constant Contact shows it now."""

    tag_id: str
    name: str
    contacts_count: int | None


@dataclass(frozen=True)
class TagChange:
    approved: TagFacts
    now: TagFacts

    @property
    def renamed(self) -> bool:
        return self.approved.name != self.now.name

    def describe(self) -> str:
        """One plain-text line; the caller escapes it for Slack."""
        parts = []
        if self.renamed:
            parts.append(f"renamed from “{self.approved.name}” to “{self.now.name}”")
        before, after = self.approved.contacts_count or 0, self.now.contacts_count or 0
        if after != before:
            parts.append(f"{before:,} → {after:,} contacts")
        return f"{self.now.name} ({self.now.tag_id}): " + ", ".join(parts)

    def as_record(self) -> dict[str, object]:
        return {"tag_id": self.now.tag_id, "name_before": self.approved.name, "name_now": self.now.name,
                "contacts_before": self.approved.contacts_count, "contacts_now": self.now.contacts_count}


def is_large(contacts_count: int | None, threshold: int) -> bool:
    return threshold > 0 and (contacts_count or 0) >= threshold


def grew_materially(before: int | None, after: int | None, large_threshold: int) -> bool:
    before, after = before or 0, after or 0
    if after <= before:
        return False  # fewer contacts lose the tag than the approvers agreed to
    if is_large(after, large_threshold) and not is_large(before, large_threshold):
        return True
    growth = after - before
    return growth > GROWTH_CONTACTS and growth > before * GROWTH_SHARE


def material_changes(approved: Iterable[TagFacts], now: Mapping[str, TagFacts],
                     large_threshold: int) -> list[TagChange]:
    """Renamed tags and tags that grew beyond noise. A tag gone since is no change: there is
    nothing left to delete, and the summary reports it."""
    changes = []
    for before in approved:
        after = now.get(before.tag_id)
        if after is None:
            continue
        change = TagChange(before, after)
        if change.renamed or grew_materially(before.contacts_count, after.contacts_count, large_threshold):
            changes.append(change)
    return changes
