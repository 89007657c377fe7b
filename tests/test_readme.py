"""README.md documents every command and every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.__main__ import cli
from bot.config import SETTINGS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_names_every_command_and_setting() -> None:
    text = README.read_text(encoding="utf-8")
    missing_commands = [c for c in sorted(cli.commands) if not re.search(rf"deletetags-bot {re.escape(c)}\b", text)]
    missing_settings = [s.name for s in SETTINGS if not re.search(rf"\b{s.name}\b", text)]
    assert not missing_commands, f"README.md does not show: {', '.join(missing_commands)}"
    assert not missing_settings, f"README.md does not describe: {', '.join(missing_settings)}"
