"""Fixtures: a Constant Contact simulator on a hand-driven clock, with its rate limits out of the way.

Import them into a test module (`from tests.manual_simulator import clock, sim`); tests move time with
`clock.advance(...)`, and a simulator that answered any request with an internal error fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.world import ManualClock

ACTIVITY_SECONDS = 10.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[ConstantContactSimulator]:
    simulator = ConstantContactSimulator(requests_per_second=10_000, activity_seconds=ACTIVITY_SECONDS,
                                         access_token_seconds=30 * 86_400, clock=clock)
    simulator.token_requests_per_second = 10_000
    with simulator:
        yield simulator
    assert simulator.internal_errors == []
