"""After approval: activities are submitted, polled to the end, and reported in the card's thread."""

from __future__ import annotations

import pytest

from bot.runner import POLL_EXECUTOR
from bot.sandbox.world import World
from tests.e2e.helpers import add_tags, refreshed, request_to_card


@pytest.fixture
def world_env() -> dict[str, str]:
    return {"POLL_MIN_SECONDS": "0.2", "POLL_MAX_SECONDS": "1", "RECONCILE_DELAY_SECONDS": "0.5"}


def approve(world: World, text: str) -> tuple[int, object]:
    request_id, card = request_to_card(world, text)
    world.driver.click(world.people.approver, card, "Approve")
    return request_id, card


def finished(world: World, request_id: int, timeout: float = 30.0) -> str:
    terminal = ("completed", "completed_with_errors", "failed")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state in terminal, timeout=timeout,
                          what=f"request #{request_id} to finish")
    world.driver.wait_for(lambda: world.store.notices(request_id).get("summary") == "posted", what="the summary")
    return world.store.get_request(request_id).state


def summaries(world: World, card) -> list:  # noqa: ANN001
    return [m for m in world.slack.thread(world.channel, card.ts) if "is finished" in m.text and not m.deleted]


def test_1200_ids_become_three_activities_and_one_summary(world: World) -> None:
    ids = [world.cc.add_tag(f"Old tag {i:04d}", i % 7) for i in range(1200)]
    csv = ("tag_id\n" + "\n".join(ids)).encode()
    world.driver.upload_file(world.people.requester, world.channel, "old-tags.csv", csv,
                             text=f"<@{world.slack.bot_user_id}> reason: yearly cleanup")
    preview = world.driver.wait_for(
        lambda: next((e for e in reversed(world.slack.ephemerals) if "Request approval" in str(e.blocks)), None),
        what="the preview")
    assert "1,200 tags" in preview.text + str(preview.blocks) and "3 Constant Contact activities" in str(preview.blocks)
    world.driver.click(world.people.requester, preview, "Request approval")
    card = world.driver.wait_for(lambda: next((m for m in world.slack.messages(world.channel)
                                               if "Deletion request #" in m.text), None), what="card")
    request_id = world.store.requests()[0].id
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, request_id, timeout=60) == "completed"
    activities = world.cc.activities()
    assert sorted(len(a["tag_ids"]) for a in activities) == [200, 500, 500]
    assert not any(world.cc.tag_exists(i) for i in ids)
    assert len(summaries(world, card)) == 1
    assert "1,200 of 1,200 tags deleted" in summaries(world, card)[0].text
    assert world.people.requester in summaries(world, card)[0].text
    thread_text = " ".join(m.text for m in world.slack.thread(world.channel, card.ts))
    assert all(a["activity_id"] in thread_text for a in activities)
    world.driver.wait_for(lambda: "Finished" in str(refreshed(world, card).blocks), what="the final card")
    assert {b.state for b in world.store.batches(request_id)} == {"completed"}


@pytest.mark.parametrize("fault, state_word", [("fail_activities", "failed"), ("timeout_activities", "timed_out")])
def test_failed_and_timed_out_activities_say_what_was_not_deleted(world: World, fault: str, state_word: str) -> None:
    ids = add_tags(world, *((f"Tag {i}", 1) for i in range(6)))
    setattr(world.cc.faults, fault, True)
    request_id, card = approve(world, " ".join(ids) + " reason: cleanup")
    state = finished(world, request_id)
    assert state in ("completed_with_errors", "failed")
    summary = summaries(world, card)[0].text
    remaining = [i for i in ids if world.cc.tag_exists(i)]
    assert remaining and f"Not deleted ({len(remaining)})" in summary
    assert all(i in summary for i in remaining) and state_word in summary
    outcomes = {t.tag_id: t.outcome for t in world.store.request_tags(request_id)}
    assert {i for i, o in outcomes.items() if o == "not_deleted"} == set(remaining)


def test_a_tag_deleted_elsewhere_is_reported_with_constant_contacts_error(world: World) -> None:
    kept, gone = add_tags(world, ("Keep me out", 1), ("Vanishing", 2))
    request_id, card = request_to_card(world, f"{kept} {gone} reason: cleanup")
    world.cc.remove_tag(gone)
    world.driver.click(world.people.approver, card, "Approve")
    finished(world, request_id)
    summary = summaries(world, card)[0].text
    assert "2 of 2 tags deleted" in summary or (gone in summary and "not found" in summary.lower())


