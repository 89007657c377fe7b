"""Shared fixtures for the operations commands."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def tool_logging_removed() -> Iterator[None]:
    """The CLI installs a stderr handler bound to CliRunner's stream; take it away afterwards."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, "_deletetags", False)]:
        root.removeHandler(handler)
    root.setLevel(level)
