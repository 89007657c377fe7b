"""The poll-interval policy, as a pure function."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.polling import Bounds, Observation, eta_seconds, is_stalled, next_delay

BOUNDS = Bounds(2.0, 60.0)


def observed(elapsed: float, percent: int, *, first: tuple[float, int] = (2.0, 1), polls: int = 3,
             last_progress: float | None = None) -> Observation:
    return Observation(elapsed, percent, first[1], first[0], polls, elapsed if last_progress is None else last_progress)


@given(elapsed=st.floats(0, 1e6), percent=st.integers(0, 100), first_elapsed=st.floats(0, 1e6),
       first_percent=st.integers(0, 100), polls=st.integers(1, 10_000), quiet=st.floats(0, 1e6),
       low=st.floats(0.1, 100), span=st.floats(0, 1000))
def test_the_delay_always_stays_within_the_bounds(elapsed: float, percent: int, first_elapsed: float,
                                                   first_percent: int, polls: int, quiet: float,
                                                   low: float, span: float) -> None:
    observation = Observation(elapsed, percent, first_percent, min(first_elapsed, elapsed), polls,
                              max(0.0, elapsed - quiet))
    delay = next_delay(observation, Bounds(low, low + span))
    assert low <= delay <= low + span


def test_before_any_progress_the_delay_grows_geometrically_to_the_cap() -> None:
    delays = [next_delay(observed(2.0 * n, 1, polls=n, last_progress=0.0), BOUNDS) for n in range(1, 9)]
    assert delays[:5] == [2.0, 4.0, 8.0, 16.0, 32.0] and delays[-1] == 60.0


def test_with_progress_the_next_poll_aims_just_short_of_the_predicted_end() -> None:
    # 1% -> 51% in 100 s: 50%/100 s, so 98 s remain; the poll lands at three quarters of that.
    observation = observed(102.0, 51, first=(2.0, 1))
    assert round(eta_seconds(observation), 1) == 98.0
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
