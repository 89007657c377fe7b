"""Operator tools behind `deletetags-bot check`, `cc-auth` and `audit`."""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import SettingsError, load_settings
from bot.logs import configure_logging


def only(environ: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The subset of the environment a tool reads, so an unrelated bad setting cannot stop it."""
    return {name: environ[name] for name in names if name in environ}


def configure_tool_logging(environ: Mapping[str, str], level: str = "WARNING") -> None:
    """Only `level` and above (DEBUG if LOG_LEVEL asks for it), redacted: a tool speaks on stdout."""
    try:
        settings = load_settings(environ)
    except SettingsError:
        secrets: list[str] = []
        fmt = "text"
    else:
        secrets = settings.secrets()
        level = "DEBUG" if settings.log_level == "DEBUG" else level
        fmt = settings.log_format
    configure_logging(level, fmt, secrets)
