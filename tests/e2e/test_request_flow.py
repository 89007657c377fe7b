"""A person asks, sees a preview, sends it to approvers, and an approver decides."""

from __future__ import annotations

import threading

import pytest

from bot.sandbox.world import World
from tests.e2e.helpers import add_tags, card, last_ephemeral, preview_for, refreshed, request_to_card

UNKNOWN_ID = "0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a99"


def test_ids_in_text_give_a_preview_with_names_counts_and_unknowns(world: World) -> None:
    spring, old = add_tags(world, ("Spring Promo 2024", 120), ("Old Webinar", 7))
    world.driver.slash_command(world.people.requester, world.channel,
                               f"{spring.upper()}, {{{old}}} {UNKNOWN_ID} reason: cleanup")
    preview = preview_for(world, world.people.requester)
    text = str(preview.blocks)
    assert "Spring Promo 2024" in text and "Old Webinar" in text
    assert "127 contacts" in text and "120 contacts" in text
    assert UNKNOWN_ID in text and "matched no tag" in text
    request = world.store.requests()[0]
    assert request.state == "draft" and request.reason == "cleanup"
    assert [t.tag_id for t in world.store.request_tags(request.id)] == [spring, old]


def test_a_long_pasted_list_is_acknowledged_first_and_previewed_after(world: World) -> None:
    ids = add_tags(world, *[(f"Import {n}", 1) for n in range(80)])
    response = world.driver.slash_command(world.people.requester, world.channel,
                                          " ".join(ids) + " reason: old imports")
    assert response.reply()["text"] == ":mag: Checking your list against Constant Contact…"
    assert "80 tags" in str(preview_for(world, world.people.requester).blocks)
    assert len(world.store.request_tags(world.store.requests()[0].id)) == 80


def test_a_long_text_that_is_not_a_list_gets_the_usage_after_the_ack(world: World) -> None:
    response = world.driver.slash_command(world.people.requester, world.channel, "please " * 400)
    assert response.reply()["text"].startswith(":mag: Checking your list")
    usage = last_ephemeral(world, world.people.requester, "I don't know `please`.")
    assert "/deletetags help" in usage.text


def test_quoted_names_resolve_and_unknown_names_are_listed(world: World) -> None:
    add_tags(world, ("Spring Promo 2024", 120), ("VIP, Gold", 3))
    world.driver.slash_command(world.people.requester, world.channel, '"spring promo 2024" "VIP, Gold" "Nope"')
    text = str(preview_for(world, world.people.requester).blocks)
    assert "Spring Promo 2024" in text and "VIP, Gold" in text and "Nope" in text
    assert "123 contacts" in text


def test_nothing_known_creates_no_request(world: World) -> None:
    add_tags(world, ("Spring Promo 2024", 120))
    world.driver.slash_command(world.people.requester, world.channel, f"{UNKNOWN_ID} \"Nope\"")
    message = last_ephemeral(world, world.people.requester, "nothing to delete")
    assert UNKNOWN_ID in message.text
    assert world.store.requests() == []


def test_junk_only_gets_a_specific_message(world: World) -> None:
    almost = "0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a0"
    reply = world.driver.slash_command(world.people.requester, world.channel, f"{almost}, {almost}ZZ").reply()
    assert "No tag ids or names found" in reply["text"]
    assert "35 characters, expected 36" in reply["text"] and "not hexadecimal" in reply["text"]
    assert world.store.requests() == []


def test_csv_uploaded_in_a_dm_gives_a_preview(world: World) -> None:
    spring, old = add_tags(world, ("Spring Promo 2024", 120), ("Old Webinar", 7))
    csv = f"tag_id,name\r\n{spring},\r\n,Old Webinar\r\n{UNKNOWN_ID},\r\n".encode("utf-8-sig")
    world.driver.upload_file(world.people.requester, world.slack.bot_user_id, "tags.csv", csv, text="reason: tidy up")
    text = str(preview_for(world, world.people.requester).blocks)
    assert "Spring Promo 2024" in text and "Old Webinar" in text and UNKNOWN_ID in text
    assert world.store.requests()[0].source == "file"


