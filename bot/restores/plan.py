"""What a restore of a deletion will do, and what it did. Pure.

A restore recreates each deleted tag under its old name (Constant Contact gives it a new id) and tags
again the contacts its snapshot recorded, with `contacts_taggings_add` activities of at most 500
contacts. A name taken meanwhile by another tag is restored into that tag. Contacts deleted since the
snapshot cannot be tagged: Constant Contact names them in the activity's errors, and they are counted,
not failed on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.core.mrkdwn import outside_text

CONTACTS_PER_ACTIVITY = 500  # contacts_taggings_add: source.contact_ids holds at most 500 ids
CLEAN_BATCH_STATES = ("completed", "reconciled")
PROBLEM_SHOWN = 300  # characters of why a tag was not restored
# How Constant Contact names a contact it did not tag, and says when that is because it is deleted.
_CONTACT = re.compile(r"contact\s+([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.IGNORECASE)
_DELETED = re.compile(r"\bdeleted\b", re.IGNORECASE)


class RequestTagLike(Protocol):
    @property
    def tag_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def batch_no(self) -> int | None: ...


class AccountTagLike(Protocol):
    @property
    def tag_id(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class RestoreTag:
    old_tag_id: str
    name: str
    contacts: int  # recorded in the snapshot, deleted ones included
    deleted_then: int  # of those, already deleted when the snapshot was taken
    existing_tag_id: str | None = None  # a tag of this name exists now: the contacts go into it


@dataclass(frozen=True)
class Skipped:
    old_tag_id: str
    name: str
    why: str  # plain text


@dataclass(frozen=True)
class RestoreChoice:
    tags: tuple[RestoreTag, ...]
    skipped: tuple[Skipped, ...]
    unmatched: tuple[str, ...]  # entries typed after the request number that name none of its tags

    @property
    def contacts(self) -> int:
        return sum(t.contacts for t in self.tags)

    @property
    def activity_count(self) -> int:
        return activity_count(t.contacts for t in self.tags)


def activity_count(contacts_per_tag: Iterable[int]) -> int:
    """The tagging activities a restore posts: one per 500 contacts of a tag (none for a tag on none)."""
    return sum(-(-contacts // CONTACTS_PER_ACTIVITY) for contacts in contacts_per_tag)


def choose(deleted_request_tags: Sequence[RequestTagLike], recorded: dict[str, tuple[int, int]],
           snapshotted_batches: Iterable[int], account_tags: Sequence[AccountTagLike],
           wanted_ids: Sequence[str] = (), wanted_names: Sequence[str] = (),
           restored_before: dict[str, int] | None = None) -> RestoreChoice:
    """The tags of a finished deletion that a restore rebuilds: those asked for (all when none are),
    not restored already, gone now and whose batch was snapshotted. `recorded`: per old tag id,
    (contacts, of them deleted then), as `Store.snapshot_counts` gives it; `restored_before`: old tag
    id -> the earlier restore request that restored it."""
    ids = {i.strip().lower() for i in wanted_ids}
    names = {n.casefold() for n in wanted_names}
    picked = [t for t in deleted_request_tags
              if not (ids or names) or t.tag_id in ids or t.name.casefold() in names]
    picked_ids, picked_names = {t.tag_id for t in picked}, {t.name.casefold() for t in picked}
    unmatched = tuple([i for i in wanted_ids if i.strip().lower() not in picked_ids]
                      + [n for n in wanted_names if n.casefold() not in picked_names])
    present = {t.tag_id.strip().lower() for t in account_tags}
    by_name = {t.name.casefold(): t.tag_id.strip().lower() for t in account_tags}
    snapshotted = set(snapshotted_batches)
    tags: list[RestoreTag] = []
    skipped: list[Skipped] = []
    for tag in picked:
        if tag.tag_id in (restored_before or {}):
            skipped.append(Skipped(tag.tag_id, tag.name, f"restore #{(restored_before or {})[tag.tag_id]} "
                                                         "already restored it"))
        elif tag.tag_id in present:
            skipped.append(Skipped(tag.tag_id, tag.name, "it still exists: it was not deleted"))
        elif tag.batch_no not in snapshotted:
            skipped.append(Skipped(tag.tag_id, tag.name, "no snapshot was recorded before it was deleted"))
        else:
            contacts, deleted_then = recorded.get(tag.tag_id, (0, 0))
            tags.append(RestoreTag(tag.tag_id, tag.name, contacts, deleted_then, by_name.get(tag.name.casefold())))
    return RestoreChoice(tuple(tags), tuple(skipped), unmatched)


def chunks(tags: Iterable[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(old tag id, first contact, contact count) per activity; a tag on no contact gets one empty
    batch, so that it is recreated all the same."""
    out: list[tuple[str, int, int]] = []
    for tag_id, contacts in tags:
        if contacts == 0:
            out.append((tag_id, 0, 0))
        for first in range(0, contacts, CONTACTS_PER_ACTIVITY):
            out.append((tag_id, first, min(CONTACTS_PER_ACTIVITY, contacts - first)))
    return out


