"""Answers to "status?": recognising the question and wording the answer. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.core.blocks import STATE_LABELS, count, progress_bar
from bot.core.quota import hold_line

STATUS_QUESTION = re.compile(
    r"(?ix)"
    r"\b(status|progress|eta|update|how\s+(far|long|much|is\s+it\s+going)|is\s+it\s+(done|finished|over|complete)"
    r"|are\s+we\s+(done|there)|done\s+yet|finished\s+yet|any\s+news|where\s+are\s+we)\b"
    r"|^\s*\?+\s*$"
)


def is_status_question(text: str, mentions_bot: bool) -> bool:
    """A thread message asks about the request if it mentions the bot or reads like the question."""
    return mentions_bot or bool(STATUS_QUESTION.search(text or ""))


@dataclass(frozen=True)
class StatusFacts:
    request_id: int
    state: str
    requester_id: str
    approvers: Sequence[str]
    tag_count: int
    percent: int
    batches_done: int
    batch_count: int
    items_completed: int | None
    items_total: int | None
    eta_seconds: float | None
    required_approvals: int = 1
    expires_at: datetime | None = None
    deleted: int | None = None
    not_deleted: int | None = None
    link: str | None = None
    held_until: datetime | None = None  # held for Constant Contact's daily quota until its reset
    restores_request: int | None = None  # a restore of this request's snapshot; its outcomes say "restored"


def eta_words(seconds: float | None) -> str:
    if seconds is None:
        return "no estimate yet"
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    return f"about {minutes} minute{'s' if minutes != 1 else ''}" if minutes < 90 else f"about {minutes / 60:.1f} hours"


def status_text(facts: StatusFacts) -> str:
    label = STATE_LABELS.get(facts.state, facts.state)
    where = f" (<{facts.link}|card>)" if facts.link else ""
    what = f" (restore of #{facts.restores_request})" if facts.restores_request is not None else ""
    if facts.restores_request is not None and facts.state == "running":
        label = "Restoring"
    head = (f"*Request #{facts.request_id}*{what}{where} by <@{facts.requester_id}>: *{label}*, "
            f"{count(facts.tag_count, 'tag')}.")
    approved = ("Approved by " + ", ".join(f"<@{a}>" for a in facts.approvers) + ".") if facts.approvers else ""
    if facts.state == "awaiting_approval":
        nothing = "Nothing is changed yet." if facts.restores_request is not None else "Nothing is deleted yet."
        return f"{head} Approvals {len(facts.approvers)} of {facts.required_approvals}. {nothing}"
    if facts.state == "approved" and facts.held_until is not None:
        return f"{head} {hold_line(facts.held_until, facts.restores_request is not None)} {approved}".strip()
    if facts.state in ("running", "approved"):
        items = ""
        if facts.items_total:
            items = f", {facts.items_completed or 0:,}/{facts.items_total:,} items"
        return (f"{head}\n`{progress_bar(facts.percent)}` batches {facts.batches_done}/{facts.batch_count}{items}. "
                f"ETA: {eta_words(facts.eta_seconds)}. {approved}").strip()
    if facts.deleted is not None:
        done = "restored" if facts.restores_request is not None else "deleted"
        return f"{head} {facts.deleted:,} {done}, {facts.not_deleted or 0:,} not {done}. {approved}".strip()
    return f"{head} {approved}".strip()
