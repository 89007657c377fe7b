"""The daily-quota ledger: every Constant Contact call counted by UTC day in the database.

Counted: every call that reached Constant Contact, whatever the answer, except 429s (a throttled
or over-quota call is refused before it counts) and calls whose connection never opened. A
`quota_exceeded` answer marks the day used up, whatever the count says: the quota is per API key,
and another program may share the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from bot.core import quota

from bot.constant_contact import CallSeen
from bot.metrics import Metrics
from bot.core.quota import Estimate, QuotaDay, utc_day
from bot.store import Store


class QuotaLedger:
    def __init__(self, store: Store, clock: Callable[[], datetime], limit: int, reserve: int,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.clock = clock
        self.limit = limit
        self.reserve = reserve
        self.metrics = metrics

    def record(self, call: CallSeen) -> None:
        """The client's call hook (any thread)."""
        day = utc_day(self.clock())
        if call.status != 429:
            self.store.count_cc_call(day)
        elif call.error_key == "quota_exceeded":
            self.store.mark_quota_exhausted(day)
        if self.metrics is not None:
            self.metrics.cc_call(call.method, call.endpoint, call.status, call.error_key)

    def today(self) -> QuotaDay:
        day = utc_day(self.clock())
        used, exhausted = self.store.cc_calls(day)
        return QuotaDay(day, self.limit, used, self.reserve, exhausted)


class QuotaCheck:
    """A request's estimated cost against what is left today: at preview, and before it starts."""

    def __init__(self, ledger: QuotaLedger, poll_min: float, poll_max: float) -> None:
        self.ledger = ledger
        self.poll_min = poll_min
        self.poll_max = poll_max

    def estimate(self, contact_counts: Sequence[int | None], account_tags: int, snapshot: bool = False) -> Estimate:
        return quota.estimate(contact_counts, account_tags, self.poll_min, self.poll_max, snapshot)

    def restore_estimate(self, activity_contacts: Sequence[int], tags: int, names_taken: int = 0,
                         account_tags: int = 0) -> Estimate:
        return quota.restore_estimate(activity_contacts, tags, self.poll_min, self.poll_max, names_taken, account_tags)

    def refusal(self, estimate: Estimate) -> str | None:
        """Why a preview cannot go on, or None when the request can finish today."""
        day = self.ledger.today()
        if day.admits(estimate):
            return None
        return quota.refusal_text(estimate, day, self.ledger.clock())