def test_status_question_in_the_thread_gets_the_percent_and_small_talk_gets_nothing(world: World) -> None:
    ids = add_tags(world, ("Slow tag", 5))
    world.cc.next_activity_seconds = [20.0]
    request_id, card = approve(world, f"{ids[0]} reason: cleanup")
    world.driver.wait_for(lambda: any(b.percent_done > 1 for b in world.store.batches(request_id)), what="progress")
    assert world.bot.services.health()["in_flight_requests"] == 1
    batch_id = world.store.batches(request_id)[0].id
    poll_job = world.driver.wait_for(lambda: world.bot.services.scheduler.get_job(f"poll:{batch_id}"), what="the poll")
    assert poll_job.executor == POLL_EXECUTOR  # not behind submissions waiting for the rate limit
    replies_before = len(world.slack.thread(world.channel, card.ts))
    world.driver.post_message(world.people.outsider, world.channel, "nice weather today", thread_ts=card.ts)
    world.driver.post_message(world.people.outsider, world.channel, "status?", thread_ts=card.ts)
    answer = world.driver.wait_for(
        lambda: next((m for m in world.slack.thread(world.channel, card.ts)[replies_before:]
                      if m.user == world.slack.bot_user_id and "%" in m.text), None), what="a status answer")
    assert f"Request #{request_id}" in answer.text and "ETA" in answer.text and world.people.approver in answer.text
    bot_replies = [m for m in world.slack.thread(world.channel, card.ts)[replies_before:] if m.user == world.slack.bot_user_id]
    assert len(bot_replies) == 1


def test_a_slack_429_on_the_card_edit_delays_it_and_loses_nothing(world: World) -> None:
    ids = add_tags(world, ("Tag A", 1))
    request_id, card = request_to_card(world, f"{ids[0]} reason: cleanup")
    world.slack.fail_next("chat.update", 429, count=2)
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, request_id) == "completed"
    world.driver.wait_for(lambda: "Finished" in str(refreshed(world, card).blocks), what="the final card")
    assert len(summaries(world, card)) == 1
    assert any(c.status == 429 for c in world.slack.calls_to("chat.update"))


def test_status_and_list_commands(world: World) -> None:
    ids = add_tags(world, ("Tag A", 1))
    request_id, _ = approve(world, f"{ids[0]} reason: cleanup")
    finished(world, request_id)
    status = world.driver.slash_command(world.people.outsider, world.channel, f"status {request_id}")
    shown = world.driver.wait_for(lambda: next((e for e in reversed(world.slack.ephemerals)
                                                if e.user == world.people.outsider and f"#{request_id}" in e.text), None),
                                  what="the status answer")
    assert status.ok and "Completed" in shown.text and "1 deleted" in shown.text
    world.driver.slash_command(world.people.outsider, world.channel, "list")
    listing = world.driver.wait_for(lambda: next((e for e in reversed(world.slack.ephemerals)
                                                  if "Recent deletion requests" in e.text), None), what="the list")
    assert f"#{request_id}" in listing.text and "http" in listing.text


def test_app_home_shows_my_requests_and_what_waits_for_me(world: World) -> None:
    ids = add_tags(world, ("Tag A", 1))
    request_id, _ = request_to_card(world, f"{ids[0]} reason: cleanup")
    world.driver.open_home(world.people.approver)
    home = world.driver.wait_for(lambda: world.slack.home(world.people.approver), what="the approver's home")
    assert f"#{request_id}" in str(home.blocks) and "'text': 'Approve'" in str(home.blocks)
    world.driver.click(world.people.approver, home, "Approve")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state != "awaiting_approval", what="approval")
    world.driver.open_home(world.people.requester)
    mine = world.driver.wait_for(lambda: world.slack.home(world.people.requester), what="the requester's home")
    assert f"#{request_id}" in str(mine.blocks) and "'text': 'Approve'" not in str(mine.blocks)


def test_a_milestone_claimed_before_a_crash_is_settled_from_the_thread(world: World) -> None:
    ids = add_tags(world, ("Tag A", 1))
    request_id, card = approve(world, f"{ids[0]} reason: cleanup")
    finished(world, request_id)
    store, runner = world.store, world.bot.services.runner
    # Crashed after Slack took the summary but before it was marked posted: found in the thread, not re-posted.
    store.db.execute("UPDATE notices SET state = 'claimed' WHERE request_id = ? AND key = 'summary'", [request_id])
    runner.recover()
    assert store.notices(request_id)["summary"] == "posted"
    assert len(summaries(world, card)) == 1
    # Crashed after claiming but before Slack had it: released and posted once.
    summary = summaries(world, card)[0]
    world.bot.services.slack.chat_delete(channel=world.channel, ts=summary.ts)
    store.db.execute("UPDATE notices SET state = 'claimed' WHERE request_id = ? AND key = 'summary'", [request_id])
    runner.recover()
    world.driver.wait_for(lambda: store.notices(request_id)["summary"] == "posted", what="the summary posted again")
    assert len(summaries(world, card)) == 1
