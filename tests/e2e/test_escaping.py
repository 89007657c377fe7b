"""Outside text reaches Slack escaped: tag names, rejection reasons and Constant Contact's errors cannot
start a line, format, mention or link (asserted on what the Slack emulator recorded)."""

from __future__ import annotations

import pytest

from bot.sandbox.world import World
from tests.e2e.helpers import FAST_POLLS, add_tags, preview_for, refreshed, request_to_card

FAKE_STATUS = "X\n*Status:* :white_check_mark: Approved by <@{approver}>"
# What Slack shows for it: one line, look-alikes for `*` and `_`, the mention as text.
FAKE_STATUS_SHOWN = "X ∗Status:∗ :whiteˍcheckˍmark: Approved by &lt;@{approver}&gt;"
ALARM = "<!channel> <https://evil.example|click>"
ALARM_SHOWN = "&lt;!channel&gt; &lt;https://evil.example|click&gt;"
CC_ERROR = "Deletion failed <!here> *see* <https://evil.example|details>"
CC_ERROR_SHOWN = "Deletion failed &lt;!here&gt; ∗see∗ &lt;https://evil.example|details&gt;"


@pytest.fixture
def world_env() -> dict[str, str]:
    return dict(FAST_POLLS)


def mrkdwn_texts(blocks: list[dict]) -> list[str]:
    texts = [b["text"]["text"] for b in blocks if isinstance(b.get("text"), dict)]
    return texts + [e["text"] for b in blocks for e in b.get("elements") or [] if isinstance(e.get("text"), str)]


def status_lines(blocks: list[dict]) -> list[str]:
    return [line for text in mrkdwn_texts(blocks) for line in text.split("\n") if line.startswith("*Status:*")]


def the_card(world: World):  # noqa: ANN201
    return world.driver.wait_for(lambda: next((m for m in world.slack.messages(world.channel)
                                               if "Deletion request #" in m.text), None), what="the card")


def test_a_tag_name_cannot_write_a_status_line_on_the_preview_or_the_card(world: World) -> None:
    approver = world.people.outsider  # the card mentions the real approvers; nobody mentions Otto
    fake, = add_tags(world, (FAKE_STATUS.format(approver=approver), 3))
    world.driver.slash_command(world.people.requester, world.channel, f"{fake} reason: cleanup")
    preview = preview_for(world, world.people.requester)
    listed = f"• *{FAKE_STATUS_SHOWN.format(approver=approver)}* `{fake}` — 3 contacts"
    assert listed in "\n".join(mrkdwn_texts(preview.blocks)).split("\n")
    assert status_lines(preview.blocks) == []
    world.driver.click(world.people.requester, preview, "Request approval")
    card = the_card(world)
    assert listed in "\n".join(mrkdwn_texts(card.blocks)).split("\n")
    assert len(status_lines(card.blocks)) == 1 and status_lines(card.blocks)[0].startswith("*Status:* Waiting")
    assert f"<@{approver}>" not in str(card.blocks)


def test_a_rejection_reason_reaches_the_requester_and_the_card_escaped(world: World) -> None:
    spring, = add_tags(world, ("Spring Promo 2024", 120))
    request_id, card = request_to_card(world, f"{spring} reason: campaign over")
    world.driver.click(world.people.approver, card, "Reject")
    view = world.driver.wait_for(
        lambda: next((v for v in world.slack.views.values() if v.user == world.people.approver), None),
        what="the reject modal")
    world.driver.submit_view(world.people.approver, view, {"reason": {"reason": f"{ALARM}\n*done* _now_"}})
    world.driver.wait_for(lambda: world.store.get_request(request_id).state == "rejected", what="rejection")
    world.flush_slack()
    dms = [m.text for m in world.slack.messages(world.slack.open_dm(world.people.requester)) if "rejected" in m.text]
    assert dms == [f":no_entry: Your deletion request #{request_id} was rejected by <@{world.people.approver}>: "
                   f"{ALARM_SHOWN} ∗done∗ ˍnowˍ"]
    status = status_lines(refreshed(world, card).blocks)
    assert status == [f"*Status:* :no_entry: Rejected by <@{world.people.approver}>: {ALARM_SHOWN} ∗done∗ ˍnowˍ"]


def test_constant_contacts_activity_errors_are_posted_escaped(world: World) -> None:
    ids = add_tags(world, ("Tag A", 1), ("Tag B", 2))
    world.cc.faults.fail_activities = True
    world.cc.faults.fail_activity_error = CC_ERROR
    request_id, card = request_to_card(world, " ".join(ids) + " reason: cleanup")
    world.driver.click(world.people.approver, card, "Approve")
    terminal = ("completed", "completed_with_errors", "failed")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state in terminal, timeout=30,
                          what="the request to finish")
    world.driver.wait_for(lambda: world.store.notices(request_id).get("summary") == "posted", what="the summary")
    world.flush_slack()
    thread = [m.text for m in world.slack.thread(world.channel, card.ts)]
    problem = [t for t in thread if t.startswith(":warning: Activity")]
    assert len(problem) == 1 and problem[0].endswith(f"ended `failed`: {CC_ERROR_SHOWN}")
    summary = next(t for t in thread if "is finished" in t)
    assert f"activity ended `failed`: {CC_ERROR_SHOWN}" in summary
    assert not [t for t in thread if "<!here>" in t or "<https://evil" in t or "*see*" in t]
