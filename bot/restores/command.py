"""`/deletetags restore N ["name" …] [tag ids] [reason: …]` as people type it. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core import tags
from bot.core.request_numbers import not_a_request_number, typed_request_number

USAGE = ('`/deletetags restore 12` restores every tag request #12 deleted; `/deletetags restore 12 "Spring Promo" '
         'reason: deleted by mistake` only the tags named (in quotes) or given by id.')


@dataclass(frozen=True)
class RestoreCommand:
    request_id: int
    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    reason: str | None = None


def parse_restore(argument: str | None) -> RestoreCommand | str:
    """The restore asked for, or the message that says what could not be read."""
    words = (argument or "").split(None, 1)
    if not words:
        return f"Which request? {USAGE}"
    request_id = typed_request_number(words[0])
    if request_id is None:
        return not_a_request_number(words[0], "restore")
    rest = words[1] if len(words) > 1 else ""
    try:
        parsed = tags.parse_command(rest)
    except tags.InputError as error:
        return error.message
    if parsed.kind == "modal":
        return RestoreCommand(request_id)
    if parsed.kind != "request" or parsed.selection is None:
        return f"After the request number, give tag names in quotes or tag ids. {USAGE}"
    selection = parsed.selection
    if selection.junk_count:
        return f"These entries were not used:\n{selection.junk_summary()}\n{USAGE}"
    return RestoreCommand(request_id, selection.ids, selection.names, parsed.reason)
