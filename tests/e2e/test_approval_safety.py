"""Approvers see what they approve, and it is checked again right before the irreversible POST.

- The card names the largest tags first and flags large ones; the whole list is one click away.
- A tag renamed or grown after the card was posted stops the request before its delete POST, and
  the approvers are asked again with the current names and counts.
- With two approvals required, an approval by someone who is no longer an approver does not count.
"""

from __future__ import annotations

import pytest

from bot.core import blocks
from bot.sandbox.slack import Message
from bot.sandbox.world import LEADS_GROUP, World
from tests.e2e.helpers import FAST_POLLS, add_tags, finished, last_ephemeral, refreshed, request_to_card

DELETE_PATH = "/activities/contacts_tags_delete"

# Snapshots are tested on their own (test_snapshots.py); here a 48,000-contact snapshot would only add time.
FAST = {**FAST_POLLS, "SNAPSHOTS": "false"}


@pytest.fixture
def world_env() -> dict[str, str]:
    return dict(FAST)


def delete_posts(world: World) -> int:
    return sum(1 for r in list(world.cc.request_log) if r.method == "POST" and r.path.endswith(DELETE_PATH))


def wait_for_state(world: World, request_id: int, *states: str) -> str:
    return world.driver.wait_for(
        lambda: (r := world.store.get_request(request_id)) and r.state in states and r.state,
        what=f"request #{request_id} to be {' or '.join(states)}", timeout=15)


def wait_for_change_stop(world: World, request_id: int) -> None:
    world.driver.wait_for(lambda: world.store.events(request_id=request_id,
                                                     kind_prefix="request.changed_since_approval"),
                          what="the request stopped for approval again", timeout=15)
    world.flush_slack()


def thread_texts(world: World, message: Message) -> list[str]:
    world.flush_slack()
    return [m.text for m in world.slack.thread(message.channel, message.ts)[1:]]


def open_tag_list(world: World, message: Message, user: str):  # noqa: ANN201
    label = next(e["text"]["text"] for b in refreshed(world, message).blocks if b["type"] == "actions"
                 for e in b["elements"] if e["text"]["text"].startswith("See all"))
    world.driver.click(user, refreshed(world, message), label)
    return world.driver.wait_for(
        lambda: next((v for v in world.slack.views.values()
                      if v.user == user and v.callback_id == "all_tags"), None),
        what="the tag list modal")


# --- what the card shows ---------------------------------------------------------------------


def test_the_largest_tag_is_named_first_and_flagged_even_when_it_came_sixteenth(world: World) -> None:
    small = add_tags(world, *[(f"Old list {n:02}", 10 + n) for n in range(16)])
    (vip,) = add_tags(world, ("VIP customers", 48_000))
    request_id, message = request_to_card(world, " ".join([*small, vip]) + " reason: clean-up")

    tag_section = next(b["text"]["text"] for b in message.blocks if "Old list" in str(b))
    first_line = tag_section.splitlines()[0]
    assert "VIP customers" in first_line and "48,000 contacts" in first_line and ":warning: *large*" in first_line
    assert "1 large tag" in str(message.blocks)
    assert "…and 2 smaller" in tag_section  # 17 tags, 15 named: the two smallest are left for the full list
    assert "Old list 00" not in tag_section and "Old list 01" not in tag_section

    modal = open_tag_list(world, message, world.people.approver)
    listed = str(modal.blocks)
    for n in range(16):
        assert f"Old list {n:02}" in listed
    assert listed.index("VIP customers") < listed.index("Old list 15") < listed.index("Old list 00")
    assert world.store.get_request(request_id).state == "awaiting_approval"


def test_the_whole_list_of_a_long_request_pages_through_the_modal(world: World) -> None:
    ids = add_tags(world, *[(f"Import batch {n:03}", n) for n in range(230)])
    _, message = request_to_card(world, " ".join(ids) + " reason: imports")
    modal = open_tag_list(world, message, world.people.second_approver)
    seen: list[str] = []
    for page in range(3):
        text = str(modal.blocks)
        assert f"Page {page + 1} of 3" in text
        if page == 0:
            assert text.index("Import batch 229") < text.index("Import batch 200")  # largest first
        assert all(len(b["text"]["text"]) <= 3000 for b in modal.blocks if b["type"] == "section")
        seen += [f"Import batch {n:03}" for n in range(230) if f"Import batch {n:03}*" in text]
        if page < 2:
            world.driver.click(world.people.second_approver, modal, "Next ▶")
            modal = world.driver.wait_for(
                lambda p=page: (v := world.slack.view(modal.id)) and f"Page {p + 2} of 3" in str(v.blocks) and v,
                what="the next page")
    assert sorted(seen) == sorted(f"Import batch {n:03}" for n in range(230))


# --- checked again right before the delete POST ----------------------------------------------


def test_a_tag_renamed_and_grown_after_the_card_is_not_deleted_until_approved_again(world: World) -> None:
    keep_calm, grows = add_tags(world, ("Newsletter test", 4), ("Spring leads", 120))
    request_id, message = request_to_card(world, f"{keep_calm} {grows} reason: spring clean-up")
    world.cc.change_tag(grows, name="VIP customers – DO NOT DELETE", contacts_count=48_000)

    world.driver.click(world.people.approver, message, "Approve")
    wait_for_change_stop(world, request_id)
    assert world.store.get_request(request_id).state == "awaiting_approval"
    assert delete_posts(world) == 0
    assert world.cc.tag_exists(grows) and world.cc.tag_exists(keep_calm)
    current = refreshed(world, message)
    assert "Changed since the approval" in str(current.blocks)
    assert "VIP customers – DO NOT DELETE" in str(current.blocks) and "48,000 contacts" in str(current.blocks)
    assert "approvals 0 of 1" in str(current.blocks)
    assert any("changed since the approval" in t and "<@U0ALEX>" in t for t in thread_texts(world, message))
    event = world.store.events(request_id=request_id, kind_prefix="request.changed_since_approval")[-1]
    assert event.detail["changes"][0]["name_before"] == "Spring leads"
    assert event.detail["approvals_withdrawn"] == [world.people.approver]

    world.driver.click(world.people.second_approver, current, "Approve")
    assert finished(world, request_id, timeout=15) == "completed"
    assert not world.cc.tag_exists(grows) and not world.cc.tag_exists(keep_calm)
    assert delete_posts(world) == 1


