"""The rules of a deletion request: its states, who may do what, and when it is decided.

Pure: no Slack, no HTTP, no SQLite. Listeners and the runner ask this module, then ask the
store to make the change with a compare-and-set, so a lost race never acts twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class RequestState(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RUNNING = "running"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"


TERMINAL_REQUEST_STATES = frozenset(
    {
        RequestState.CANCELLED,
        RequestState.REJECTED,
        RequestState.EXPIRED,
        RequestState.COMPLETED,
        RequestState.COMPLETED_WITH_ERRORS,
        RequestState.FAILED,
    }
)

# Which states each state may move to; the store refuses anything else.
REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.DRAFT: frozenset({RequestState.AWAITING_APPROVAL, RequestState.CANCELLED, RequestState.EXPIRED}),
    # Back to draft only when the card could not be posted, before anyone could see it.
    RequestState.AWAITING_APPROVAL: frozenset(
        {RequestState.APPROVED, RequestState.REJECTED, RequestState.CANCELLED, RequestState.EXPIRED, RequestState.DRAFT}
    ),
    # Back to awaiting approval when a tag changed materially after the approval (see tag_changes).
    RequestState.APPROVED: frozenset({RequestState.RUNNING, RequestState.FAILED, RequestState.AWAITING_APPROVAL}),
    RequestState.RUNNING: frozenset(
        {RequestState.COMPLETED, RequestState.COMPLETED_WITH_ERRORS, RequestState.FAILED,
         RequestState.AWAITING_APPROVAL}
    ),
}


class BatchState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    INITIALIZED = "initialized"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"
    RECONCILED = "reconciled"


TERMINAL_BATCH_STATES = frozenset(
    {
        BatchState.COMPLETED,
        BatchState.FAILED,
        BatchState.CANCELLED,
        BatchState.TIMED_OUT,
        BatchState.LOST,
        BatchState.RECONCILED,
    }
)
RUNNING_BATCH_STATES = frozenset({BatchState.INITIALIZED, BatchState.PROCESSING})
BATCH_SIZE = 500


def sources_of(target: RequestState) -> tuple[str, ...]:
    """Every state from which `target` may be reached (for compare-and-set updates)."""
    return tuple(sorted(s.value for s, targets in REQUEST_TRANSITIONS.items() if target in targets))


# --- who may do what -----------------------------------------------------------------------


class Action(StrEnum):
    CONFIRM = "confirm"
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Decision:
    """The answer to "may this person do this now?"; `reason` is shown to them when refused."""

    allowed: bool
    reason: str = ""
    code: str = "ok"

    @classmethod
    def refuse(cls, code: str, reason: str) -> "Decision":
        return cls(False, reason, code)


ALLOWED = Decision(True)


@dataclass(frozen=True)
class RequestFacts:
    """What the rules need to know about one request."""

    request_id: int
    state: str
    requester_id: str
    approvals: tuple[str, ...]
    required_approvals: int
    expires_at: datetime | None


def is_expired(facts: RequestFacts, now: datetime) -> bool:
    return facts.expires_at is not None and now >= facts.expires_at


def _finished_reason(facts: RequestFacts) -> Decision:
    state = RequestState(facts.state)
    words = {
        RequestState.APPROVED: "has already been approved",
        RequestState.RUNNING: "has already been approved and is running",
        RequestState.CANCELLED: "was cancelled",
        RequestState.REJECTED: "was rejected",
        RequestState.EXPIRED: "expired without a decision",
        RequestState.COMPLETED: "has already finished",
        RequestState.COMPLETED_WITH_ERRORS: "has already finished",
        RequestState.FAILED: "has already finished",
        RequestState.DRAFT: "has not been sent for approval yet",
        RequestState.AWAITING_APPROVAL: "is waiting for approval",
    }
    return Decision.refuse("not_open", f"Request #{facts.request_id} {words[state]}, so there is nothing to decide.")


def may_decide(
    action: Action, user_id: str, facts: RequestFacts, approvers: Collection[str], now: datetime
) -> Decision:
    """Approve or reject: only an approver, never the requester, only while awaiting approval."""
    if facts.state != RequestState.AWAITING_APPROVAL:
        return _finished_reason(facts)
    if is_expired(facts, now):
        return Decision.refuse("expired", f"Request #{facts.request_id} expired without a decision.")
    if user_id == facts.requester_id:
        return Decision.refuse(
            "own_request", "You asked for this deletion, so someone else must approve or reject it (four-eyes rule)."
        )
    if user_id not in approvers:
        return Decision.refuse(
            "not_approver", "Only the configured approvers can approve or reject deletion requests."
        )
    # Enough approvals but still awaiting means a crash came between the two writes: let it finish.
    if action == Action.APPROVE and user_id in facts.approvals and not approvals_reached(
        facts.approvals, facts.required_approvals
    ):
        return Decision.refuse("already_approved", "You have already approved this request.")
    return ALLOWED


def may_cancel(user_id: str, facts: RequestFacts) -> Decision:
    """The requester may cancel until the request is approved."""
    if user_id != facts.requester_id:
        return Decision.refuse("not_requester", "Only the person who asked for this deletion can cancel it.")
    if facts.state not in (RequestState.DRAFT, RequestState.AWAITING_APPROVAL):
        return Decision.refuse(
            "too_late", f"Request #{facts.request_id} can no longer be cancelled: it is {facts.state.replace('_', ' ')}."
        )
    return ALLOWED


def may_confirm(user_id: str, facts: RequestFacts, now: datetime) -> Decision:
    """Only the requester sends their own draft to the approvers."""
    if user_id != facts.requester_id:
        return Decision.refuse("not_requester", "Only the person who prepared this preview can send it for approval.")
    if facts.state != RequestState.DRAFT:
        return _finished_reason(facts)
    if is_expired(facts, now):
        return Decision.refuse("expired", "This preview is too old. Run /deletetags again.")
    return ALLOWED


def approvals_reached(approvals: Iterable[str], required: int) -> bool:
    return len(set(approvals)) >= required


def approvals_that_count(approvals: Iterable[str], requester_id: str, approvers: Collection[str]) -> tuple[str, ...]:
    """The recorded approvals of people who are approvers now (someone removed from the approvers
    after approving no longer counts towards the last approval)."""
    return tuple(u for u in approvals if u in approvers and u != requester_id)


def approval_expiry(now: datetime, ttl_hours: float) -> datetime:
    return now + timedelta(hours=ttl_hours)


def batch_count(tag_count: int, size: int = BATCH_SIZE) -> int:
    """How many Constant Contact activities a request of this many tags takes (at least one)."""
    return max(1, -(-tag_count // size))


def batches(tag_ids: list[str], size: int = BATCH_SIZE) -> list[list[str]]:
    """Ordered batches of at most `size` ids: one Constant Contact activity each."""
    return [tag_ids[i : i + size] for i in range(0, len(tag_ids), size)]
