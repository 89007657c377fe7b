"""Fixtures of the reliability suites: the whole offline world with short poll bounds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.world import World
from tests.reliability.support import SimWall, start_fast_world


@pytest.fixture
def cc_wall() -> SimWall:
    return SimWall()


@pytest.fixture
def world(tmp_path: Path, world_env: dict[str, str], cc_wall: SimWall) -> Iterator[World]:
    started = start_fast_world(tmp_path, world_env, cc_wall)
    try:
        yield started
    finally:
        started.stop()