def test_small_changes_do_not_stop_a_request(world: World) -> None:
    tag, shrinks = add_tags(world, ("Webinar 2023", 200), ("Old import", 50))
    request_id, message = request_to_card(world, f"{tag} {shrinks} reason: old webinar")
    world.cc.change_tag(tag, contacts_count=205)  # a few sign-ups: noise
    world.cc.change_tag(shrinks, contacts_count=3)  # fewer contacts lose it than approved
    world.driver.click(world.people.approver, message, "Approve")
    assert finished(world, request_id, timeout=15) == "completed"
    assert not world.store.events(request_id=request_id, kind_prefix="request.changed_since_approval")


def test_a_change_in_the_second_batch_stops_it_and_a_rejection_then_summarises_the_first(world: World) -> None:
    ids = add_tags(world, *[(f"Bulk {n:03}", 1) for n in range(501)])
    request_id, message = request_to_card(world, " ".join(ids) + " reason: bulk clean-up")
    world.cc.change_tag(ids[-1], name="Renamed meanwhile")  # position 501: the second batch
    world.driver.click(world.people.approver, message, "Approve")
    wait_for_change_stop(world, request_id)
    assert world.store.get_request(request_id).state == "awaiting_approval"
    world.driver.wait_for(lambda: not world.cc.tag_exists(ids[0]), what="the first batch deleted", timeout=15)
    assert world.cc.tag_exists(ids[-1]) and delete_posts(world) == 1

    world.driver.click(world.people.second_approver, refreshed(world, message), "Reject")
    view = world.driver.wait_for(lambda: next((v for v in world.slack.views.values()
                                               if v.user == world.people.second_approver), None), what="reason modal")
    world.driver.submit_view(world.people.second_approver, view, {"reason": {"reason": "someone renamed it"}})
    assert wait_for_state(world, request_id, "rejected") == "rejected"
    summary = world.driver.wait_for(
        lambda: next((t for t in thread_texts(world, message) if "is finished" in t), None), what="the summary")
    assert "500 of 501 tags deleted" in summary and "Renamed meanwhile" in summary
    assert "listed in the thread" in str(refreshed(world, message).blocks)
    assert world.cc.tag_exists(ids[-1]) and delete_posts(world) == 1


# --- every approval is checked again when the last one arrives ----------------------------------


@pytest.mark.parametrize("world_env", [{**FAST, "REQUIRED_APPROVALS": "2"}])
def test_an_approval_by_someone_since_removed_from_the_group_does_not_count(world: World) -> None:
    (tag,) = add_tags(world, ("Spring Promo", 30))
    request_id, message = request_to_card(world, f"{tag} reason: promo over")
    world.driver.click(world.people.group_approver, message, "Approve")
    world.driver.wait_for(lambda: world.store.approvals(request_id), what="Grace's approval")
    world.slack.set_usergroup_users(LEADS_GROUP, [])

    world.driver.click(world.people.approver, refreshed(world, message), "Approve")
    answer = last_ephemeral(world, world.people.approver, "approval is recorded")
    assert "1 of 2" in answer.text
    assert world.store.get_request(request_id).state == "awaiting_approval"
    assert world.store.approvals(request_id) == (world.people.approver,)
    withdrawn = world.store.events(request_id=request_id, kind_prefix="approval.withdrawn")
    assert [e.detail["user"] for e in withdrawn] == [world.people.group_approver]
    assert delete_posts(world) == 0 and world.cc.tag_exists(tag)

    world.driver.click(world.people.second_approver, refreshed(world, message), "Approve")
    assert wait_for_state(world, request_id, "completed") == "completed"
    assert world.bot.services.decisions.locks_held() == 0


def test_the_card_flags_use_the_large_tag_setting() -> None:
    view = blocks.CardView(request_id=1, state="awaiting_approval", requester_id="U1", reason="r",
                           tags=[blocks.TagLine("a", "Big", 500), blocks.TagLine("b", "Small", 499)],
                           total_contacts=999, batch_count=1, required_approvals=1, large_threshold=500)
    text = str(blocks.card_blocks(view))
    assert "*Big* `a` — 500 contacts :warning: *large*" in text and "499 contacts :warning:" not in text
    assert "1 large tag" in text


def test_the_whole_list_of_a_finished_request_shows_what_was_not_deleted_first(world: World) -> None:
    ids = add_tags(world, *[(f"Seasonal {n:02}", 100 + n) for n in range(20)])
    request_id, message = request_to_card(world, " ".join(ids) + " reason: season over")
    world.cc.faults.fail_activities = True
    world.driver.click(world.people.approver, message, "Approve")
    assert finished(world, request_id, timeout=15) != "completed"
    modal = open_tag_list(world, message, world.people.requester)
    text = str(modal.blocks)
    assert "not deleted, listed first" in text
    first_line = modal.blocks[1]["text"]["text"].splitlines()[0]
    assert ":x: not deleted" in first_line