def test_modal_with_a_file_gives_a_preview(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    world.driver.slash_command(world.people.requester, world.channel, "")
    view = world.driver.wait_for(lambda: next(iter(world.slack.views.values()), None), what="the modal")
    file = world.slack.add_file(world.people.requester, "ids.txt", f"{spring}\n".encode())
    world.driver.submit_view(world.people.requester, view,
                             {"file": {"file": [file]}, "reason": {"reason": "campaign over"}})
    preview = preview_for(world, world.people.requester)
    assert "Spring Promo 2024" in str(preview.blocks)
    assert world.store.requests()[0].reason == "campaign over"


def test_empty_modal_is_refused_inline(world: World) -> None:
    world.driver.slash_command(world.people.requester, world.channel, "")
    view = world.driver.wait_for(lambda: next(iter(world.slack.views.values()), None), what="the modal")
    response = world.driver.submit_view(world.people.requester, view, {"reason": {"reason": "why not"}})
    assert response.json()["response_action"] == "errors"
    assert world.store.requests() == []


def test_confirm_then_approver_approves(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    assert world.people.approver in message.text or "subteam" in message.text
    assert world.store.get_request(request_id).state == "awaiting_approval"
    world.driver.click(world.people.approver, message, "Approve")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state in ("approved", "running", "completed"),
                          what="the approval")
    world.driver.wait_for(lambda: "approved by" in str(refreshed(world, message).blocks), what="the card edit")
    assert "'text': 'Approve'" not in str(refreshed(world, message).blocks)
    assert world.store.approvals(request_id) == (world.people.approver,)
    kinds = [e.kind for e in world.store.events(request_id)]
    assert kinds[:3] == ["request.created", "request.confirmed", "approval.recorded"]
    assert "request.approved" in kinds


def test_a_group_member_may_approve(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.driver.click(world.people.group_approver, message, "Approve")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state != "awaiting_approval", what="approval")


def test_missing_reason_is_asked_for_before_sending(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    world.driver.slash_command(world.people.requester, world.channel, spring)
    world.driver.click(world.people.requester, preview_for(world, world.people.requester), "Request approval")
    view = world.driver.wait_for(lambda: next(iter(world.slack.views.values()), None), what="the reason modal")
    world.driver.submit_view(world.people.requester, view, {"reason": {"reason": "old campaign"}})
    assert "old campaign" in str(card(world).blocks)


@pytest.mark.parametrize("who", ["outsider", "requester"])
def test_refused_clicks_are_explained_and_recorded(world: World, who: str) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    user = getattr(world.people, who)
    world.driver.click(user, message, "Approve")
    expected = "Only the configured approvers" if who == "outsider" else "someone else must approve"
    last_ephemeral(world, user, expected)
    assert world.store.get_request(request_id).state == "awaiting_approval"
    assert world.store.approvals(request_id) == ()
    refusals = [e for e in world.store.events(request_id) if e.kind == "refused.approve"]
    assert len(refusals) == 1 and refusals[0].actor == user


def test_click_after_expiry_is_refused_and_the_card_says_expired(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.clock.advance(hours=25)
    world.driver.click(world.people.approver, message, "Approve")
    last_ephemeral(world, world.people.approver, "expired")
    assert world.store.get_request(request_id).state == "expired"
    assert "Expired" in str(refreshed(world, message).blocks)
    assert "Approve" not in str(refreshed(world, message).blocks)
    assert "refused.approve" in [e.kind for e in world.store.events(request_id)]


def test_overdue_requests_expire_in_the_sweep(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.clock.advance(hours=25)
    assert world.bot.services.decisions.expire_overdue() == 1
    assert world.store.get_request(request_id).state == "expired"
    assert "Expired" in str(refreshed(world, message).blocks)


@pytest.fixture
def two_approvals(world_env: dict[str, str]) -> None:
    world_env["REQUIRED_APPROVALS"] = "2"


@pytest.mark.usefixtures("two_approvals")
def test_two_required_approvals(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.driver.click(world.people.approver, message, "Approve")
    last_ephemeral(world, world.people.approver, "1 of 2")
    assert world.store.get_request(request_id).state == "awaiting_approval"
    world.driver.click(world.people.approver, refreshed(world, message), "Approve")
    last_ephemeral(world, world.people.approver, "already approved")
    assert world.store.get_request(request_id).state == "awaiting_approval"
    world.driver.click(world.people.second_approver, refreshed(world, message), "Approve")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state != "awaiting_approval", what="approval")
    assert set(world.store.approvals(request_id)) == {world.people.approver, world.people.second_approver}


def test_twenty_concurrent_clicks_approve_once(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    barrier = threading.Barrier(20)

    def click(i: int) -> None:
        user = world.people.approver if i % 2 else world.people.second_approver
        barrier.wait()
        world.driver.click(user, message, "Approve")

    threads = [threading.Thread(target=click, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    world.driver.wait_for(lambda: world.store.get_request(request_id).state != "awaiting_approval", what="approval")
    approved = [e for e in world.store.events(request_id) if e.kind == "request.approved"]
    assert len(approved) == 1


def test_reject_with_a_reason(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.driver.click(world.people.approver, message, "Reject")
    view = world.driver.wait_for(
        lambda: next((v for v in world.slack.views.values() if v.user == world.people.approver), None),
        what="the reject modal")
    world.driver.submit_view(world.people.approver, view, {"reason": {"reason": "still used by sales"}})
    world.driver.wait_for(lambda: world.store.get_request(request_id).state == "rejected", what="rejection")
    blocks_text = str(refreshed(world, message).blocks)
    assert "still used by sales" in blocks_text and "Approve" not in blocks_text
    dm = world.slack.open_dm(world.people.requester)
    world.driver.wait_for(lambda: any("still used by sales" in m.text for m in world.slack.messages(dm)),
                          what="the requester's DM with the reason")


def test_requester_cancels_from_the_card(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.driver.click(world.people.outsider, message, "Cancel request")
    last_ephemeral(world, world.people.outsider, "Only the person who asked")
    world.driver.click(world.people.requester, message, "Cancel request")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state == "cancelled", what="cancellation")
    assert "Cancelled" in str(refreshed(world, message).blocks)
    world.driver.click(world.people.approver, message, "Approve") if "Approve" in str(refreshed(world, message).blocks) else None
    assert world.store.approvals(request_id) == ()


def test_cancel_from_the_preview(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    world.driver.slash_command(world.people.requester, world.channel, f"{spring} reason: x")
    world.driver.click(world.people.requester, preview_for(world, world.people.requester), "Cancel")
    world.driver.wait_for(lambda: world.store.requests()[0].state == "cancelled", what="cancellation")


def test_bot_not_in_the_approval_channel_tells_the_requester_how_to_fix_it(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    world.driver.slash_command(world.people.requester, world.channel, f"{spring} reason: campaign over")
    preview = preview_for(world, world.people.requester)
    world.slack.remove_member(world.channel, world.slack.bot_user_id)
    world.driver.click(world.people.requester, preview, "Request approval")
    last_ephemeral(world, world.people.requester, "/invite @deletetags")
    request = world.store.requests()[0]
    assert request.state == "draft" and request.card_ts is None
    assert "refused.confirm" in [e.kind for e in world.store.events(request.id)]
    world.slack.add_member(world.channel, world.slack.bot_user_id)
    world.driver.click(world.people.requester, preview, "Request approval")
    card(world)
    assert world.store.get_request(request.id).state == "awaiting_approval"


@pytest.fixture
def group_by_handle(world_env: dict[str, str]) -> None:
    world_env["APPROVER_GROUP"] = "@team-leads"


@pytest.mark.usefixtures("group_by_handle")
def test_an_approver_group_given_by_its_handle(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.driver.click(world.people.group_approver, message, "Approve")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state != "awaiting_approval", what="approval")


def test_an_approval_recorded_just_before_a_crash_is_completed(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    # The first of the two writes landed, then the process died.
    world.store.add_approval(request_id, world.people.approver)
    assert world.bot.services.decisions.finish_reached() == 1
    assert world.store.get_request(request_id).state in ("approved", "running", "completed")
    assert len([e for e in world.store.events(request_id) if e.kind == "request.approved"]) == 1


def test_a_re_click_completes_an_approval_interrupted_by_a_crash(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, message = request_to_card(world, f"{spring} reason: campaign over")
    world.store.add_approval(request_id, world.people.approver)
    world.driver.click(world.people.approver, message, "Approve")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state != "awaiting_approval", what="approval")
