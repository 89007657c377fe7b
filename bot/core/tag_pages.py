"""Every tag of a request, largest first, in pages of a modal. Pure.

The card names at most `blocks.LISTED_TAGS` tags; an approver must still be able to read the whole
list before approving, so the card's "See all tags" button opens this modal. A Slack modal holds at
most 100 blocks and a section 3,000 characters, so a request of 5,000 tags is shown a page at a time
(Previous / Next update the same modal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.core import blocks
from bot.core.blocks import Block, TagLine
from bot.core.request_numbers import request_number

VIEW_ALL_TAGS = "all_tags"
ACTION_SHOW_TAGS = blocks.ACTION_SHOW_TAGS
ACTION_PREVIOUS_PAGE = "tags_page_previous"  # Slack refuses two buttons with one action_id in a block
ACTION_NEXT_PAGE = "tags_page_next"
TAGS_PER_PAGE = 100


def page_count(tag_count: int, per_page: int = TAGS_PER_PAGE) -> int:
    return max(1, -(-tag_count // per_page))


def page_value(request_id: int, page: int) -> str:
    return f"{request_id}:{page}"


def parse_page_value(value: str) -> tuple[int, int] | None:
    """`request:page` from a Previous / Next button; None for anything else."""
    request, _, page = value.partition(":")
    request_id, page_no = request_number(request), request_number(page)
    return None if request_id is None or page_no is None else (request_id, page_no)


def _packed_sections(lines: Sequence[str]) -> list[Block]:
    """As few sections as the lines fit in, none over Slack's limit."""
    sections: list[Block] = []
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > blocks.SECTION_LIMIT:
            sections.append(blocks.section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        sections.append(blocks.section("\n".join(chunk)))
    return sections


def _navigation(request_id: int, page: int, pages: int) -> Block | None:
    buttons = []
    if page > 0:
        buttons.append(blocks.button("◀ Previous", ACTION_PREVIOUS_PAGE, page_value(request_id, page - 1)))
    if page + 1 < pages:
        buttons.append(blocks.button("Next ▶", ACTION_NEXT_PAGE, page_value(request_id, page + 1)))
    return {"type": "actions", "block_id": f"tags_page:{request_id}", "elements": buttons} if buttons else None


def _line(tag: TagLine, large_threshold: int, not_done_because: str | None, done: str) -> str:
    line = blocks.tag_line(tag, large_threshold, old_ids=done == "restored")
    return line if not_done_because is None else f"{line} — :x: not {done}: {not_done_because}"


def all_tags_modal(request_id: int, tags: Sequence[TagLine], page: int, large_threshold: int,
                   not_deleted: Mapping[str, str] | None = None, done: str = "deleted") -> dict[str, Any]:
    """`not_deleted`: for a finished request, the reason (mrkdwn) of each tag it did not delete (or,
    `done="restored"`, restore); those come first, so the summary's "…and N more" can point here."""
    not_deleted = not_deleted or {}
    ordered = sorted(blocks.largest_first(tags), key=lambda t: t.tag_id not in not_deleted)
    pages = page_count(len(ordered))
    page = max(0, min(page, pages - 1))
    shown = ordered[page * TAGS_PER_PAGE:(page + 1) * TAGS_PER_PAGE]
    large = sum(1 for t in ordered if blocks.is_large_tag(t, large_threshold))
    heading = (f"*Request #{request_id}*: {blocks.count(len(ordered), 'tag')}, largest first"
               + (f"; {blocks.count(large, 'large tag')} ({large_threshold:,}+ contacts)" if large else "")
               + (f"; {blocks.count(len(not_deleted), 'tag')} not {done}, listed first" if not_deleted else "")
               + f". Page {page + 1} of {pages}.")
    body: list[Block] = [blocks.section(heading)]
    body += _packed_sections([_line(t, large_threshold, not_deleted.get(t.tag_id), done) for t in shown])
    navigation = _navigation(request_id, page, pages)
    if navigation is not None:
        body.append(navigation)
    return {
        "type": "modal",
        "callback_id": VIEW_ALL_TAGS,
        "private_metadata": str(request_id),
        "title": blocks.plain(f"Tags of #{request_id}"[:24]),
        "close": blocks.plain("Close"),
        "blocks": body,
    }
