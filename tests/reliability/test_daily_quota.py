"""Constant Contact's daily quota, end to end: the simulator's quota set low, the bot's ledger, the
preview's refusal, the hold until the reset, and the reserve for deletions already running."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.core import quota
from bot.sandbox.world import World
from tests.e2e.helpers import restore_to_card
from tests.reliability.support import (
    SimWall,
    activities_of,
    add_tags,
    card_now,
    next_ephemeral,
    run_job_now,
    thread_texts,
    to_card,
    wait_finished,
)

LIMIT = 400
RESERVE = 40


@pytest.fixture
def world_env() -> dict[str, str]:
    return {"CC_DAILY_QUOTA": str(LIMIT), "QUOTA_RESERVE": str(RESERVE)}


@pytest.fixture
def low_quota(world: World) -> World:
    world.cc.set_daily_quota(LIMIT)
    return world


def estimate_for(world: World, contacts: list[int]) -> quota.Estimate:
    settings = world.bot.settings
    snapshot = world.bot.services.snapshots.plan(sum(contacts)).will_snapshot  # its pages count too
    return quota.estimate(contacts, len(world.cc.tags()), settings.poll_min_seconds, settings.poll_max_seconds,
                          snapshot)


def refused_preview(world: World, text: str) -> str:
    seen = len(world.slack.ephemerals)
    world.driver.slash_command(world.people.requester, world.channel, text)
    return next_ephemeral(world, world.people.requester, seen, lambda e: e.text.startswith(":no_entry:")).text


def spend(world: World, calls: int) -> None:
    """Calls made earlier today (before a restart, say), counted by both Constant Contact and the ledger."""
    world.cc.spend_quota(calls)
    day = world.bot.services.ledger.today().day
    for _ in range(calls):
        world.store.count_cc_call(day)


def quota_refusals(world: World) -> list[object]:
    return [r for r in world.cc.request_log
            if r.status == 429 and (r.response or {}).get("error_key") == "quota_exceeded"]


def test_a_request_that_fits_runs_and_one_that_does_not_is_refused_at_preview(low_quota: World) -> None:
    """Quota 400, reserve 40 | a small request runs, its estimate on preview and card; a request whose
    estimate exceeds what is left is refused at preview with the numbers, and nothing is recorded."""
    world = low_quota
    small = add_tags(world, 2)
    big = world.cc.add_tag("Everyone 2019", 50_000)
    huge = world.cc.add_tag("Everyone ever", 200_000)
    request_id, card = to_card(world, small)
    expected = quota.estimate_line(quota.Estimate.from_record(world.store.get_request(request_id).quota_estimate))
    assert expected.startswith("About ") and expected in str(card.blocks)
    world.driver.click(world.people.approver, card, "Approve")
    assert wait_finished(world, request_id) == "completed"

    spend(world, 200)
    needed = estimate_for(world, [50_000])
    day = world.bot.services.ledger.today()
    assert needed.total > day.left_for_new  # it would not finish today
    text = refused_preview(world, f"{big} reason: yearly clean-up")
    assert text.startswith(f":no_entry: This request needs about {needed.total:,} Constant Contact calls, but only "
                           f"{day.left_for_new - 1:,} are left for new requests today ({day.used + 1:,} of "
                           f"{LIMIT:,} used today, "), text  # its own listing took one more call
    assert f"{RESERVE} kept for running deletions; resets at 00:00 UTC" in text
    assert text.endswith("Nothing was recorded or deleted.")
    too_large = estimate_for(world, [200_000]).total
    assert refused_preview(world, f"{huge} reason: everything") == (
        f":no_entry: This request needs about {too_large:,} Constant Contact calls, more than one day's quota "
        f"allows ({LIMIT} a day, {RESERVE} of them kept for running deletions). Split it into smaller requests. "
        "Nothing was recorded or deleted.")
    assert [r.id for r in world.store.requests()] == [request_id]
    assert world.cc.tag_exists(big) and quota_refusals(world) == []
    assert world.bot.services.ledger.today().used == world.cc.quota_used_today()
    used = world.cc.quota_used_today()
    for user, sees in ((world.people.approver, True), (world.people.requester, False)):
        world.driver.open_home(user)
        home = world.driver.wait_for(lambda: world.slack.home(user), what="the home tab")
        line = f":bar_chart: Constant Contact calls: {used:,} of {LIMIT:,} used today, {LIMIT - used:,} left;"
        assert (line in str(home.blocks)) is sees, home.blocks


def test_a_request_held_at_the_limit_resumes_after_the_reset(low_quota: World, cc_wall: SimWall) -> None:
    """The quota is used up by someone else sharing the API key after the preview | on approval the request
    is held with a clear message, on the card and in `status`, nothing deleted; after 00:00 UTC it runs."""
    world = low_quota
    world.bot.services.notifier.outbox.card_edit_seconds = 0.2  # no need to wait Slack's 3 s between edits here
    ids = add_tags(world, 2)
    request_id, card = to_card(world, ids)
    world.cc.exhaust_quota()
    world.driver.slash_command(world.people.requester, world.channel, f"{ids[0]} reason: x")  # learns it: 429
    world.driver.wait_for(lambda: world.bot.services.ledger.today().exhausted, what="the ledger to see the 429")
    world.driver.click(world.people.approver, card, "Approve")
    held = world.driver.wait_for(lambda: next((t for t in thread_texts(world, card) if "is held" in t), None),
                                 what="the hold notice")
    estimate = quota.Estimate.from_record(world.store.get_request(request_id).quota_estimate)
    assert held.startswith(f":hourglass_flowing_sand: Request #{request_id} is held until 00:00 UTC (in ")
    assert (f"it needs about {estimate.total:,} Constant Contact calls and only 0 are left for new requests "
            "today") in held and held.endswith("Nothing has been deleted; it starts by itself after the reset.")
    request = world.store.get_request(request_id)
    assert request.state == "approved" and request.quota_held_until is not None
    assert activities_of(world, ids) == [] and world.store.batches(request_id) == []
    world.driver.wait_for(lambda: "Held for Constant Contact's daily quota" in str(card_now(world, card).blocks),
                          what="the hold on the card")
    seen = len(world.slack.ephemerals)
    world.driver.slash_command(world.people.requester, world.channel, f"status {request_id}")
    status = next_ephemeral(world, world.people.requester, seen, lambda e: f"Request #{request_id}" in e.text).text
    assert "Held for Constant Contact's daily quota until" in status and "nothing deleted yet" in status

    now = datetime.now(timezone.utc)
    past_midnight = (quota.next_reset(now) - now + timedelta(seconds=30)).total_seconds()
    cc_wall.advance(past_midnight)  # Constant Contact's day turns ...
    world.clock.advance(seconds=past_midnight)  # ... and so does the bot's
    run_job_now(world, f"submit:{request_id}")
    assert wait_finished(world, request_id) == "completed"
    assert all(not world.cc.tag_exists(i) for i in ids)
    assert world.store.get_request(request_id).quota_held_until is None
    assert len([t for t in thread_texts(world, card) if "is held" in t]) == 1


def test_the_reserve_keeps_a_running_deletions_polls_going(low_quota: World) -> None:
    """A deletion is running and polling | a new request that would fit in what is left, but not without
    the reserve, is refused; the running one is polled to the end and never meets quota_exceeded."""
    world = low_quota
    world.cc.next_activity_seconds = [1.5]
    running = add_tags(world, 1)
    request_id, card = to_card(world, running)
    world.driver.click(world.people.approver, card, "Approve")
    world.driver.wait_for(lambda: any(b.poll_count > 0 for b in world.store.batches(request_id)),
                          what="the first poll")
    newcomer = world.cc.add_tag("Webinar 2020", 0)
    needed = estimate_for(world, [0]).total
    # What is left now fits the newcomer, but only by eating into the reserve.
    spend(world, world.bot.services.ledger.today().left - needed - RESERVE // 2)
    left = world.bot.services.ledger.today().left
    assert needed <= left - 1 and needed > left - 1 - RESERVE
    text = refused_preview(world, f"{newcomer} reason: also this one")
    assert f"but only {left - 1 - RESERVE if left - 1 > RESERVE else 0:,} are left for new requests" in text
    assert wait_finished(world, request_id) == "completed"
    polls = world.store.batches(request_id)[0].poll_count
    assert polls >= 2 and quota_refusals(world) == []
    assert world.cc.tag_exists(newcomer)


def test_a_restore_is_costed_like_a_deletion_and_refused_when_it_cannot_finish_today(low_quota: World) -> None:
    """A deletion of a tag on 2,000 contacts ran | its restore needs the tag made, four tagging activities
    and their polls: with too little left today it is refused at preview, and nothing is recorded."""
    world = low_quota
    (tag,) = add_tags(world, 1)
    world.cc.add_contacts(tag, 1_999)
    request_id, card = to_card(world, [tag])
    world.driver.click(world.people.approver, card, "Approve")
    assert wait_finished(world, request_id) == "completed"
    settings = world.bot.settings
    needed = quota.restore_estimate([500, 500, 500, 500], 1, settings.poll_min_seconds, settings.poll_max_seconds)
    assert needed.total > 5
    spend(world, world.bot.services.ledger.today().left_for_new - needed.total + 1)
    text = refused_preview(world, f"restore {request_id}")
    assert text.startswith(f":no_entry: This restore needs about {needed.total:,} Constant Contact calls, but only ")
    assert text.endswith("Nothing was recorded or changed.")
    assert [r.id for r in world.store.requests()] == [request_id]
    assert world.cc.tag_ids() == set()


def test_an_approved_restore_is_held_for_the_reset_like_a_deletion(low_quota: World, cc_wall: SimWall) -> None:
    world = low_quota
    world.bot.services.notifier.outbox.card_edit_seconds = 0.2
    (tag,) = add_tags(world, 1)
    world.cc.add_contacts(tag, 20)
    request_id, card = to_card(world, [tag])
    world.driver.click(world.people.approver, card, "Approve")
    assert wait_finished(world, request_id) == "completed"
    restore_id, _, restore_card = restore_to_card(world, f"restore {request_id} reason: undo")
    spend(world, world.bot.services.ledger.today().left_for_new)  # someone else used the rest of the day
    world.driver.click(world.people.approver, restore_card, "Approve")
    held = world.driver.wait_for(lambda: next((t for t in thread_texts(world, restore_card) if "is held" in t), None),
                                 what="the hold notice")
    assert held.endswith("Nothing has been changed; it starts by itself after the reset.")
    assert world.store.batches(restore_id) == [] and world.cc.tag_ids() == set()
    world.driver.wait_for(lambda: "nothing changed yet" in str(card_now(world, restore_card).blocks),
                          what="the hold on the card")

    now = datetime.now(timezone.utc)
    past_midnight = (quota.next_reset(now) - now + timedelta(seconds=30)).total_seconds()
    cc_wall.advance(past_midnight)
    world.clock.advance(seconds=past_midnight)
    run_job_now(world, f"submit:{restore_id}")
    assert wait_finished(world, restore_id) == "completed"
    assert [t["contacts_count"] for t in world.cc.tags()] == [21]
