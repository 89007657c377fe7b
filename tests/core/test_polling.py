"""The poll-interval policy (pure), and the observation that the Runner and the model share."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Settings
from bot.constant_contact import parse_activity
from bot.core.polling import (
    GROWTH,
    MARGIN,
    Bounds,
    Observation,
    Track,
    end_window,
    eta_seconds,
    is_stalled,
    next_delay,
    seconds_since,
)
from bot.runner import Runner
from bot.sandbox.cc_state import OUTCOME_COMPLETE, ActivityRecord
from bot.sandbox.constant_contact import activity_json
from bot.store import Batch

# `benchmarks` is not installed: make the repository root importable, as benchmarks/run.py does.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import polling_model  # noqa: E402

BOUNDS = Bounds(2.0, 60.0)


def observed(elapsed: float, percent: int, *, first: tuple[float, int] = (2.0, 1), polls: int = 3,
             last_progress: float | None = None) -> Observation:
    return Observation(elapsed, percent, first[1], first[0], polls, elapsed if last_progress is None else last_progress)


def polled(*polls: tuple[float, int, float | None], track: Track | None = None) -> tuple[Track, Observation]:
    """Feed (elapsed, percent, seconds since started_at) polls to a track; the last observation."""
    track = Track.within(BOUNDS) if track is None else track
    observation = None
    for count, (elapsed, percent, since_start) in enumerate(polls, start=1):
        track, observation = track.seen(elapsed, percent, count, since_start)
    assert observation is not None
    return track, observation


# --- bounds ---------------------------------------------------------------------------------------


@given(elapsed=st.floats(0, 1e6), percent=st.integers(0, 100), first_elapsed=st.floats(0, 1e6),
       first_percent=st.integers(0, 100), polls=st.integers(1, 10_000), quiet=st.floats(0, 1e6),
       low=st.floats(0.1, 100), span=st.floats(0, 1000),
       window=st.none() | st.tuples(st.floats(0, 1e6), st.floats(0, 1e6) | st.just(math.inf)))
def test_the_delay_always_stays_within_the_bounds(elapsed: float, percent: int, first_elapsed: float,
                                                   first_percent: int, polls: int, quiet: float,
                                                   low: float, span: float,
                                                   window: tuple[float, float] | None) -> None:
    observation = Observation(elapsed, percent, first_percent, min(first_elapsed, elapsed), polls,
                              max(0.0, elapsed - quiet), window)
    delay = next_delay(observation, Bounds(low, low + span))
    assert low <= delay <= low + span


@given(steps=st.lists(st.tuples(st.floats(0.01, 500), st.integers(-3, 5), st.none() | st.floats(-50, 1000)),
                      min_size=1, max_size=30))
def test_whatever_constant_contact_reports_the_delay_stays_within_the_bounds(
        steps: list[tuple[float, int, float | None]]) -> None:
    track, elapsed, percent = Track.within(BOUNDS), 0.0, 1
    for count, (gap, change, since_start) in enumerate(steps, start=1):
        elapsed, percent = elapsed + gap, min(100, max(0, percent + change))
        track, observation = track.seen(elapsed, percent, count, since_start)
        assert BOUNDS.minimum <= next_delay(observation, BOUNDS) <= BOUNDS.maximum
        eta = eta_seconds(observation)
        assert eta is None or eta >= 0


# --- before any pace is known ---------------------------------------------------------------------


def test_before_any_progress_the_next_poll_comes_at_a_growing_multiple_of_the_time_so_far() -> None:
    track, elapsed, delays = Track.within(BOUNDS), 2.0, []
    for count in range(1, 6):
        track, observation = track.seen(elapsed, 1, count)  # queued: 1%, no started_at yet
        delays.append(next_delay(observation, BOUNDS))
        elapsed += delays[-1]
    assert delays[0] > 2 * BOUNDS.minimum  # no longer doubling from the minimum
    assert delays[1] > delays[0] and delays[-1] == BOUNDS.maximum


def test_growth_counts_from_when_constant_contact_created_the_activity() -> None:
    # Its POST waited 13 s behind others for the rate limit: the activity is 2 s old, not 15.
    _, queued = Track.within(BOUNDS).seen(15.0, 1, 1, since_start=None, since_created=2.0)
    assert queued.age == pytest.approx(2.0)
    assert next_delay(queued, BOUNDS) == pytest.approx((GROWTH - 1) * 2.0)
    _, unknown = Track.within(BOUNDS).seen(15.0, 1, 1)
    assert next_delay(unknown, BOUNDS) == BOUNDS.maximum


def test_started_but_still_at_one_percent_keeps_growing_the_delay() -> None:
    # It started 0.5 s ago: 1% says only that it will take at least 25 s more.
    _, observation = polled((12.0, 1, 0.5))
    assert observation.end_window is not None and math.isinf(observation.end_window[1])
    assert next_delay(observation, BOUNDS) >= observation.end_window[0] - 12.0


# --- with started_at ------------------------------------------------------------------------------


def test_the_end_window_uses_the_truncated_percent() -> None:
    # 10 s after its start at 50%: the share done is in [50, 51) %, so it takes 19.6 to 20 s in all.
    earliest, latest = end_window(2.0, 12.0, 50) or (0.0, 0.0)
    assert earliest == pytest.approx(2.0 + 1000 / 51) and latest == pytest.approx(22.0)
    assert end_window(2.0, 12.0, 1) == (pytest.approx(2.0 + 1000 / 2), math.inf)
    assert end_window(12.0, 12.0, 5) is None  # started this very moment: nothing to tell


def test_one_processing_poll_with_started_at_aims_at_the_earliest_plausible_end() -> None:
    # Submitted at 0, started at 2, 50% at 12: it ends between ~21.6 and ~22.4 s.
    _, observation = polled((12.0, 50, 10.0))
    assert observation.end_window is not None
    earliest, latest = observation.end_window
    assert 21.0 < earliest < 22.0 < latest < 23.0
    poll_at = 12.0 + next_delay(observation, BOUNDS)
    assert poll_at == pytest.approx(min(latest, earliest + MARGIN * BOUNDS.minimum))
    assert round(eta_seconds(observation) or 0, 1) == pytest.approx(10.0, abs=0.5)


def test_one_poll_with_started_at_then_sees_the_end_of_a_simulated_activity() -> None:
    record = ActivityRecord("a", 0, "contacts_tags_delete", ("t",), ("t",), 0.0, 10.0, OUTCOME_COMPLETE)
    item = polling_model._Tracked(record, Track.within(BOUNDS), calls=1)
    observation = polling_model.observe(item, 2.0)  # started at 1 s, 11% done
    assert observation.percent == 11 and observation.end_window is not None
    poll_at = 2.0 + next_delay(observation, BOUNDS)
    assert record.settle_at <= poll_at <= record.settle_at + MARGIN * BOUNDS.minimum


def test_a_long_activity_is_still_polled_at_least_every_poll_max() -> None:
    # Started 60 s in, 10% at 114 s: about 480 s to go; people watch the progress bar meanwhile.
    _, observation = polled((114.0, 10, 54.0))
    assert observation.end_window is not None and observation.end_window[0] > 500
    assert next_delay(observation, BOUNDS) == BOUNDS.maximum


def test_without_started_at_the_pace_comes_from_two_polls() -> None:
    track, first = polled((2.0, 1, None))
    assert first.end_window is None and next_delay(first, BOUNDS) > BOUNDS.minimum
    _, observation = polled((12.0, 21, None), track=track)
    assert observation.end_window is None
    # 1% -> 21% in 10 s: 2%/s, 79% left: 39.5 s; the poll lands at three quarters of that.
    assert eta_seconds(observation) == pytest.approx(39.5)
    assert next_delay(observation, BOUNDS) == pytest.approx(39.5 * 0.75)


def test_moving_on_the_first_poll_without_started_at_polls_again_soon() -> None:
    # First seen at 93% 13 s after submission (the poll waited behind others): no pace yet, but it
    # cannot be far from the end.
    _, observation = polled((13.0, 93, None))
    assert next_delay(observation, BOUNDS) == BOUNDS.minimum


@pytest.mark.parametrize("polls", [
    pytest.param([(12.0, 50, -5.0)], id="started in the future"),
    pytest.param([(12.0, 50, 20.0)], id="started before we submitted"),
    pytest.param([(12.0, 50, 10.0), (14.0, 60, 7.0)], id="started_at moved"),
    pytest.param([(12.0, 50, 10.0), (14.0, 40, 12.0)], id="percent went backwards"),
    pytest.param([(12.0, 50, 10.0), (20.0, 52, 18.0)], id="pace not steady"),
])
def test_odd_started_at_falls_back_to_the_two_poll_pace(polls: list[tuple[float, int, float | None]]) -> None:
    track, observation = polled(*polls)
    assert observation.end_window is None and not track.believed
    _, later = polled((30.0, 90, polls[-1][2]), track=track)
    assert later.end_window is None  # not believed again for this activity
    assert next_delay(later, BOUNDS) == pytest.approx(
        min(BOUNDS.maximum, max(BOUNDS.minimum, (eta_seconds(later) or 0) * 0.75)))


def test_created_before_we_submitted_means_clock_skew() -> None:
    track, observation = Track.within(BOUNDS).seen(12.0, 50, 1, since_start=10.0, since_created=15.0)
    assert observation.end_window is None and not track.believed
    _, fine = Track.within(BOUNDS).seen(12.0, 50, 1, since_start=10.0, since_created=11.9)
    assert fine.end_window is not None


def test_percent_going_backwards_anchors_the_pace_again() -> None:
    _, observation = polled((2.0, 1, None), (10.0, 40, None), (12.0, 20, None))
    assert (observation.first_elapsed, observation.first_percent) == (12.0, 20)
    assert eta_seconds(observation) is None


def test_the_eta_for_status_answers_counts_down_between_polls() -> None:
    track, observation = polled((12.0, 50, 10.0))
    later = track.at(17.0, 1)
    assert later is not None and later.end_window == observation.end_window
    assert (eta_seconds(observation) or 0) - (eta_seconds(later) or 0) == pytest.approx(5.0)
    assert Track().at(17.0, 0) is None


# --- reading Constant Contact's timestamps ---------------------------------------------------------


def test_seconds_since_reads_constant_contacts_timestamps() -> None:
    now = datetime(2024, 5, 1, 12, 0, 10, tzinfo=timezone.utc)
    assert seconds_since("2024-05-01T12:00:00.250Z", now) == pytest.approx(9.75)
    assert seconds_since("2024-05-01T14:00:00+02:00", now) == pytest.approx(10.0)
    assert seconds_since("2024-05-01T12:00:00", now) == pytest.approx(10.0)  # no zone: UTC
    assert seconds_since("2024-05-01T12:00:20Z", now) == pytest.approx(-10.0)
    assert seconds_since("soon", now) is None and seconds_since(None, now) is None and seconds_since("", now) is None


# --- the existing two-poll pace and the stall rule -------------------------------------------------


def test_with_progress_the_next_poll_aims_just_short_of_the_predicted_end() -> None:
    # 1% -> 51% in 100 s: 50%/100 s, so 98 s remain; the poll lands at three quarters of that.
    observation = observed(102.0, 51, first=(2.0, 1))
    assert round(eta_seconds(observation) or 0, 1) == 98.0
    assert next_delay(observation, BOUNDS) == 60.0
    near_end = observed(196.0, 98, first=(2.0, 1))
    assert 2.0 <= next_delay(near_end, BOUNDS) < 4.0


def test_an_activity_quiet_for_ten_minutes_is_stalled_and_polled_slowly() -> None:
    observation = observed(700.0, 50, first=(2.0, 1), last_progress=90.0)
    assert is_stalled(observation) and next_delay(observation, BOUNDS) == 60.0


def test_an_activity_far_past_its_predicted_end_is_stalled() -> None:
    # Progressed at 1%/s to 50% at 51 s (expected end ~101 s); nothing since, now at 400 s.
    assert is_stalled(observed(400.0, 50, first=(2.0, 1), last_progress=51.0))
    assert not is_stalled(observed(120.0, 50, first=(2.0, 1), last_progress=51.0))


def test_a_healthy_activity_is_not_stalled() -> None:
    assert not is_stalled(observed(50.0, 40, first=(2.0, 1)))
    assert not is_stalled(observed(30.0, 1, first=(2.0, 1), last_progress=0.0))


def test_an_activity_stuck_with_started_at_is_stalled_and_polled_slowly() -> None:
    # Started at 2 s, 1%/s up to 50% at 52 s, then frozen: the window closes, then the stall rule.
    polls = [(2.0 + 10 * i, min(50, 10 * i), 10.0 * i) for i in range(1, 80)]
    track, observation = polled(*polls)
    assert not track.believed and is_stalled(observation)
    assert next_delay(observation, BOUNDS) == BOUNDS.maximum


# --- the Runner and the benchmark model observe alike ----------------------------------------------


def _batch(poll_count: int) -> Batch:
    return Batch(7, 1, 0, "processing", "a", 1, 0, None, None, (), datetime.fromtimestamp(0, timezone.utc), None,
                 None, poll_count)


@pytest.mark.parametrize("duration", [10.0, 27.3, 145.0, 600.0])
def test_the_runner_and_the_model_make_the_same_observations(duration: float) -> None:
    record = ActivityRecord("a", 0, "contacts_tags_delete", ("t",), ("t",), 0.0, duration, OUTCOME_COMPLETE)
    clock = {"now": 0.0}
    runner = Runner(cast(Any, None), lambda: None, cast(Any, None), cast(Any, None), Settings(),
                    lambda: datetime.fromtimestamp(clock["now"], timezone.utc))
    item = polling_model._Tracked(record, Track.within(runner.bounds))
    now, polls = BOUNDS.minimum, 0
    while now < record.settle_at:
        clock["now"] = now = round(now, 6)  # the Runner's clock is a datetime: microseconds
        item.calls = polls = polls + 1
        modelled = polling_model.observe(item, now)
        activity = parse_activity(activity_json(record, now))  # what the API sends, as the client reads it
        assert runner._observe(_batch(polls - 1), activity) == modelled
        status = runner.observation(_batch(polls))
        assert status is not None and status.end_window == modelled.end_window
        now += next_delay(modelled, runner.bounds)
    assert modelled.end_window is not None  # the simulator's started_at was used throughout
    assert now - record.settle_at <= MARGIN * BOUNDS.minimum
