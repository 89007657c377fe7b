"""Undo: a finished deletion restored from its snapshot, through the same four-eyes approval."""

from __future__ import annotations

import pytest

from bot.restores.command import USAGE
from bot.sandbox.world import World
from tests.e2e.helpers import (
    FAST_POLLS,
    add_tags,
    finished,
    last_ephemeral,
    refreshed,
    request_to_card,
    restore_to_card,
    three_tags_on_373_contacts,
)

TAGGINGS_ADD = "/activities/contacts_taggings_add"


@pytest.fixture
def world_env() -> dict[str, str]:
    return dict(FAST_POLLS)


def summaries(world: World, card) -> list[str]:  # noqa: ANN001
    world.flush_slack()
    return [m.text for m in world.slack.thread(card.channel, card.ts)[1:] if "is finished" in m.text]


def deleted(world: World, text: str) -> tuple[int, object]:
    request_id, card = request_to_card(world, text)
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, request_id) == "completed"
    return request_id, card


def carriers_by_name(world: World) -> dict[str, set[str]]:
    return {t["name"]: world.cc.contacts_with_tag(t["tag_id"]) for t in world.cc.tags()}


def test_three_deleted_tags_come_back_with_their_names_on_exactly_their_373_contacts(world: World) -> None:
    ids, carriers = three_tags_on_373_contacts(world)
    names = {tag_id: t["name"] for t in world.cc.tags() for tag_id in ids if t["tag_id"] == tag_id}
    request_id, card = deleted(world, " ".join(ids) + " reason: spring clean-up")
    (summary,) = summaries(world, card)
    assert f"`/deletetags restore {request_id}`" in summary
    assert not any(world.cc.tag_exists(t) for t in ids)

    restore_id, preview, restore_card = restore_to_card(world, f"restore {request_id} reason: deleted by mistake")
    shown = str(preview.blocks)
    assert "3 tags to recreate" in shown and "*373 contacts* again" in shown
    assert f"undoing request #{request_id}" in shown and "cannot give back the old tag ids" in shown
    assert "3 to create the tags (and find those whose name is taken), 3 tagging requests" in shown  # its Constant Contact calls, as for a deletion
    assert f"undoes request #{request_id}" in str(restore_card.blocks)
    world.driver.open_home(world.people.approver)
    home = world.driver.wait_for(lambda: world.slack.home(world.people.approver), what="the approver's home")
    assert f"Restore of #{request_id}. deleted by mistake" in str(home.blocks)
    # The same four-eyes rule: the requester cannot approve their own restore.
    world.driver.click(world.people.requester, restore_card, "Approve")
    assert world.store.get_request(restore_id).state == "awaiting_approval"
    world.driver.click(world.people.approver, restore_card, "Approve")
    assert finished(world, restore_id) == "completed"

    now = carriers_by_name(world)
    assert {name: now[name] for name in names.values()} == {names[t]: c for t, c in carriers.items()}
    assert sum(len(c) for c in carriers.values()) == 373
    assert len(world.cc.tags()) == 3  # no tag made twice
    posts = [r for r in list(world.cc.request_log) if r.method == "POST" and r.path.endswith(TAGGINGS_ADD)]
    assert len(posts) == 3  # one activity per tag (each under 500 contacts)

    (restored,) = summaries(world, restore_card)
    assert "*3 of 3 tags restored*, 373 contacts tagged again in 3 activities" in restored
    assert refreshed(world, restore_card).text.endswith("Completed")
    kinds = [e.kind for e in world.store.events(restore_id)]
    assert kinds.count("restore.tag_ready") == 3 and "request.completed" in kinds
    world.driver.slash_command(world.people.requester, world.channel, f"status {restore_id}")
    status = last_ephemeral(world, world.people.requester, f"*Request #{restore_id}* (restore of #{request_id})")
    assert "3 restored, 0 not restored" in status.text
    world.driver.slash_command(world.people.approver, world.channel, "list")
    listed = last_ephemeral(world, world.people.approver, "Recent deletion requests")
    assert f"|#{restore_id}> (restore of #{request_id}) by <@{world.people.requester}>" in listed.text


def test_a_name_taken_meanwhile_is_restored_into_that_tag_and_contacts_deleted_since_are_counted(
        world: World) -> None:
    ids, carriers = three_tags_on_373_contacts(world)
    request_id, _ = deleted(world, " ".join(ids[:2]) + " reason: spring clean-up")
    taken = world.cc.add_tag("imported BY mistake", 0)  # the name, taken again (names ignore case)
    newcomers = set(world.cc.add_contacts(taken, 5))
    gone = sorted(carriers[ids[1]])[:2]
    for contact_id in gone:
        world.cc.delete_contact(contact_id)

    restore_id, preview, card = restore_to_card(world, f"restore {request_id} reason: undo")
    assert f"into the existing tag `{taken}`" in str(preview.blocks)
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, restore_id) == "completed"

    assert world.cc.contacts_with_tag(taken) == newcomers | (carriers[ids[1]] - set(gone))
    names = [t["name"].casefold() for t in world.cc.tags()]
    assert names.count("imported by mistake") == 1
    (restored,) = summaries(world, card)
    assert "*2 of 2 tags restored*" in restored
    assert "2 contacts could not be tagged because they are deleted (2 deleted since the snapshot)." in restored
    assert f"into the existing tag `{taken}`" in restored
    assert not [m for m in world.slack.thread(card.channel, card.ts) if ":warning: Activity" in m.text]


