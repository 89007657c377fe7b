"""App Home's "Tag health": how the account's tags stand, with a button that previews a clean-up. Pure.

Figures come from one listing of the account (with contact counts), at most a minute old.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core import blocks
from bot.core.blocks import Block
from bot.core.resolver import AccountTag

ACTION_PREVIEW_RULE = "health_preview_rule"
LARGEST_SHOWN = 5
SOURCES_SHOWN = 6
NO_SOURCE = "no source recorded"


class HealthTag(AccountTag, Protocol):
    @property
    def tag_source(self) -> str | None: ...


@dataclass(frozen=True)
class TagHealth:
    total: int
    empty: int
    largest: tuple[blocks.TagLine, ...]
    by_source: tuple[tuple[str, int], ...]  # most common first


def health_of(account_tags: Sequence[HealthTag]) -> TagHealth:
    largest = sorted(account_tags, key=lambda t: (-(t.contacts_count or 0), t.name.casefold()))[:LARGEST_SHOWN]
    sources = Counter(t.tag_source or NO_SOURCE for t in account_tags)
    return TagHealth(
        total=len(account_tags),
        empty=sum(1 for t in account_tags if t.contacts_count == 0),
        largest=tuple(blocks.tag_lines(largest)),
        by_source=tuple(sorted(sources.items(), key=lambda item: (-item[1], item[0]))),
    )


def health_blocks(health: TagHealth | None) -> list[Block]:
    """The App Home part; `None` when Constant Contact could not be asked just now."""
    out: list[Block] = [blocks.section("*Tag health*")]
    if health is None:
        return out + [blocks.context("Constant Contact could not be reached just now; open this tab again later.")]
    share = f" ({health.empty * 100 // health.total}%)" if health.total else ""
    out.append(blocks.section(f"{blocks.count(health.total, 'tag')} in Constant Contact, "
                              f"*{blocks.count(health.empty, 'empty tag')}*{share} on no contact."))
    if health.largest:
        out.append(blocks.section("*Largest:*\n" + "\n".join(blocks.tag_line(t) for t in health.largest)))
    if health.by_source:
        shown = [f"{blocks.escape(source, 60)}: {n:,}" for source, n in health.by_source[:SOURCES_SHOWN]]
        more = len(health.by_source) - SOURCES_SHOWN
        out.append(blocks.context("By source: " + " · ".join(shown) + (f" · {more:,} more" if more > 0 else "")))
    if health.empty:
        out.append({"type": "actions", "block_id": "tag_health", "elements": [
            blocks.button(f"Preview deleting the {health.empty:,} empty tags", ACTION_PREVIEW_RULE, "empty")]})
    return out


def home_part(health: TagHealth | None) -> list[dict[str, Any]]:
    return health_blocks(health) + [{"type": "divider"}]
