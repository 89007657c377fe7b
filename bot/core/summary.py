"""What a finished request deleted, what it did not and why. Pure.

Constant Contact does not say per tag what an activity did (and an activity can end
`completed` with errors), so when anything went less than cleanly the runner lists the account's
tags once and this module decides from which of the request's tags still exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.core.advice import OWN_ADVICE
from bot.core.mrkdwn import outside_text_with_advice

CLEAN_BATCH_STATES = ("completed", "reconciled")
ERROR_SHOWN = 300  # characters of one of Constant Contact's errors in a reason


class TagLike(Protocol):
    tag_id: str
    name: str
    batch_no: int | None


class BatchLike(Protocol):
    batch_no: int
    state: str
    errors: tuple[str, ...]
    activity_id: str | None


@dataclass(frozen=True)
class NotDeleted:
    """`reason` is mrkdwn: the batch state in code, Constant Contact's words escaped as outside text."""

    tag_id: str
    name: str
    reason: str


@dataclass(frozen=True)
class Summary:
    deleted: int
    not_deleted: int
    unknown: int
    missing: tuple[NotDeleted, ...]
    activity_count: int
    outcomes: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def final_state(self) -> str:
        if self.not_deleted == 0 and self.unknown == 0:
            return "completed"
        if self.deleted > 0:
            return "completed_with_errors"
        return "failed"


def _reason(tag: TagLike, batch: BatchLike | None) -> str:
    if batch is None:
        return "it was never submitted"
    for error in batch.errors:
        if tag.tag_id in error.lower():
            return outside_text_with_advice(error, OWN_ADVICE, ERROR_SHOWN)
    if batch.errors:
        return f"activity ended `{batch.state}`: {outside_text_with_advice(batch.errors[0], OWN_ADVICE, ERROR_SHOWN)}"
    return f"activity ended `{batch.state}`"


def _outcome(tag: TagLike, batch: BatchLike | None, existing: set[str] | None) -> tuple[str, str | None]:
    if existing is not None:
        return ("not_deleted", _reason(tag, batch)) if tag.tag_id in existing else ("deleted", None)
    if batch is not None and batch.state in CLEAN_BATCH_STATES and not batch.errors:
        return "deleted", None
    if batch is not None and any(tag.tag_id in e.lower() for e in batch.errors):
        return "not_deleted", _reason(tag, batch)
    return "unknown", f"could not confirm ({_reason(tag, batch)}); check the tag in Constant Contact"


def summarise(tags: Sequence[TagLike], batches: Sequence[BatchLike], existing: set[str] | None) -> Summary:
    by_number = {b.batch_no: b for b in batches}
    outcomes = {t.tag_id: _outcome(t, by_number.get(t.batch_no if t.batch_no is not None else -1), existing) for t in tags}
    missing = tuple(NotDeleted(t.tag_id, t.name, outcomes[t.tag_id][1] or "") for t in tags
                    if outcomes[t.tag_id][0] != "deleted")
    counts = [o for o, _ in outcomes.values()]
    # A reconciled batch reached Constant Contact even if its activity id never came back.
    activities = sum(1 for b in batches if b.activity_id or b.state == "reconciled")
    return Summary(counts.count("deleted"), counts.count("not_deleted"), counts.count("unknown"), missing,
                   activities, outcomes)
