"""Request numbers as people type them (`/deletetags status 12`) and as buttons and modals carry them. Pure."""

from __future__ import annotations

import re

from bot.core.mrkdwn import outside_text

# ASCII digits only: str.isdigit() also accepts "²", "①" or "٣", which int() then refuses or reads
# as another number. Eleven digits at most, so that the number fits SQLite's integer.
_REQUEST_NUMBER = re.compile(r"[0-9]{1,11}")
ARGUMENT_SHOWN = 40  # characters of a mistyped argument quoted back


def request_number(value: str | None) -> int | None:
    """A button's or a modal's request number: ASCII digits and nothing else, or None."""
    return int(value) if value and _REQUEST_NUMBER.fullmatch(value) else None


def typed_request_number(argument: str | None) -> int | None:
    """What people type after `status` or `cancel`: `12` or `#12`, spaces around allowed."""
    return request_number((argument or "").strip().removeprefix("#"))


def not_a_request_number(argument: str, subcommand: str) -> str:
    shown = outside_text(argument, ARGUMENT_SHOWN) or " "
    return f"`{shown}` is not a request number; use digits, e.g. `/deletetags {subcommand} 12`."
