"""When to ask Constant Contact about an activity next. Pure.

Constant Contact sends no completion callback, so the bot polls; every poll spends the API key's
shared quota (4/s, 10,000/day). Before any progress is seen the delay grows geometrically from
the minimum. Once `percent_done` moves, the observed rate predicts the end, and the next poll is
aimed just short of it (a fraction of the predicted remaining time), so the poll that sees the
end comes soon after it without polling a slow activity every few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

AIM = 0.75  # poll at this share of the predicted remaining time
STALL_FACTOR = 3.0  # "stalled" once it runs this many times longer than predicted
STALL_MIN_SECONDS = 600.0  # or once no progress has been seen for this long


@dataclass(frozen=True)
class Observation:
    """What the bot knows about one running activity at the moment of a poll."""

    elapsed: float  # seconds since the activity was submitted
    percent: int  # percent_done now
    first_percent: int  # percent_done at the first poll that saw the activity
    first_elapsed: float  # elapsed at that first poll
    polls: int  # polls made so far, including this one
    last_progress_elapsed: float  # elapsed when percent_done last changed


@dataclass(frozen=True)
class Bounds:
    minimum: float = 2.0
    maximum: float = 60.0


def rate(observation: Observation) -> float | None:
    """Percent per second since the first poll, or None while no progress has been seen."""
    moved = observation.percent - observation.first_percent
    spent = observation.elapsed - observation.first_elapsed
    if moved <= 0 or spent <= 0:
        return None
    return moved / spent


def predicted_remaining(observation: Observation) -> float | None:
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
    remaining = predicted_remaining(observation)
    if remaining is None:
        delay = bounds.minimum * 2.0 ** min(30, max(0, observation.polls - 1))
    else:
        delay = remaining * AIM
    return min(bounds.maximum, max(bounds.minimum, delay))


def eta_seconds(observation: Observation) -> float | None:
    """For status answers: seconds until the activity should end, if the rate is known."""
    return predicted_remaining(observation)
