"""Constant Contact misbehaves while a real request runs through the real app.

Each test injects one fault into the simulator, drives a request from the slash command to the
summary, and asserts what the requester and the approvers see in Slack, plus what Constant Contact
was actually asked to do.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.core.mrkdwn import outside_text
from bot.sandbox.slack import Message
from bot.sandbox.world import World
from tests.reliability.support import (
    SimWall,
    activities_of,
    add_tags,
    approve,
    event_kinds,
    next_ephemeral,
    run_job_now,
    summary_head,
    the_summary,
    thread_texts,
    to_card,
    wait_finished,
)

DONE = ":white_check_mark:"


def statuses(world: World, path_part: str = "/v3/") -> list[int]:
    return [r.status for r in list(world.cc.request_log) if path_part in r.path]


def assert_clean_finish(world: World, request_id: int, card: Message, tag_ids: list[str]) -> str:
    assert wait_finished(world, request_id) == "completed"
    summary = the_summary(world, card)
    assert summary.startswith(summary_head(world, request_id, len(tag_ids), len(tag_ids), 1, DONE)), summary
    assert not any(world.cc.tag_exists(t) for t in tag_ids)
    return summary


def test_thirty_percent_server_errors_are_retried_and_the_request_completes(world: World) -> None:
    """Constant Contact answers 5xx to 30% of calls | nothing: the preview and the summary are as usual."""
    ids = add_tags(world, 3)
    world.cc.faults.error_rate = 0.3
    world.cc.next_activity_seconds = [1.5]
    request_id, card = approve(world, ids)
    assert_clean_finish(world, request_id, card, ids)
    assert any(status >= 500 for status in statuses(world)), "the fault was never injected"
    # A refused create queues nothing, so retries never made a second activity.
    assert len(activities_of(world, ids)) == 1


@pytest.mark.parametrize("latency", [1.5, pytest.param(5.0, marks=pytest.mark.slow)])
def test_slow_answers_never_delay_slacks_acknowledgement(world: World, latency: float) -> None:
    """Every Constant Contact answer takes seconds | Slack is answered at once; the preview comes when the
    tags are checked, and the summary as usual."""
    ids = add_tags(world, 2)
    world.cc.faults.latency_seconds = latency
    command = world.driver.slash_command(world.people.requester, world.channel, " ".join(ids) + " reason: slow")
    # Faster than one Constant Contact answer: the ack never waits for Constant Contact.
    assert command.status == 200 and command.elapsed < min(3.0, latency - 0.1)
    assert command.reply()["text"] == ":mag: Checking 2 entries against Constant Contact…"
    preview = next_ephemeral(world, world.people.requester, 0, lambda e: "Request approval" in str(e.blocks),
                             timeout=latency * 3 + 5)
    world.driver.click(world.people.requester, preview, "Request approval")
    card = world.driver.wait_for(lambda: next((m for m in world.slack.messages(world.channel)
                                               if "Deletion request #" in m.text), None), what="the card")
    request_id = world.store.requests()[0].id
    click = world.driver.click(world.people.approver, card, "Approve")
    assert click.status == 200 and click.elapsed < min(3.0, latency - 0.1)
    assert wait_finished(world, request_id, timeout=latency * 8 + 10) == "completed"
    assert the_summary(world, card).startswith(summary_head(world, request_id, 2, 2, 1, DONE))


def test_bursts_of_429_are_waited_out(world: World) -> None:
    """Per-second throttling (429 `throttled`) in bursts | nothing: the request completes as usual."""
    ids = add_tags(world, 3)
    world.cc.faults.throttle_burst = 2
    request_id, card = to_card(world, ids)
    world.cc.faults.throttle_burst = 2
    world.driver.click(world.people.approver, card, "Approve")
    assert_clean_finish(world, request_id, card, ids)
    assert statuses(world).count(429) >= 4
    assert len(activities_of(world, ids)) == 1


def test_an_access_token_expiring_mid_run_is_refreshed_once(world: World) -> None:
    """The access token expires while activities are polled | nothing: one refresh, the request completes."""
    ids = add_tags(world, 2)
    world.cc.next_activity_seconds = [1.5]
    request_id, card = approve(world, ids)
    world.driver.wait_for(lambda: world.store.batches(request_id)[0].activity_id, what="the activity id")
    refreshes_before = len(world.cc.token_requests())
    world.cc.expire_access_tokens()
    assert_clean_finish(world, request_id, card, ids)
    refreshes = world.cc.token_requests()[refreshes_before:]
    assert [r.status for r in refreshes] == [200]
    assert world.store.load_credentials().refresh_token == refreshes[0].response["refresh_token"]


def test_a_revoked_refresh_token_fails_the_batch_with_the_fix(world: World) -> None:
    """The refresh token is revoked (`invalid_grant`) | the summary says nothing was deleted and to run
    `deletetags-bot cc-auth`; the card says Failed."""
    ids = add_tags(world, 2)
    request_id, card = to_card(world, ids)
    world.cc.expire_access_tokens()
    world.cc.revoke_refresh_tokens()
    world.driver.click(world.people.approver, card, "Approve")
    assert wait_finished(world, request_id) == "failed"
    summary = the_summary(world, card)
    assert summary.startswith(summary_head(world, request_id, 0, 2, 0, ":x:")), summary
    assert "*Not deleted (2):*" in summary and all(i in summary for i in ids)
    # Constant Contact's words are shown as outside text (look-alike _), our advice as written.
    assert outside_text("invalid_grant") in summary and "Run `deletetags-bot cc-auth` to authorise" in summary
    assert activities_of(world, ids) == []
    assert not [t for t in thread_texts(world, card) if t.startswith(":rocket:")], "nothing was submitted"
    assert all(world.cc.tag_exists(i) for i in ids)
    world.driver.wait_for(lambda: "Failed: no tag was deleted" in str(world.slack.message(card.channel, card.ts).blocks),
                          what="the card to say Failed")


def test_an_exhausted_daily_quota_postpones_the_batch_until_midnight(world: World, cc_wall: SimWall) -> None:
    """The daily quota is used up (429 `quota_exceeded`) | the thread says the batch waits until 00:00 UTC;
    after midnight it runs and the summary comes as usual."""
    ids = add_tags(world, 2)
    request_id, card = to_card(world, ids)
    world.cc.exhaust_quota()
    world.driver.click(world.people.approver, card, "Approve")
    waiting = world.driver.wait_for(lambda: next((t for t in thread_texts(world, card) if "is waiting" in t), None),
                                    what="the waiting notice")
    midnight = (datetime.now(timezone.utc) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert waiting == (":hourglass_flowing_sand: Batch 1 is waiting: Constant Contact's daily API quota for this "
                       f"application is used up. It resets at 00:00 UTC ({midnight:%Y-%m-%d} 00:00 UTC); "
                       "try again after that.")
    batch = world.store.batches(request_id)[0]
    assert batch.state == "pending" and activities_of(world, ids) == []
    job = world.driver.wait_for(lambda: world.bot.services.scheduler.get_job(f"submit-batch:{batch.id}"),
                                what="the retry at midnight")
    assert job.next_run_time >= midnight
    cc_wall.advance((midnight - datetime.now(timezone.utc)).total_seconds() + 10)
    run_job_now(world, f"submit-batch:{batch.id}")
    assert wait_finished(world, request_id) == "completed"
    assert the_summary(world, card).startswith(summary_head(world, request_id, 2, 2, 1, DONE))
    assert len([t for t in thread_texts(world, card) if "is waiting" in t]) == 1
    activity_id = activities_of(world, ids)[0]["activity_id"]
    assert f":rocket: Submitted to Constant Contact: 1 activity (`{activity_id}`)." in thread_texts(world, card)


def test_an_exhausted_quota_while_checking_tags_is_explained(world: World) -> None:
    """The quota is used up when a preview is asked for | the requester is told why and when it resets;
    nothing is recorded."""
    ids = add_tags(world, 1)
    world.cc.exhaust_quota()
    world.driver.slash_command(world.people.requester, world.channel, f"{ids[0]} reason: x")
    told = next_ephemeral(world, world.people.requester, 0, lambda e: "could not check" in e.text)
    midnight = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert told.text == (":warning: I could not check the tags in Constant Contact: Constant Contact's daily API "
                         "quota for this application is used up. It resets at 00:00 UTC "
                         f"({midnight} 00:00 UTC); try again after that. Nothing was recorded or deleted.")
    assert world.store.requests() == []


def test_a_full_activity_queue_postpones_and_resumes(world: World) -> None:
    """Constant Contact already holds 1,000 queued activities | the thread says the batch waits; it is tried
    again and completes."""
    ids = add_tags(world, 2)
    request_id, card = to_card(world, ids)
    world.cc.max_queued_activities = 0
    world.driver.click(world.people.approver, card, "Approve")
    waiting = world.driver.wait_for(lambda: next((t for t in thread_texts(world, card) if "is waiting" in t), None),
                                    what="the waiting notice")
    assert waiting.startswith(":hourglass_flowing_sand: Batch 1 is waiting: Constant Contact refused to queue "
                              "another activity (")
    assert waiting.endswith("the account already has 1,000 queued activities. Wait for some to finish, then try again.")
    world.cc.max_queued_activities = 1000
    run_job_now(world, f"submit-batch:{world.store.batches(request_id)[0].id}")
    assert_clean_finish(world, request_id, card, ids)


@pytest.mark.parametrize("activity_seconds, activities", [(0.05, 1), (3.0, 2)], ids=["landed", "still-running"])
def test_a_5xx_after_the_create_committed_is_reconciled(world: World, activity_seconds: float, activities: int) -> None:
    """The create POST answers 5xx although Constant Contact queued it | nothing: the bot checks which tags
    still exist and re-submits only those; one summary."""
    ids = add_tags(world, 3)
    world.cc.next_activity_seconds = [activity_seconds, 0.2]
    request_id, card = to_card(world, ids)
    world.cc.faults.fail_after_commit = 1
    world.driver.click(world.people.approver, card, "Approve")
    assert_clean_finish(world, request_id, card, ids)
    kinds = event_kinds(world, request_id)
    assert "batch.outcome_unknown" in kinds and "batch.reconciling" in kinds
    assert len(activities_of(world, ids)) == activities
    submitted = [t for t in thread_texts(world, card) if t.startswith(":rocket: Submitted to Constant Contact")]
    # When the lost answer's activity did all the work, the bot never learns its id: nothing to announce.
    assert len(submitted) == activities - 1


def test_a_stuck_activity_is_reported_slow_then_lost_after_24_hours(world: World) -> None:
    """An activity stops progressing | after 10 quiet minutes the thread says it is much slower than expected
    and polls slow down; after 24 h the batch is lost and the summary lists its tags as not deleted."""
    ids = add_tags(world, 2)
    world.cc.faults.stuck = True
    request_id, card = approve(world, ids)
    world.driver.wait_for(lambda: world.store.batches(request_id)[0].percent_done == 50, what="the activity at 50%")
    activity_id = world.store.batches(request_id)[0].activity_id
    world.clock.advance(minutes=11)
    snail = world.driver.wait_for(lambda: next((t for t in thread_texts(world, card) if ":snail:" in t), None),
                                  what="the slow notice")
    assert snail == (f":snail: Activity `{activity_id}` is taking much longer than expected (50% done). "
                     "I will keep checking, less often.")
    world.clock.advance(hours=25)
    assert wait_finished(world, request_id) == "failed"
    summary = the_summary(world, card)
    assert summary.startswith(summary_head(world, request_id, 0, 2, 1, ":x:"))
    assert summary.count("activity ended `lost`: Constant Contact did not finish this activity within 24 h.") == 2
    assert len([t for t in thread_texts(world, card) if ":snail:" in t]) == 1


def test_a_failed_activity_reports_constant_contacts_errors(world: World) -> None:
    """An activity ends `failed` with errors | the thread quotes Constant Contact's errors; the summary lists
    every tag not deleted and why."""
    ids = add_tags(world, 4)
    request_id, card = to_card(world, ids)
    world.cc.remove_tag(ids[0])
    world.cc.faults.fail_activities = True
    world.driver.click(world.people.approver, card, "Approve")
    assert wait_finished(world, request_id) == "completed_with_errors"
    activity = activities_of(world, ids)[0]
    problem = [t for t in thread_texts(world, card) if t.startswith(":warning: Activity")]
    assert problem == [f":warning: Activity `{activity['activity_id']}` ended `failed`: Tag {ids[0]} not found; "
                       "Internal error: the activity failed before all tags were deleted."]
    remaining = [i for i in ids if world.cc.tag_exists(i)]
    summary = the_summary(world, card)
    assert summary.startswith(summary_head(world, request_id, 4 - len(remaining), 4, 1, ":warning:"))
    assert f"*Not deleted ({len(remaining)}):*" in summary
    for tag_id in remaining:
        assert (f"`{tag_id}` — activity ended `failed`: Tag {ids[0]} not found") in summary


def test_a_vanished_activity_is_marked_lost(world: World) -> None:
    """An activity vanishes (404) | the batch is marked lost; the summary lists the tags that still exist as
    not deleted, with the reason."""
    ids = add_tags(world, 2)
    world.cc.next_activity_seconds = [30.0]
    request_id, card = approve(world, ids)
    activity_id = world.driver.wait_for(lambda: world.store.batches(request_id)[0].activity_id, what="activity id")
    world.cc.forget_activity(activity_id)
    assert wait_finished(world, request_id) == "failed"
    summary = the_summary(world, card)
    assert summary.startswith(summary_head(world, request_id, 0, 2, 1, ":x:"))
    reason = ("activity ended `lost`: Constant Contact no longer knows this activity (records are kept for 10 days). "
              "Check these tags in Constant Contact.")
    assert all(f"`{i}` — {reason}" in summary for i in ids), summary
    assert world.store.batches(request_id)[0].state == "lost"
