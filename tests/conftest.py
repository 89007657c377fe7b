"""Shared fixtures: the whole offline world (simulator, emulator, the real app over HTTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from bot.sandbox.world import World, start_world

hypothesis_settings.register_profile("long", max_examples=10_000, deadline=None)
hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    # Nothing in the suite may reach a real Slack or Constant Contact.
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "CC_REFRESH_TOKEN", "CC_CLIENT_SECRET"):
        os.environ.pop(name, None)


@pytest.fixture
def world_env() -> dict[str, str]:
    """Settings a test wants to change for its world (override in the test module)."""
    return {}


@pytest.fixture
def world(tmp_path: Path, world_env: dict[str, str]) -> Iterator[World]:
    started = start_world(tmp_path, env=world_env, activity_seconds=0.5)
    try:
        yield started
    finally:
        started.stop()
