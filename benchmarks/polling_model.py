"""A deterministic, full-scale model of how the bot polls activities (no network, no sleeping).

The activity's progress comes from the simulator's own model (`ActivityRecord.view`), the next
delay from the bot's own `bot.polling.next_delay`, and the observation is built the way
`Runner._observe` builds it: elapsed time since the batch was marked submitting, the percent at
the first poll, the time of the last change of percent, and the number of polls so far.

Every request can pass through a shared limiter that admits `limit` requests per `window`
seconds, first come first served, like the bot's client (4 per 1.05 s).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.polling import Bounds, Observation, next_delay
from bot.sandbox.cc_state import OUTCOME_COMPLETE, ActivityRecord


@dataclass(frozen=True)
class Polled:
    """One activity's result: status calls made, and seconds from its end to the poll that saw it."""

    duration: float
    calls: int
    delay: float


class Limiter:
    """At most `limit` grants in any `window` seconds, in request order."""

    def __init__(self, limit: int | None = 4, window: float = 1.05) -> None:
        self.limit = limit
        self.window = window
        self._granted: deque[float] = deque()
        self._last = 0.0

    def grant(self, at: float) -> float:
        if self.limit is None:
            return at
        when = max(at, self._last)
        while self._granted and when - self._granted[0] >= self.window:
            self._granted.popleft()
        if len(self._granted) >= self.limit:
            when = max(when, self._granted.popleft() + self.window)
        self._granted.append(when)
        self._last = when
        return when


@dataclass
class _Tracked:
    record: ActivityRecord
    calls: int = 0
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    index: int = field(compare=False)


def _record(index: int, created_at: float, duration: float) -> ActivityRecord:
    return ActivityRecord(f"activity-{index}", index, "contacts_tags_delete", ("tag",), ("tag",), created_at,
                          duration, OUTCOME_COMPLETE)


def adaptive(durations: Sequence[float], bounds: Bounds, limiter: Limiter) -> list[Polled]:
    """All activities approved at t=0: one POST each, then polls as the Runner schedules them."""
    tracked: list[_Tracked] = []
    queue: list[_Due] = []
    for index, duration in enumerate(durations):
        created = limiter.grant(0.0)
        tracked.append(_Tracked(_record(index, created, duration)))
        heapq.heappush(queue, _Due(created + bounds.minimum, index, index))
    results: dict[int, Polled] = {}
    seq = len(durations)
    while queue:
        due = heapq.heappop(queue)
        now = limiter.grant(due.at)
        follow_up = _poll(tracked[due.index], now, bounds)
        if follow_up is None:
            item = tracked[due.index]
            results[due.index] = Polled(item.record.duration, item.calls, now - item.record.settle_at)
        else:
            seq += 1
            heapq.heappush(queue, _Due(now + follow_up, seq, due.index))
    return [results[i] for i in range(len(durations))]


def _poll(item: _Tracked, now: float, bounds: Bounds) -> float | None:
    """One status call at `now`; None when it sees the end, else the delay until the next one."""
    item.calls += 1
    if now >= item.record.settle_at:
        return None
    percent = item.record.view(now).percent_done
    elapsed = now  # the batch was marked submitting at t=0, before its POST waited for the limiter
    if item.first is None:
        item.first = (elapsed, percent)
    if item.last is None or item.last[1] != percent:
        item.last = (elapsed, percent)
    observation = Observation(elapsed, percent, item.first[1], item.first[0], item.calls, item.last[0])
    return next_delay(observation, bounds)


def fixed(durations: Sequence[float], period: float) -> list[Polled]:
    """Poll every `period` seconds from creation, with no rate limit: calls and delay follow directly."""
    results = []
    for duration in durations:
        calls = max(1, math.ceil(duration / period - 1e-9))
        results.append(Polled(duration, calls, calls * period - duration))
    return results


def oracle(durations: Sequence[float]) -> list[Polled]:
    """One call exactly when the activity ends."""
    return [Polled(duration, 1, 0.0) for duration in durations]
