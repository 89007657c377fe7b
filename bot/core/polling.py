"""When to ask Constant Contact about an activity next. Pure.

Constant Contact sends no completion callback, so the bot polls; every poll spends the API key's
shared quota (4/s, 10,000/day). A `Track` remembers what the polls of one activity saw and turns
each poll into an `Observation` (the Runner and the benchmark model both go through it);
`next_delay` turns an observation into the wait before the next poll:

* Once the activity reports `started_at`, one poll bounds its end: `percent_done` is a truncated
  share of the processing time, so the end lies between the pace of percent + 1 and that of
  percent. The next poll is aimed at the earliest plausible end, plus a small margin (never
  later than POLL_MAX, never sooner than POLL_MIN).
* Without a believable `started_at`, the pace is measured between two polls once `percent_done`
  moves, and the next poll is aimed just short of the predicted end.
* Before either (queued, or started but still at 1%), the bot polls at a growing multiple of the
  time since submission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone

GROWTH = 6.0  # before any pace is known: poll at this multiple of the activity's age
STEP = 10  # moving but not timed yet: poll when it must have moved this many percent more
AIM = 0.75  # two-poll pace: poll at this share of the predicted remaining time
MARGIN = 2.0  # started_at: poll up to this many POLL_MIN after the earliest plausible end
# Our "seconds since started_at" may be off by network latency and clock skew: allow this share
# of POLL_MIN either way (a share, so that it scales with the polling bounds).
TIMING_SHARE = 0.1
STALL_FACTOR = 3.0  # "stalled" once it runs this many times longer than predicted
STALL_MIN_SECONDS = 600.0  # or once no progress has been seen for this long


@dataclass(frozen=True)
class Observation:
    """What the bot knows about one running activity at the moment of a poll."""

    elapsed: float  # seconds since the activity was submitted
    percent: int  # percent_done now
    first_percent: int  # percent_done when the two-poll pace was anchored
    first_elapsed: float  # elapsed at that anchor
    polls: int  # polls made so far, including this one
    last_progress_elapsed: float  # elapsed when percent_done last changed
    # (earliest, latest) elapsed at which the activity can end, judged from started_at; latest is
    # math.inf while percent_done says too little. None: no started_at, or not believed.
    end_window: tuple[float, float] | None = None
    # Seconds since Constant Contact created the activity, when it said so believably. Its POST may
    # have waited behind others for the rate limit, so this can be much less than `elapsed`.
    age: float | None = None


@dataclass(frozen=True)
class Bounds:
    minimum: float = 2.0
    maximum: float = 60.0


# --- what the polls of one activity saw -------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """The memory of one activity's polls. Immutable: `seen` returns the next one."""

    first: tuple[float, int] | None = None  # (elapsed, percent) anchoring the two-poll pace
    last: tuple[float, int] | None = None  # (elapsed, percent) when percent last changed
    started: float | None = None  # elapsed at which Constant Contact began processing
    window: tuple[float, float] | None = None  # see Observation.end_window
    believed: bool = True  # False once started_at or percent_done contradicted themselves
    slack: float = 0.0  # seconds by which our time since started_at may be off, either way
    created: float | None = None  # elapsed at which Constant Contact created the activity

    @classmethod
    def within(cls, bounds: Bounds) -> Track:
        """A new track, with the timing slack that suits these polling bounds."""
        return cls(slack=TIMING_SHARE * bounds.minimum)

    def seen(self, elapsed: float, percent: int, polls: int, since_start: float | None = None,
             since_created: float | None = None) -> tuple[Track, Observation]:
        """After a poll at `elapsed` that read `percent` (the `polls`-th poll), with the seconds since
        the activity's started_at and created_at when Constant Contact gave them."""
        if self.last is not None and percent < self.last[1]:
            # Percent went backwards: start the two-poll pace over, and stop believing started_at.
            first = last = (elapsed, percent)
            track = Track(first, last, believed=False, slack=self.slack)
        else:
            # While percent stays at its first value (queued), the pace is anchored anew at each poll.
            first = self.first if self.first is not None and percent != self.first[1] else (elapsed, percent)
            last = self.last if self.last is not None and percent == self.last[1] else (elapsed, percent)
            track = replace(self, first=first, last=last)._created(elapsed, since_created)
            track = track._started(elapsed, percent, since_start, since_created)
        return track, track._observation(elapsed, polls, first, last)

    def at(self, elapsed: float, polls: int) -> Observation | None:
        """What is known at `elapsed` without polling (status answers); None before the first poll."""
        if self.first is None or self.last is None:
            return None
        return self._observation(elapsed, polls, self.first, self.last)

    def _observation(self, elapsed: float, polls: int, first: tuple[float, int],
                     last: tuple[float, int]) -> Observation:
        believed = self.believed
        age = elapsed - self.created if believed and self.created is not None else None
        return Observation(elapsed, last[1], first[1], first[0], polls, last[0],
                           self.window if believed else None, age)

    def _created(self, elapsed: float, since_created: float | None) -> Track:
        if since_created is None or self.created is not None:
            return self
        created = elapsed - since_created
        return replace(self, created=created) if -self.slack <= created <= elapsed + self.slack else self

    def _started(self, elapsed: float, percent: int, since_start: float | None,
                 since_created: float | None) -> Track:
        if not self.believed or since_start is None:
            return self
        start = elapsed - since_start
        if not self._plausible(start, since_start, None if since_created is None else elapsed - since_created):
            return replace(self, window=None, believed=False)
        window = _intersect(self.window, end_window(start, elapsed, percent, self.slack))
        if window is not None and window[0] > window[1]:
            return replace(self, window=None, believed=False)  # the pace is not steady after all
        return replace(self, started=start, window=window)

    def _plausible(self, start: float, since_start: float, created: float | None) -> bool:
        # Clock skew between Constant Contact and us shows as an activity created or started before
        # we submitted it, or started in the future; started_at (to the millisecond) never changes.
        moved = self.started is not None and abs(start - self.started) > self.slack + 0.001
        early = start < -self.slack or (created is not None and created < -self.slack)
        return since_start >= -self.slack and not early and not moved


