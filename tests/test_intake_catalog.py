"""bot.intake.TagCatalog: one listing and one index per fetch, refreshed after the TTL or `forget()`."""

from __future__ import annotations

from dataclasses import dataclass

from bot import tags
from bot.intake import TagCatalog
from bot.sandbox.world import ManualClock

U1 = "0b9c1e2a-5f3d-4c1b-9a7e-1234567890ab"
U2 = "11111111-2222-3333-4444-555555555555"


@dataclass(frozen=True)
class AccountTag:
    tag_id: str
    name: str
    contacts_count: int | None


class Account:
    """A fetch function that counts its calls; `listing` can change between fetches."""

    def __init__(self) -> None:
        self.listing = [AccountTag(U1, "Spring", 3)]
        self.fetches = 0

    def __call__(self) -> list[AccountTag]:
        self.fetches += 1
        return list(self.listing)


def test_one_fetch_and_one_index_within_the_ttl() -> None:
    account, clock = Account(), ManualClock()
    catalog = TagCatalog(account, ttl_seconds=60, clock=clock)
    first = catalog.index()
    clock.advance(59.9)
    assert catalog.index() is first
    assert catalog.tags() == [AccountTag(U1, "Spring", 3)]
    assert account.fetches == 1
    resolution = tags.resolve(tags.Selection(names=("spring",)), first)
    assert resolution.tag_ids == (U1,)


def test_the_index_follows_the_listing_after_the_ttl() -> None:
    account, clock = Account(), ManualClock()
    catalog = TagCatalog(account, ttl_seconds=60, clock=clock)
    first = catalog.index()
    account.listing.append(AccountTag(U2, "Summer", None))
    clock.advance(60)
    second = catalog.index()
    assert second is not first
    assert set(second.by_id) == {U1, U2}
    assert catalog.index() is second
    assert len(catalog.tags()) == 2
    assert account.fetches == 2


def test_forget_fetches_again() -> None:
    account = Account()
    catalog = TagCatalog(account, clock=ManualClock())
    first = catalog.index()
    catalog.forget()
    assert catalog.index() is not first
    assert account.fetches == 2
