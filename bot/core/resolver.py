"""Matching a selection of tag ids and names against the account's tags. Pure.

Nothing unknown or ambiguous is ever selected: an id the account does not have, or a name that
matches no tag or several, is reported back and left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol

from bot.core.tags import BATCH_SIZE, Selection, name_key


class AccountTag(Protocol):
    """A tag of the Constant Contact account (`bot.constant_contact.Tag` fits)."""

    @property
    def tag_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def contacts_count(self) -> int | None: ...


@dataclass(frozen=True)
class ResolvedTag:
    tag_id: str
    name: str
    contacts_count: int | None
    matched_by: Literal["id", "name"]


@dataclass(frozen=True)
class Ambiguity:
    """A name that matches several tags; none of them is selected."""

    name: str
    candidates: tuple[AccountTag, ...]


@dataclass(frozen=True)
class Resolution:
    tags: tuple[ResolvedTag, ...] = ()
    unknown_ids: tuple[str, ...] = ()
    unknown_names: tuple[str, ...] = ()
    ambiguous: tuple[Ambiguity, ...] = ()
    duplicates: int = 0
    total_contacts: int = 0

    @property
    def tag_ids(self) -> tuple[str, ...]:
        return tuple(tag.tag_id for tag in self.tags)

    @property
    def counts_complete(self) -> bool:
        """False when some tag came without a contact count, so `total_contacts` is a lower bound."""
        return all(tag.contacts_count is not None for tag in self.tags)

    def batch_count(self, batch_size: int = BATCH_SIZE) -> int:
        return -(-len(self.tags) // _positive(batch_size))



@dataclass(frozen=True, eq=False)
class TagIndex:
    """The account's tags by lowercase id and by `name_key`; build it once per listing with `TagIndex.of`.

    A tag id listed twice counts once (its first listing); `by_name` keeps every tag a key matches.
    """

    by_id: Mapping[str, AccountTag]
    by_name: Mapping[str, tuple[AccountTag, ...]]

    @classmethod
    def of(cls, account_tags: Iterable[AccountTag]) -> TagIndex:
        by_id: dict[str, AccountTag] = {}
        by_name: dict[str, list[AccountTag]] = {}
        for tag in account_tags:
            tag_id = tag.tag_id.strip().lower()
            if tag_id not in by_id:
                by_id[tag_id] = tag
                by_name.setdefault(name_key(tag.name), []).append(tag)
        frozen_by_name = {key: tuple(matches) for key, matches in by_name.items()}
        return cls(MappingProxyType(by_id), MappingProxyType(frozen_by_name))


def resolve(selection: Selection, account_tags: TagIndex | Sequence[AccountTag]) -> Resolution:
    """Match the selection against the account's tags; unknown and ambiguous entries are never selected.

    Pass a `TagIndex` when resolving several selections against one listing: a plain list is indexed anew.
    """
    index = account_tags if isinstance(account_tags, TagIndex) else TagIndex.of(account_tags)
    chosen: dict[str, ResolvedTag] = {}
    duplicates = selection.duplicates
    unknown_ids = [tag_id for tag_id in selection.ids if tag_id not in index.by_id]
    for tag_id in selection.ids:
        if tag_id in index.by_id:
            duplicates += _choose(chosen, index.by_id[tag_id], "id")
    unknown_names: list[str] = []
    ambiguous: list[Ambiguity] = []
    for name in selection.names:
        matches = index.by_name.get(name_key(name), ())
        if not matches:
            unknown_names.append(name)
        elif len(matches) > 1:
            ambiguous.append(Ambiguity(name, matches))
        else:
            duplicates += _choose(chosen, matches[0], "name")
    tags = tuple(chosen.values())
    return Resolution(
        tags=tags,
        unknown_ids=tuple(unknown_ids),
        unknown_names=tuple(unknown_names),
        ambiguous=tuple(ambiguous),
        duplicates=duplicates,
        total_contacts=sum(tag.contacts_count or 0 for tag in tags),
    )


def _choose(chosen: dict[str, ResolvedTag], tag: AccountTag, matched_by: Literal["id", "name"]) -> int:
    """Add the tag; 1 when it was already chosen (a duplicate), else 0."""
    tag_id = tag.tag_id.strip().lower()
    if tag_id in chosen:
        return 1
    chosen[tag_id] = ResolvedTag(tag_id, tag.name, tag.contacts_count, matched_by)
    return 0


def batches(tag_ids: Sequence[str], size: int = BATCH_SIZE) -> list[list[str]]:
    """Ordered batches of at most `size` ids: one Constant Contact activity each."""
    ordered = list(tag_ids)
    step = _positive(size)
    return [ordered[start : start + step] for start in range(0, len(ordered), step)]


def _positive(size: int) -> int:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    return size
