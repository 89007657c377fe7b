"""Who may do what, click by click: only the legitimate clicks change anything; every refusal is told to
the person who clicked and recorded in the audit log as `refused.*`.

People: Rita asks, Alex is in APPROVER_IDS, Grace is an approver through the `@team-leads` user
group, Otto is nobody in particular. Forged clicks carry button values a real card never has.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.sandbox.slack import Message
from bot.sandbox.world import LEADS_GROUP, World
from tests.reliability.support import (
    add_tags,
    button_payload,
    dm_texts,
    ephemerals_for,
    next_ephemeral,
    signed_interaction,
    to_card,
)

OWN = "You asked for this deletion, so someone else must approve or reject it (four-eyes rule)."
NOT_APPROVER = "Only the configured approvers can approve or reject deletion requests."
NOT_REQUESTER_CANCEL = "Only the person who asked for this deletion can cancel it."
NOT_REQUESTER_CONFIRM = "Only the person who prepared this preview can send it for approval."
INVALID_BUTTON = "That button does not belong to a request I know."


@dataclass(frozen=True)
class Before:
    state: str
    approvals: tuple[str, ...]
    decided_by: str | None


def before(world: World, request_id: int) -> Before:
    request = world.store.get_request(request_id)
    return Before(request.state, world.store.approvals(request_id), request.decided_by)


def settled_card(world: World, tag_ids: list[str], user: str | None = None) -> tuple[int, Message]:
    return to_card(world, tag_ids, "authorization test", user)


def refused_events(world: World, kind: str, actor: str) -> int:
    return len([e for e in world.store.events() if e.kind == kind and e.actor == actor])


def click_and_hear(world: World, user: str, card: Message, label: str) -> str:
    seen = len(world.slack.ephemerals)
    response = world.driver.click(user, card, label)
    assert response.status == 200
    return next_ephemeral(world, user, seen).text


def forge_and_hear(world: World, user: str, action_id: str, value: object, **where: object) -> str:
    seen = len(world.slack.ephemerals)
    response = signed_interaction(world, button_payload(world, user, action_id, value, **where))
    assert response.status == 200, response.body
    return next_ephemeral(world, user, seen).text


def test_approve_and_reject_are_for_approvers_other_than_the_requester(world: World) -> None:
    ids = add_tags(world, 2)
    request_id, card = settled_card(world, ids[:1])
    for user, expected in ((world.people.requester, OWN), (world.people.outsider, NOT_APPROVER)):
        for label, kind in (("Approve", "refused.approve"), ("Reject", "refused.reject")):
            state = before(world, request_id)
            assert click_and_hear(world, user, card, label) == expected
            assert before(world, request_id) == state
            assert refused_events(world, kind, user) == 1
    assert not [v for v in world.slack.views.values() if v.user in (world.people.requester, world.people.outsider)]
    assert click_and_hear(world, world.people.approver, card, "Approve") == (
        f"You approved request #{request_id}. Deletion starts now.")
    assert world.store.approvals(request_id) == (world.people.approver,)


def test_a_group_member_decides_and_a_removed_member_no_longer_can(world: World) -> None:
    ids = add_tags(world, 2)
    first, first_card = settled_card(world, ids[:1])
    second, second_card = settled_card(world, ids[1:])
    assert click_and_hear(world, world.people.group_approver, first_card, "Approve").startswith("You approved")
    world.slack.set_usergroup_users(LEADS_GROUP, [])
    state = before(world, second)
    assert click_and_hear(world, world.people.group_approver, second_card, "Approve") == NOT_APPROVER
    assert click_and_hear(world, world.people.group_approver, second_card, "Reject") == NOT_APPROVER
    assert before(world, second) == state
    assert refused_events(world, "refused.approve", world.people.group_approver) == 1


def test_a_rejection_needs_an_approver_and_a_reason(world: World) -> None:
    ids = add_tags(world, 1)
    request_id, card = settled_card(world, ids)
    world.driver.click(world.people.group_approver, card, "Reject")
    view = world.driver.wait_for(lambda: next((v for v in world.slack.views.values()
                                               if v.user == world.people.group_approver), None), what="the modal")
    short = world.driver.submit_view(world.people.group_approver, view, {"reason": {"reason": "no"}})
    assert short.json()["errors"] == {"reason": "Say in a few words why, so the requester can act on it."}
    assert world.store.get_request(request_id).state == "awaiting_approval"
    world.driver.submit_view(world.people.group_approver, view, {"reason": {"reason": "sales still uses it"}})
    world.driver.wait_for(lambda: world.store.get_request(request_id).state == "rejected", what="the rejection")
    assert world.store.get_request(request_id).decided_by == world.people.group_approver


def test_only_the_requester_cancels_by_button_or_command(world: World) -> None:
    ids = add_tags(world, 1)
    request_id, card = settled_card(world, ids)
    for user in (world.people.approver, world.people.group_approver, world.people.outsider):
        state = before(world, request_id)
        assert click_and_hear(world, user, card, "Cancel request") == NOT_REQUESTER_CANCEL
        seen = len(world.slack.ephemerals)
        world.driver.slash_command(user, world.channel, f"cancel {request_id}")
        assert next_ephemeral(world, user, seen).text == NOT_REQUESTER_CANCEL
        assert before(world, request_id) == state
        assert refused_events(world, "refused.cancel", user) == 2
    seen = len(world.slack.ephemerals)
    world.driver.slash_command(world.people.requester, world.channel, f"cancel #{request_id}")
    assert next_ephemeral(world, world.people.requester, seen).text == (
        f"Request #{request_id} is cancelled. Nothing was deleted.")
    assert world.store.get_request(request_id).state == "cancelled"
    assert forge_and_hear(world, world.people.requester, "cancel_request", str(request_id), message_ts=card.ts) == (
        f"Request #{request_id} can no longer be cancelled: it is cancelled.")


def test_only_the_requester_sends_a_preview_to_the_approvers(world: World) -> None:
    ids = add_tags(world, 1)
    world.driver.slash_command(world.people.requester, world.channel, f"{ids[0]} reason: x")
    next_ephemeral(world, world.people.requester, 0, lambda e: "Request approval" in str(e.blocks))
    request_id = world.store.requests()[0].id
    for user in (world.people.approver, world.people.group_approver, world.people.outsider):
        text = forge_and_hear(world, user, "request_approval", str(request_id), ephemeral=True)
        assert text == NOT_REQUESTER_CONFIRM
        assert refused_events(world, "refused.confirm", user) == 1
        text = forge_and_hear(world, user, "cancel_request", str(request_id), ephemeral=True)
        assert text == NOT_REQUESTER_CANCEL
    assert world.store.get_request(request_id).state == "draft"
    assert not [m for m in world.slack.messages(world.channel) if "Deletion request #" in m.text]


def test_status_is_readable_by_anyone_and_changes_nothing(world: World) -> None:
    ids = add_tags(world, 1)
    request_id, _ = settled_card(world, ids)
    expected = f"*Request #{request_id}* (<{world.slack.root_url}/archives/{world.channel}/p"
    for user in (world.people.requester, world.people.approver, world.people.group_approver, world.people.outsider):
        events = len(world.store.events())
        seen = len(world.slack.ephemerals)
        world.driver.slash_command(user, world.channel, f"status {request_id}")
        text = next_ephemeral(world, user, seen).text
        assert text.startswith(expected) and text.endswith(
            f"by <@{world.people.requester}>: *Waiting for approval*, 1 tag. Approvals 0 of 1. Nothing is deleted yet.")
        assert len(world.store.events()) == events
    assert world.store.get_request(request_id).state == "awaiting_approval"


def test_app_home_buttons_are_checked_like_the_card(world: World) -> None:
    ids = add_tags(world, 2)
    request_id, _ = settled_card(world, ids[:1])
    for user, expected in ((world.people.requester, OWN), (world.people.outsider, NOT_APPROVER)):
        for action_id, kind in (("approve_request", "refused.approve"), ("reject_request", "refused.reject")):
            dms = len(dm_texts(world, user))
            response = signed_interaction(world, button_payload(world, user, action_id, str(request_id), home=True))
            assert response.status == 200
            assert world.driver.wait_for(lambda: dm_texts(world, user)[dms:], what="the answer by DM") == [expected]
            assert refused_events(world, kind, user) == 1
    assert world.store.get_request(request_id).state == "awaiting_approval"
    world.driver.open_home(world.people.approver)
    home = world.driver.wait_for(lambda: world.slack.home(world.people.approver), what="the approver's home")
    world.driver.click(world.people.approver, home, "Approve")
    world.driver.wait_for(lambda: f"You approved request #{request_id}. Deletion starts now."
                          in dm_texts(world, world.people.approver), what="the answer by DM")
    assert world.store.get_request(request_id).state != "awaiting_approval"


GARBAGE = ["", "abc", "-1", "1.0", "1e3", "0x1", " 1", "99999999999999", "1; DROP TABLE requests",
           '{"request_id": 1}', None, ["1"], {"id": 1}, "x" * 3000]
REFUSAL_KIND = {"approve_request": "refused.approve", "reject_request": "refused.reject",
                "cancel_request": "refused.cancel", "request_approval": "refused.confirm"}


@pytest.mark.parametrize("action_id", ["approve_request", "reject_request", "cancel_request", "request_approval"])
def test_garbage_button_values_are_refused_and_recorded(world: World, action_id: str) -> None:
    ids = add_tags(world, 1)
    request_id, _ = settled_card(world, ids)
    state = before(world, request_id)
    for value in GARBAGE:
        text = forge_and_hear(world, world.people.approver, action_id, value)
        assert text == INVALID_BUTTON, value
    invalid = [e for e in world.store.events() if e.kind == "refused.invalid_button"]
    assert len(invalid) == len(GARBAGE) and all(e.actor == world.people.approver for e in invalid)
    assert all(len(str(e.detail)) < 300 for e in invalid)
    assert before(world, request_id) == state


def test_forged_values_naming_other_requests_are_checked_against_those_requests(world: World) -> None:
    ids = add_tags(world, 4)
    ritas, ritas_card = settled_card(world, ids[:1])
    ottos, _ = settled_card(world, ids[1:2], user=world.people.outsider)
    world.driver.slash_command(world.people.requester, world.channel, f"{ids[2]} reason: draft only")
    next_ephemeral(world, world.people.requester, 0, lambda e: "Request approval" in str(e.blocks)
                   and "draft only" in str(e.blocks))
    draft = max(r.id for r in world.store.requests())
    finished, finished_card = settled_card(world, ids[3:])
    click_and_hear(world, world.people.requester, finished_card, "Cancel request")
    world.driver.wait_for(lambda: world.store.get_request(finished).state == "cancelled", what="the cancellation")
    where = {"message_ts": ritas_card.ts}
    cases = [
        (world.people.requester, "approve_request", ottos, "Only the configured approvers can approve or reject deletion requests."),
        (world.people.requester, "cancel_request", ottos, NOT_REQUESTER_CANCEL),
        (world.people.outsider, "approve_request", ritas, NOT_APPROVER),
        (world.people.outsider, "cancel_request", ritas, NOT_REQUESTER_CANCEL),
        (world.people.approver, "approve_request", draft,
         f"Request #{draft} has not been sent for approval yet, so there is nothing to decide."),
        (world.people.approver, "approve_request", finished, f"Request #{finished} was cancelled, so there is nothing to decide."),
        (world.people.approver, "reject_request", finished, f"Request #{finished} was cancelled, so there is nothing to decide."),
        (world.people.requester, "request_approval", finished, f"Request #{finished} was cancelled, so there is nothing to decide."),
        (world.people.approver, "approve_request", 987654, "Request #987654 does not exist (any more)."),
        (world.people.requester, "cancel_request", 987654, "Request #987654 does not exist (any more)."),
        (world.people.requester, "request_approval", 987654, "Request #987654 does not exist (any more)."),
    ]
    states = {r.id: before(world, r.id) for r in world.store.requests()}
    for user, action_id, target, expected in cases:
        events = len(world.store.events())
        assert forge_and_hear(world, user, action_id, str(target), **where) == expected, (user, action_id, target)
        new = world.store.events()[events:]
        assert [e.kind for e in new] == [REFUSAL_KIND[action_id]], (user, action_id, target)
        assert new[0].actor == user
    assert {r.id: before(world, r.id) for r in world.store.requests()} == states
    assert ephemerals_for(world, world.people.outsider)