def test_only_the_tags_named_are_restored_and_a_tag_restored_already_is_left_alone(world: World) -> None:
    ids, carriers = three_tags_on_373_contacts(world)
    request_id, _ = deleted(world, " ".join(ids) + " reason: spring clean-up")
    restore_id, preview, card = restore_to_card(world, f'restore {request_id} "newsletter test" reason: one back')
    assert "1 tag to recreate" in str(preview.blocks)
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, restore_id) == "completed"
    assert carriers_by_name(world) == {"Newsletter Test": carriers[ids[0]]}

    # The same tag again: restored already, so there is nothing to restore.
    world.driver.slash_command(world.people.requester, world.channel, f'restore {request_id} "Newsletter Test"')
    answer = last_ephemeral(world, world.people.requester, "Nothing to restore")
    assert f"restore #{restore_id} already restored it" in answer.text
    assert "Finished: every tag was restored." in str(refreshed(world, card).blocks)


@pytest.mark.parametrize(("text", "expected"), [
    ("restore", f"Which request? {USAGE}"),
    ("restore twelve", "`twelve` is not a request number; use digits, e.g. `/deletetags restore 12`."),
    ("restore 999", "There is no request #999. `/deletetags list` shows recent ones."),
    ("restore 1 Spring", f"After the request number, give tag names in quotes or tag ids. {USAGE}"),
    ("restore 1 \"Spring\" 12ab", "These entries were not used:\n• `12ab` — not a tag id; put tag names in quotes, "
                                   f"e.g. \"Spring Promo\"\n{USAGE}"),
])
def test_a_restore_that_cannot_be_read_says_why(world: World, text: str, expected: str) -> None:
    world.driver.slash_command(world.people.requester, world.channel, text)
    assert last_ephemeral(world, world.people.requester).text == expected
    assert world.store.requests() == []  # nothing recorded


def test_a_request_deleted_without_a_snapshot_cannot_be_restored(world: World) -> None:
    world.bot.services.snapshots.max_contacts = 1
    ids, _ = three_tags_on_373_contacts(world)
    request_id, _ = deleted(world, " ".join(ids) + " reason: too big to keep")
    world.driver.slash_command(world.people.requester, world.channel, f"restore {request_id}")
    answer = last_ephemeral(world, world.people.requester, "without a snapshot")
    assert "`SNAPSHOT_MAX_CONTACTS`" in answer.text
    assert world.store.requests(limit=10)[0].id == request_id  # no draft was made


def test_an_empty_tag_comes_back_and_a_kill_between_its_two_writes_does_not_strand_it(world: World) -> None:
    (empty,) = add_tags(world, ("Nobody yet", 0))
    request_id, _ = deleted(world, f"{empty} reason: unused")
    restore_id, preview, card = restore_to_card(world, f"restore {request_id} reason: it was planned")
    assert "*0 contacts* again" in str(preview.blocks)
    runner = world.bot.services.runner
    runner.stop_scheduling()  # the approval lays out the batch; nothing runs it
    world.driver.click(world.people.approver, card, "Approve")
    request = world.driver.wait_for(lambda: (r := world.store.get_request(restore_id)).state == "approved" and r,
                                    what="the approval")
    runner.submit_request(request.id)  # makes the tag; the batch is left as a crash would leave it:
    (batch,) = world.store.batches(restore_id)
    world.store.transition_batch(batch.id, [batch.state], "submitting")
    runner.reconcile(batch.id)  # what the restart does with a batch in `submitting`
    assert finished(world, restore_id) == "completed"
    assert [t["name"] for t in world.cc.tags()] == ["Nobody yet"]


def test_a_second_restore_of_the_same_deletion_waits_for_the_first(world: World) -> None:
    ids, _ = three_tags_on_373_contacts(world)
    request_id, _ = deleted(world, " ".join(ids) + " reason: spring clean-up")
    world.driver.slash_command(world.people.requester, world.channel, f"restore {request_id} reason: first")
    first = last_ephemeral(world, world.people.requester, "Preview of restore")
    world.driver.slash_command(world.people.second_approver, world.channel, f"restore {request_id} reason: second")
    second = last_ephemeral(world, world.people.second_approver, "Preview of restore")
    world.driver.click(world.people.requester, first, "Request approval")
    world.driver.click(world.people.second_approver, second, "Request approval")
    # Each confirm runs after its click is acknowledged, in either order: the later one is refused.
    refusal = world.driver.wait_for(lambda: next((e for e in world.slack.ephemerals
                                                  if "is already awaiting approval" in e.text), None),
                                    what="the second confirm refused")
    assert f"of request #{request_id} is already awaiting approval" in refusal.text
    states = sorted(r.state for r in world.store.requests(limit=3) if r.is_restore)
    assert states == ["awaiting_approval", "draft"]
