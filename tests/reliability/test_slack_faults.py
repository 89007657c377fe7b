"""Slack misbehaves while a request runs: rate limits, server errors, a revoked token, a lost channel.

Nothing may be lost (the request completes and its summary is posted once Slack recovers) and
nothing may be posted twice.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bot.sandbox.slack import Message
from bot.sandbox.world import World
from tests.reliability.support import (
    activities_of,
    add_tags,
    approve,
    card_now,
    dm_texts,
    next_ephemeral,
    run_job_now,
    summary_head,
    summary_posted_soon,
    the_summary,
    thread_texts,
    to_card,
    wait_finished,
)

DONE = ":white_check_mark:"


def assert_nothing_twice(world: World, card: Message) -> None:
    bot_posts = [m.text for m in world.slack.thread(world.channel, card.ts) if m.user == world.slack.bot_user_id]
    repeated = {text: n for text, n in Counter(bot_posts).items() if n > 1}
    assert not repeated, repeated
    approved_dms = [t for t in dm_texts(world, world.people.requester) if "was approved by" in t]
    assert len(approved_dms) <= 1, approved_dms


def assert_finished_once(world: World, request_id: int, card: Message, tag_count: int) -> None:
    assert wait_finished(world, request_id) == "completed"
    assert the_summary(world, card).startswith(summary_head(world, request_id, tag_count, tag_count, 1, DONE))
    world.driver.wait_for(lambda: "Finished: every tag was deleted" in str(card_now(world, card).blocks),
                          what="the card to show the end")
    assert_nothing_twice(world, card)


def wait_submitted(world: World, card: Message) -> None:
    world.driver.wait_for(lambda: any(t.startswith(":rocket: Submitted") for t in thread_texts(world, card)),
                          what="the submission notice")


def test_429_with_retry_after_on_posts_and_edits_is_waited_out(world: World) -> None:
    ids = add_tags(world, 2)
    request_id, card = to_card(world, ids)
    world.slack.fail_next("chat.postMessage", 429)
    world.slack.fail_next("chat.update", 429)
    world.driver.click(world.people.approver, card, "Approve")
    assert_finished_once(world, request_id, card, 2)
    refused = [c for c in world.slack.calls if c.status == 429]
    assert {c.method for c in refused} == {"chat.postMessage", "chat.update"}
    assert len([t for t in thread_texts(world, card) if t.startswith(":rocket: Submitted")]) == 1


def test_5xx_on_posts_and_edits_is_retried(world: World) -> None:
    ids = add_tags(world, 2)
    request_id, card = to_card(world, ids)
    world.slack.fail_next("chat.postMessage", 500)
    world.slack.fail_next("chat.update", 503)
    world.driver.click(world.people.approver, card, "Approve")
    assert_finished_once(world, request_id, card, 2)
    assert sorted(c.status for c in world.slack.calls if c.status >= 500) == [500, 503]


@pytest.mark.parametrize("failure, count", [
    ("invalid_auth", 1),
    pytest.param(429, 4, marks=pytest.mark.slow, id="429-four-times"),
])
def test_a_summary_slack_refuses_is_sent_again_by_the_outbox(world: World, failure: str | int, count: int) -> None:
    ids = add_tags(world, 2)
    world.cc.next_activity_seconds = [1.0]
    request_id, card = approve(world, ids)
    wait_submitted(world, card)
    world.slack.fail_next("chat.postMessage", failure, count=count)
    assert_finished_once(world, request_id, card, 2)
    refused = [c for c in world.slack.calls if c.method == "chat.postMessage" and (c.error or c.status >= 400)]
    assert len(refused) == count


def test_a_summary_slack_keeps_refusing_is_claimed_again_and_posted_once(world: World) -> None:
    world.bot.services.notifier.outbox.retry_seconds = 0.05
    ids = add_tags(world, 2)
    world.cc.next_activity_seconds = [1.0]
    request_id, card = approve(world, ids)
    wait_submitted(world, card)
    attempts = world.bot.services.notifier.outbox.max_attempts
    world.slack.fail_next("chat.postMessage", "invalid_auth", count=attempts)
    world.driver.wait_for(lambda: world.store.get_request(request_id).state == "completed", what="completion")
    world.driver.wait_for(lambda: world.store.notices(request_id).get("summary") is None,
                          what="the outbox to give up and release the summary")
    assert not [t for t in thread_texts(world, card) if "is finished:" in t]
    run_job_now(world, f"summary:{request_id}")
    assert_finished_once(world, request_id, card, 2)


def test_a_refused_submission_notice_is_posted_before_the_summary(world: World) -> None:
    ids = add_tags(world, 2)
    request_id, card = to_card(world, ids)
    world.cc.faults.latency_seconds = 0.5
    world.driver.click(world.people.approver, card, "Approve")
    world.driver.wait_for(lambda: [t for t in dm_texts(world, world.people.requester) if "was approved by" in t],
                          what="the approval DM")
    world.slack.fail_next("chat.postMessage", "invalid_auth")
    world.driver.wait_for(lambda: any(c.error == "invalid_auth" for c in world.slack.calls), what="the refusal")
    world.cc.faults.latency_seconds = 0
    summary_posted_soon(world, request_id)
    assert_finished_once(world, request_id, card, 2)
    activity = activities_of(world, ids)[0]["activity_id"]
    bot_texts = [t for t in thread_texts(world, card)[1:]]
    assert bot_texts[-2:] == [f":rocket: Submitted to Constant Contact: 1 activity (`{activity}`).",
                              the_summary(world, card)]


def test_the_bot_removed_from_the_channel_mid_run_posts_the_summary_once_it_is_back(world: World) -> None:
    ids = add_tags(world, 2)
    world.cc.next_activity_seconds = [1.0]
    request_id, card = approve(world, ids)
    wait_submitted(world, card)
    world.slack.remove_member(world.channel, world.slack.bot_user_id)
    world.driver.wait_for(lambda: world.store.get_request(request_id).state == "completed", what="completion")
    world.driver.wait_for(lambda: any(c.method == "chat.postMessage" and c.error == "not_in_channel"
                                      for c in world.slack.calls), what="Slack to refuse the summary")
    assert not [t for t in thread_texts(world, card) if "is finished:" in t]
    world.slack.add_member(world.channel, world.slack.bot_user_id)
    summary_posted_soon(world, request_id)
    assert_finished_once(world, request_id, card, 2)


def test_invalid_auth_on_the_card_keeps_the_draft_and_says_what_to_do(world: World) -> None:
    ids = add_tags(world, 1)
    world.driver.slash_command(world.people.requester, world.channel, f"{ids[0]} reason: x")
    preview = next_ephemeral(world, world.people.requester, 0, lambda e: "Request approval" in str(e.blocks))
    world.slack.fail_next("chat.postMessage", "invalid_auth")
    seen = len(world.slack.ephemerals)
    world.driver.click(world.people.requester, preview, "Request approval")
    told = next_ephemeral(world, world.people.requester, seen)
    assert told.text == ("Slack refused the message (invalid_auth). "
                         "Ask the bot's operators to run `deletetags-bot check`.")
    request = world.store.requests()[0]
    assert request.state == "draft" and request.card_ts is None
    world.driver.click(world.people.requester, preview, "Request approval")
    world.driver.wait_for(lambda: world.store.get_request(request.id).card_ts, what="the card")
    assert world.store.get_request(request.id).state == "awaiting_approval"
    assert len([m for m in world.slack.messages(world.channel) if "Deletion request #" in m.text]) == 1