def end_window(start: float, elapsed: float, percent: int, slack: float = 0.0) -> tuple[float, float] | None:
    """When an activity that started at `start` and shows `percent` at `elapsed` can end, at a
    steady pace, if the time since its start may be off by `slack` seconds.

    percent_done is truncated, so the share done lies in [percent, percent + 1) %. Constant Contact
    shows 1% from the moment an activity is queued, so 1% (or 0%) gives no latest end.
    """
    spent = elapsed - start
    if spent <= 0:
        return None
    earliest = start + max(0.0, spent - slack) * 100 / (percent + 1)
    latest = start + (spent + slack) * 100 / percent if percent >= 2 else math.inf
    return max(earliest, elapsed), latest


def _intersect(a: tuple[float, float] | None, b: tuple[float, float] | None) -> tuple[float, float] | None:
    if a is None or b is None:
        return a or b
    return max(a[0], b[0]), min(a[1], b[1])


def seconds_since(timestamp: str | None, now: datetime) -> float | None:
    """Seconds from one of Constant Contact's ISO-8601 timestamps (started_at, created_at) to `now`."""
    if not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (_utc(now) - _utc(moment)).total_seconds()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# --- the policy ---------------------------------------------------------------------------------


def rate(observation: Observation) -> float | None:
    """Percent per second since the anchor, or None while no progress has been seen."""
    moved = observation.percent - observation.first_percent
    spent = observation.elapsed - observation.first_elapsed
    if moved <= 0 or spent <= 0:
        return None
    return moved / spent


def predicted_remaining(observation: Observation) -> float | None:
    if observation.end_window is not None:
        earliest, latest = observation.end_window
        end = earliest if math.isinf(latest) else (earliest + latest) / 2
        return max(0.0, end - observation.elapsed)
    speed = rate(observation)
    if speed is None:
        return None
    return max(0.0, (100 - observation.percent) / speed)


def predicted_total_at_last_progress(observation: Observation) -> float | None:
    """When the activity should have ended, judged by its pace up to the last progress seen."""
    moved = observation.percent - observation.first_percent
    spent = observation.last_progress_elapsed - observation.first_elapsed
    if moved <= 0 or spent <= 0:
        return None
    return observation.last_progress_elapsed + (100 - observation.percent) * spent / moved


def is_stalled(observation: Observation) -> bool:
    quiet = observation.elapsed - observation.last_progress_elapsed
    if quiet >= STALL_MIN_SECONDS:
        return True
    expected = predicted_total_at_last_progress(observation)
    return expected is not None and quiet > 60 and observation.elapsed > STALL_FACTOR * expected


def next_delay(observation: Observation, bounds: Bounds) -> float:
    """Seconds until the next poll, always within the bounds."""
    if is_stalled(observation):
        return bounds.maximum
    return min(bounds.maximum, max(bounds.minimum, _wanted_delay(observation, bounds)))


def _wanted_delay(observation: Observation, bounds: Bounds) -> float:
    if observation.end_window is not None:
        earliest, latest = observation.end_window
        if math.isinf(latest):  # started, but too early to tell its pace: keep growing the delay
            return max(earliest - observation.elapsed, (GROWTH - 1) * _age(observation))
        return min(latest, earliest + MARGIN * bounds.minimum) - observation.elapsed
    remaining = predicted_remaining(observation)
    if remaining is not None:
        return remaining * AIM
    if observation.percent > 1:
        # Moving but not timed yet: it got this far in at most the time since submission.
        return min(STEP, 100 - observation.percent) * observation.elapsed / observation.percent
    return (GROWTH - 1) * _age(observation)


def _age(observation: Observation) -> float:
    return observation.age if observation.age is not None else observation.elapsed


def eta_seconds(observation: Observation) -> float | None:
    """For status answers: seconds until the activity should end, if the pace is known."""
    return predicted_remaining(observation)