def _named_contact(error: str) -> str | None:
    found = _CONTACT.search(error)
    return found.group(1).lower() if found else None


def deleted_contacts(errors: Iterable[str]) -> set[str]:
    """Contact ids an activity did not tag because they are deleted."""
    return {c for e in errors for c in [_named_contact(e)] if c and _DELETED.search(e)}


def untagged_contacts(errors: Iterable[str]) -> dict[str, str]:
    """Contact ids an activity did not tag for another reason (such as 50 tags already), with the error."""
    return {c: e for e in errors for c in [_named_contact(e)] if c and not _DELETED.search(e)}


def unexpected_errors(errors: Sequence[str]) -> list[str]:
    """An activity's errors other than deleted contacts (those are expected and counted)."""
    return [e for e in errors if not (_named_contact(e) and _DELETED.search(e))]


def batch_errors(errors: Sequence[str]) -> list[str]:
    """Errors that name no contact: about the activity as a whole."""
    return [e for e in errors if not _named_contact(e)]


# --- what a finished restore did ---------------------------------------------------------------


class BatchLike(Protocol):
    @property
    def tag_id(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def errors(self) -> tuple[str, ...]: ...
    @property
    def activity_id(self) -> str | None: ...
    @property
    def contact_count(self) -> int | None: ...


class RestoredTagLike(Protocol):
    @property
    def tag_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def restored_tag_id(self) -> str | None: ...
    @property
    def restored_into(self) -> str | None: ...


@dataclass(frozen=True)
class TagResult:
    old_tag_id: str
    name: str
    tag_id: str | None  # the tag its contacts carry again (None: it could not be made)
    into: str | None  # "new" or "existing"
    tagged: int  # contacts tagged again
    deleted: int  # contacts Constant Contact would not tag because they are deleted
    problem: str | None  # plain text, when the tag is not (wholly) restored


@dataclass(frozen=True)
class RestoreSummary:
    results: tuple[TagResult, ...]
    activity_count: int

    @property
    def restored(self) -> int:
        return sum(1 for r in self.results if r.problem is None)

    @property
    def not_restored(self) -> int:
        return len(self.results) - self.restored

    @property
    def tagged(self) -> int:
        return sum(r.tagged for r in self.results)

    @property
    def deleted(self) -> int:
        return sum(r.deleted for r in self.results)

    @property
    def final_state(self) -> str:
        if self.not_restored == 0:
            return "completed"
        return "completed_with_errors" if self.restored or self.tagged else "failed"

    @property
    def outcomes(self) -> dict[str, tuple[str, str | None]]:
        """Per old tag id: its outcome and, when not restored, why (mrkdwn: Constant Contact's words escaped,
        as the "See all tags" modal shows a deletion's reasons)."""
        return {r.old_tag_id: ("restored", None) if r.problem is None
                else ("not_restored", outside_text(r.problem, PROBLEM_SHOWN)) for r in self.results}


def _tag_result(tag: RestoredTagLike, batches: Sequence[BatchLike]) -> TagResult:
    tagged = deleted = 0
    problems: list[str] = []
    for batch in batches:
        whole = batch_errors(batch.errors)
        if batch.state in CLEAN_BATCH_STATES and not whole:
            gone, refused = deleted_contacts(batch.errors), untagged_contacts(batch.errors)
            tagged += (batch.contact_count or 0) - len(gone) - len(refused)
            deleted += len(gone)
            if refused:
                problems.append(f"{len(refused):,} contact{'s' if len(refused) != 1 else ''} not tagged: "
                                f"{next(iter(refused.values()))}")
        else:
            ended = f"activity ended {batch.state}" if batch.activity_id else "not sent"
            problems.append(ended + (f": {whole[0]}" if whole else ""))
    if tag.restored_tag_id is None and not problems:
        problems.append("the tag could not be recreated")
    problem = "; ".join(dict.fromkeys(problems)) or None
    return TagResult(tag.tag_id, tag.name, tag.restored_tag_id, tag.restored_into, tagged, deleted, problem)


def summarise(tags: Sequence[RestoredTagLike], batches: Sequence[BatchLike]) -> RestoreSummary:
    by_tag: dict[str, list[BatchLike]] = {}
    for batch in batches:
        by_tag.setdefault(batch.tag_id or "", []).append(batch)
    results = tuple(_tag_result(t, by_tag.get(t.tag_id, [])) for t in tags)
    return RestoreSummary(results, sum(1 for b in batches if b.activity_id))
