"""bot.intake.TagCatalog: every preview gets a listing that began after it was asked for; previews
asked for while one is under way share the next, and one index is built per listing."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from bot.core import resolver, tags
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


def test_a_tag_created_a_moment_ago_is_seen_by_the_next_preview() -> None:
    account, clock = Account(), ManualClock()
    catalog = TagCatalog(account, clock=clock)
    first = catalog.listing()
    account.listing.append(AccountTag(U2, "Summer", None))
    clock.advance(1)
    second = catalog.listing()
    assert second is not first and set(second.index.by_id) == {U1, U2}
    resolution = resolver.resolve(tags.Selection(names=("summer",)), second.index)
    assert resolution.tag_ids == (U2,)
    assert account.fetches == 2


def test_a_listing_that_began_after_the_question_is_reused() -> None:
    account, clock = Account(), ManualClock()
    catalog = TagCatalog(account, clock=clock)
    asked = clock()
    first = catalog.listing(not_before=asked)
    assert catalog.listing(not_before=asked) is first
    assert account.fetches == 1


def test_a_recent_listing_serves_views_that_may_lag() -> None:
    account, clock = Account(), ManualClock()
    catalog = TagCatalog(account, clock=clock)
    first = catalog.listing()
    clock.advance(30)
    assert catalog.recent(60) is first
    clock.advance(31)
    assert catalog.recent(60) is not first and account.fetches == 2


def test_previews_asked_during_a_listing_share_the_next_one() -> None:
    release, started = threading.Event(), threading.Event()
    fetches: list[int] = []

    def slow_fetch() -> list[AccountTag]:
        fetches.append(1)
        started.set()
        release.wait(5)
        return [AccountTag(U1, "Spring", 3)]

    clock = ManualClock()
    catalog = TagCatalog(slow_fetch, clock=clock)
    early = threading.Thread(target=catalog.listing)
    early.start()
    started.wait(5)
    clock.advance(1)
    waiting = [threading.Thread(target=catalog.listing) for _ in range(8)]
    for thread in waiting:
        thread.start()
    release.set()  # the first listing began before these eight were asked: they need one more
    for thread in [early, *waiting]:
        thread.join(5)
    assert len(fetches) == 2


def test_a_failed_listing_lets_the_next_preview_try_again() -> None:
    calls: list[int] = []

    def flaky() -> list[AccountTag]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Constant Contact is down")
        return [AccountTag(U1, "Spring", 3)]

    catalog = TagCatalog(flaky)
    with pytest.raises(RuntimeError):
        catalog.listing()
    assert [t.tag_id for t in catalog.listing().account_tags] == [U1]
    assert len(calls) == 2
