"""A deterministic, full-scale model of how the bot polls activities (no network, no sleeping).

The activity's progress comes from the simulator's own model (`ActivityRecord.view`), the next
delay from the bot's own `bot.core.polling.next_delay`, and the observation from the same
`bot.core.polling.Track.seen` that `Runner._observe` calls, with the same inputs: elapsed time since
the batch was marked submitting, the percent read, the poll count, and the seconds since the
activity's `started_at` and `created_at` (written as the API writes them, to the millisecond,
and read back with `bot.core.polling.seconds_since`).

Every request can pass through a shared limiter that admits `limit` requests per `window`
seconds, like the bot's client (4 per 1.05 s), with polls going before waiting POSTs as the
client's gate lets them.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from bot.constant_contact import MAX_OVERTAKES
from bot.core.polling import Bounds, Observation, Track, next_delay, seconds_since
from bot.sandbox.cc_state import OUTCOME_COMPLETE, ActivityRecord, iso_time


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
    track: Track
    calls: int = 0


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    index: int = field(compare=False)


def _record(index: int, created_at: float, duration: float) -> ActivityRecord:
    return ActivityRecord(f"activity-{index}", index, "contacts_tags_delete", ("tag",), ("tag",), created_at,
                          duration, OUTCOME_COMPLETE)


def adaptive(durations: Sequence[float], bounds: Bounds, limiter: Limiter,
             max_overtakes: int = MAX_OVERTAKES) -> list[Polled]:
    """All activities approved at t=0: one POST each, then polls as the Runner schedules them.

    Whenever the previous request is granted, the client's gate picks the next: a poll due by then
    goes before the waiting POSTs, but at most `max_overtakes` polls in a row pass a waiting POST
    (`bot.constant_contact._TurnGate`). With `max_overtakes=0`, first come first served.
    """
    waiting_posts = deque(range(len(durations)))
    polls: list[_Due] = []
    tracked: dict[int, _Tracked] = {}
    results: dict[int, Polled] = {}
    free_at, overtakes, seq = 0.0, 0, 0
    while waiting_posts or polls:
        poll_waiting = bool(polls) and polls[0].at <= free_at
        if polls and (not waiting_posts or (poll_waiting and overtakes < max_overtakes)):
            due = heapq.heappop(polls)
            overtakes = overtakes + 1 if waiting_posts else 0
            now = free_at = limiter.grant(max(due.at, free_at))
            item = tracked[due.index]
            follow_up = _poll(item, now, bounds)
            if follow_up is None:
                results[due.index] = Polled(item.record.duration, item.calls, now - item.record.settle_at)
            else:
                seq += 1
                heapq.heappush(polls, _Due(now + follow_up, seq, due.index))
        else:
            index, overtakes = waiting_posts.popleft(), 0
            created = free_at = limiter.grant(free_at)
            tracked[index] = _Tracked(_record(index, created, durations[index]), Track.within(bounds))
            seq += 1
            heapq.heappush(polls, _Due(created + bounds.minimum, seq, index))
    return [results[i] for i in range(len(durations))]


def _poll(item: _Tracked, now: float, bounds: Bounds) -> float | None:
    """One status call at `now`; None when it sees the end, else the delay until the next one."""
    item.calls += 1
    if now >= item.record.settle_at:
        return None
    return next_delay(observe(item, now), bounds)


def observe(item: _Tracked, now: float) -> Observation:
    """What the Runner makes of a poll at `now` (the batch was marked submitting at t=0)."""
    view = item.record.view(now)
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    since_start = seconds_since(_timestamp(view.started_at), moment)
    since_created = seconds_since(_timestamp(view.created_at), moment)
    item.track, observation = item.track.seen(now, view.percent_done, item.calls, since_start, since_created)
    return observation


def _timestamp(epoch: float | None) -> str | None:
    """As the API writes it (milliseconds), to be read back the way the Runner reads it."""
    return None if epoch is None else iso_time(epoch)


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
