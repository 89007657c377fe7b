"""What happens when someone confirms, approves, rejects, cancels, or nobody decides in time.

Each use case asks `bot.core.lifecycle` whether the person may act, makes the change with one
compare-and-set in the store (the loser of a race changes nothing), records refusals in the
audit log, and returns the sentence to show the person who acted.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core import lifecycle
from bot.approvers import ApproverDirectory
from bot.config import Settings
from bot.core.lifecycle import Action, BatchState, Decision, RequestFacts, RequestState
from bot.core.mrkdwn import outside_text
from bot.notifier import CardNotPosted, Notifier
from bot.store import Request, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    code: str = "ok"


NEEDS_REASON = Outcome(False, "A reason is needed before approvers are asked.", "needs_reason")


def _kind(request: Request) -> str:
    return "restore" if request.is_restore else "deletion"


def gone(request_id: int) -> Outcome:
    return Outcome(False, f"Request #{request_id} does not exist (any more).", "not_found")


def one_at_a_time(method: Callable[..., Outcome]) -> Callable[..., Outcome]:
    """Decisions on one request run one after another (the card's ts is stored only after it is
    posted, and a click may arrive in between); the compare-and-set stays the real guard."""

    @functools.wraps(method)
    def serialized(self: "Decisions", request_id: int, *args: object) -> Outcome:
        with self.lock_for(request_id):
            return method(self, request_id, *args)

    return serialized


class Decisions:
    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        approvers: ApproverDirectory,
        settings: Settings,
        clock: Callable[[], datetime],
        on_approved: Callable[[int], None] = lambda request_id: None,
        on_closed: Callable[[int], None] = lambda request_id: None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.approvers = approvers
        self.settings = settings
        self.clock = clock
        self.on_approved = on_approved
        self.on_closed = on_closed  # rejected, cancelled or expired: the runner settles what had started
        # Why a draft may not go to the approvers now, beyond the lifecycle's rules (set by the runtime:
        # a second restore of the same deletion waits for the first).
        self.confirm_refusal: Callable[[Request], str | None] = lambda request: None
        # A request's lock lives while someone holds or waits for it, so the map stays as small as
        # the number of requests being decided at this moment.
        self._locks: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    @contextmanager
    def lock_for(self, request_id: int) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.get(request_id)
            if lock is None:
                lock = self._locks[request_id] = threading.RLock()
        with lock:
            yield

    def locks_held(self) -> int:
        """How many request locks exist now (for tests and health)."""
        return len(self._locks)

    def _facts(self, request: Request) -> RequestFacts:
        return RequestFacts(
            request.id, request.state, request.requester_id, self.store.approvals(request.id),
            request.required_approvals, request.expires_at,
        )

    def _refuse(self, request_id: int | None, user_id: str, action: str, decision: Decision) -> Outcome:
        self.store.add_event(request_id, user_id, f"refused.{action}", {"code": decision.code})
        log.info("refused %s", action, extra={"request_id": str(request_id), "actor": user_id, "outcome": decision.code})
        return Outcome(False, decision.reason, decision.code)

    # --- confirm: the requester sends the preview to the approvers ---------------------------

    @one_at_a_time
    def confirm(self, request_id: int, user_id: str, reason: str | None = None) -> Outcome:
        request = self.store.get_request(request_id)
        if request is None:
            return self._refuse(None, user_id, "confirm", Decision.refuse("not_found", gone(request_id).message))
        decision = lifecycle.may_confirm(user_id, self._facts(request), self.clock())
        if not decision.allowed:
            return self._refuse(request_id, user_id, "confirm", decision)
        # Restores of one deletion are confirmed one at a time, so that the second sees the first.
        source = request.restores_request if request.is_restore else None
        with self.lock_for(-source) if source is not None else nullcontext():
            busy = self.confirm_refusal(request)
            if busy:
                return self._refuse(request_id, user_id, "confirm", Decision.refuse("restore_in_flight", busy))
            return self._confirmed(request, user_id, reason)

    def _confirmed(self, request: Request, user_id: str, reason: str | None) -> Outcome:
        request_id = request.id
        reason = (reason or request.reason or "").strip()
        if not reason:
            return NEEDS_REASON
        channel = self.settings.approval_channel or request.origin_channel
        if not channel or channel.startswith("D"):
            advice = ("Requests started in a direct message need an approval channel: ask the bot's operators "
                      "to set APPROVAL_CHANNEL, or run /deletetags in the channel where approvers should see it.")
            return self._refuse(request_id, user_id, "confirm", Decision.refuse("no_channel", advice))
        if not self.store.claim_notice(request_id, "card"):
            return Outcome(False, f"Request #{request_id} has already been sent to the approvers.", "already_sent")
        return self._send_card(request, channel, reason, user_id)

    def _send_card(self, request: Request, channel: str, reason: str, user_id: str) -> Outcome:
        # Awaiting approval first, so the card's buttons work from the moment it appears.
        expires_at = lifecycle.approval_expiry(self.clock(), self.settings.approval_ttl_hours)
        if not self.store.transition(
            request.id, RequestState.AWAITING_APPROVAL, actor=user_id, kind="request.confirmed",
            detail={"channel": channel}, reason=reason, expires_at=expires_at, approval_channel=channel,
            expect=(RequestState.DRAFT.value,),
        ):
            self.store.release_notice(request.id, "card")
            return Outcome(False, f"Request #{request.id} was closed before it could be sent.", "closed")
        as_sent = dataclasses.replace(request, state=RequestState.AWAITING_APPROVAL.value, reason=reason,
                                      expires_at=expires_at)
        try:
            card_ts = self.notifier.post_card(as_sent, channel)
        except CardNotPosted as error:
            self.store.transition(request.id, RequestState.DRAFT, actor="system", kind="request.card_not_posted",
                                  detail={"channel": channel}, expect=(RequestState.AWAITING_APPROVAL.value,))
            self.store.release_notice(request.id, "card")
            return self._refuse(request.id, user_id, "confirm", Decision.refuse("card_not_posted", error.advice))
        self.store.notice_posted(request.id, "card", card_ts)
        self.store.update_request(request.id, card_ts=card_ts)
        link = self.notifier.permalink(channel, card_ts)
        where = f"<{link}|in <#{channel}>>" if link else f"to <#{channel}>"
        return Outcome(True, f":outbox_tray: Request #{request.id} was sent {where}. I will tell you when it is decided.")

    # --- approve / reject ----------------------------------------------------------------------

    def may_decide(self, request_id: int, user_id: str, action: Action) -> tuple[Request | None, Outcome]:
        request = self.store.get_request(request_id)
        if request is None:
            return None, self._refuse(None, user_id, action.value, Decision.refuse("not_found", gone(request_id).message))
        facts = self._facts(request)
        decision = lifecycle.may_decide(action, user_id, facts, self.approvers.current(), self.clock())
        if decision.allowed and user_id not in self.approvers.approver_ids:
            # Group membership comes from a cache; a group member's decision is checked against Slack now.
            decision = lifecycle.may_decide(action, user_id, facts, self.approvers.fresh(), self.clock())
        if decision.code == "expired":
            self.expire(request)
        if not decision.allowed:
            return request, self._refuse(request_id, user_id, action.value, decision)
        return request, Outcome(True, "")

    @one_at_a_time
    def approve(self, request_id: int, user_id: str) -> Outcome:
        request, check = self.may_decide(request_id, user_id, Action.APPROVE)
        if request is None or not check.ok:
            return check
        added, approvals = self.store.add_approval(request_id, user_id)
        if not added and user_id not in approvals:
            return Outcome(False, f"Request #{request_id} is no longer waiting for approval.", "closed")
        if lifecycle.approvals_reached(approvals, request.required_approvals):
            approvals = self._recheck_approvers(request, approvals)
        if not lifecycle.approvals_reached(approvals, request.required_approvals):
            self.notifier.refresh_card(request_id)
            return Outcome(True, f"Your approval is recorded: {len(approvals)} of {request.required_approvals}.")
        return self._approved(request, user_id, approvals)

    def _recheck_approvers(self, request: Request, approvals: tuple[str, ...]) -> tuple[str, ...]:
        """The last approval makes the request irreversible: every approval recorded before it must
        still come from an approver (someone may have left the group since they clicked)."""
        counting = lifecycle.approvals_that_count(approvals, request.requester_id, self.approvers.fresh())
        lapsed = [u for u in approvals if u not in counting]
        if not lapsed:
            return approvals
        log.info("approvals withdrawn: no longer approvers", extra={"request_id": str(request.id),
                                                                    "outcome": "approval_withdrawn"})
        return self.store.withdraw_approvals(request.id, lapsed, "no longer an approver")

    def _approved(self, request: Request, user_id: str, approvals: tuple[str, ...]) -> Outcome:
        request_id = request.id
        won = self.store.transition(
            request_id, RequestState.APPROVED, actor=user_id, kind="request.approved",
            detail={"approvals": list(approvals)}, decided_by=user_id, decided_at=self.clock(),
        )
        if not won:
            return Outcome(False, f"Request #{request_id} was already decided.", "already_decided")
        self.notifier.refresh_card(request_id)
        self.notifier.tell(request.requester_id, f":white_check_mark: Your {_kind(request)} request #{request_id} was approved by <@{user_id}>.")
        self.on_approved(request_id)
        starts = "The restore" if request.is_restore else "Deletion"
        return Outcome(True, f"You approved request #{request_id}. {starts} starts now.")

    @one_at_a_time
    def reject(self, request_id: int, user_id: str, reason: str) -> Outcome:
        request, check = self.may_decide(request_id, user_id, Action.REJECT)
        if request is None or not check.ok:
            return check
        won = self.store.transition(
            request_id, RequestState.REJECTED, actor=user_id, kind="request.rejected",
            detail={"reason": reason}, decided_by=user_id, decided_at=self.clock(), rejection_reason=reason,
        )
        if not won:
            return Outcome(False, f"Request #{request_id} was already decided.", "already_decided")
        self.notifier.refresh_card(request_id)
        self.notifier.tell(
            request.requester_id,
            f":no_entry: Your {_kind(request)} request #{request_id} was rejected by <@{user_id}>: {outside_text(reason)}",
        )
        self.on_closed(request_id)
        return Outcome(True, f"You rejected request #{request_id}.")

    # --- cancel and expiry --------------------------------------------------------------------

    @one_at_a_time
    def cancel(self, request_id: int, user_id: str) -> Outcome:
        request = self.store.get_request(request_id)
        if request is None:
            return self._refuse(None, user_id, "cancel", Decision.refuse("not_found", gone(request_id).message))
        decision = lifecycle.may_cancel(user_id, self._facts(request))
        if not decision.allowed:
            return self._refuse(request_id, user_id, "cancel", decision)
        won = self.store.transition(
            request_id, RequestState.CANCELLED, actor=user_id, kind="request.cancelled",
            expect=(RequestState.DRAFT.value, RequestState.AWAITING_APPROVAL.value), decided_by=user_id,
            decided_at=self.clock(),
        )
        if not won:
            return Outcome(False, f"Request #{request_id} was decided just before your click.", "already_decided")
        self.notifier.refresh_card(request_id)
        self.on_closed(request_id)
        return Outcome(True, f"Request #{request_id} is cancelled. Nothing was {'changed' if request.is_restore else 'deleted'}.")

    def expire(self, request: Request) -> bool:
        with self.lock_for(request.id):
            current = self.store.get_request(request.id)  # read again: the card may have been posted meanwhile
            return current is not None and self._expire(current)

    def _expire(self, request: Request) -> bool:
        won = self.store.transition(
            request.id, RequestState.EXPIRED, actor="system", kind="request.expired",
            expect=(RequestState.DRAFT.value, RequestState.AWAITING_APPROVAL.value),
        )
        if won and request.card_ts:
            self.notifier.refresh_card(request.id)
            what = ("The tags deleted before it was stopped are listed in the card's thread."
                    if self._started(request.id) else f"Nothing was {'changed' if request.is_restore else 'deleted'}.")
            self.notifier.tell(request.requester_id, f":hourglass: Your {_kind(request)} request #{request.id} expired: nobody decided in time. {what}")
        if won:
            self.on_closed(request.id)
        return won

    def _started(self, request_id: int) -> bool:
        """Whether a batch went out before the request was stopped for approval again."""
        return any(b.state != BatchState.PENDING for b in self.store.batches(request_id))

    def finish_reached(self) -> int:
        """At start-up: requests whose approvals were all recorded before a crash become approved."""
        finished = 0
        for request in self.store.requests(states=(RequestState.AWAITING_APPROVAL.value,), limit=10_000):
            approvals = self.store.approvals(request.id)
            if approvals and lifecycle.approvals_reached(approvals, request.required_approvals):
                approvals = self._recheck_approvers(request, approvals)
            if approvals and lifecycle.approvals_reached(approvals, request.required_approvals):
                with self.lock_for(request.id):
                    finished += self._approved(request, approvals[-1], approvals).ok
        return finished

    def expire_overdue(self) -> int:
        """Run from the scheduler and at start-up."""
        now = self.clock()
        open_requests = self.store.requests(
            states=(RequestState.DRAFT.value, RequestState.AWAITING_APPROVAL.value), limit=10_000
        )
        return sum(1 for r in open_requests if r.expires_at and r.expires_at <= now and self.expire(r))
