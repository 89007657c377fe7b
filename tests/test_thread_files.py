"""Notifier.upload_to_thread: a file in a request card's thread, once, with the bytes only on Slack's file host."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from slack_sdk import WebClient

from bot.approvers import ApproverDirectory
from bot.notifier import Notifier
from bot.sandbox.slack import SlackEmulator
from bot.slack_outbox import SlackOutbox
from bot.store import NewTag, Store

CHANNEL, REQUESTER = "C0APPROVALS", "U0RITA"
CSV = ("tag_name,old_tag_id,contact_id,contact_status\n"
       "Old Webinar 2023,f728b4fa-0000-4000-8000-000000000001,c-1,active\n").encode()


@dataclass
class Rig:
    slack: SlackEmulator
    store: Store
    notifier: Notifier
    request_id: int
    card_ts: str

    def restart(self) -> Notifier:
        """A new process on the same database: a new client, outbox and notifier."""
        self.notifier.outbox.stop(timeout=1)
        self.notifier = new_notifier(self.slack, self.store)
        return self.notifier

    def drain(self) -> None:
        assert self.notifier.outbox.drain(10)

    def file_messages(self) -> list:
        return [m for m in self.slack.thread(CHANNEL, self.card_ts) if m.files]


def new_notifier(slack: SlackEmulator, store: Store) -> Notifier:
    client = WebClient(token=slack.bot_token, base_url=slack.api_url, timeout=5)
    approvers = ApproverDirectory([], None, lambda group: [])
    # Slack's pace ten times faster, and short back-offs, so refusals are retried and given up quickly.
    outbox = SlackOutbox(retry_seconds=0.02, max_attempts=3, speedup=10)
    return Notifier(store, client, approvers, outbox=outbox)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with SlackEmulator() as slack:
        slack.add_user(REQUESTER, "rita")
        slack.add_channel(CHANNEL, "approvals", members=[REQUESTER, slack.bot_user_id])
        store = Store(tmp_path / "bot.db")
        request_id = store.create_request(
            requester_id=REQUESTER, team_id=slack.team_id, origin_channel=CHANNEL, source="text", reason="cleanup",
            required_approvals=1, tags=[NewTag("f728b4fa-0000-4000-8000-000000000001", "Old Webinar 2023", 1)])
        card_ts = WebClient(token=slack.bot_token, base_url=slack.api_url).chat_postMessage(
            channel=CHANNEL, text="card")["ts"]
        store.update_request(request_id, card_ts=card_ts, approval_channel=CHANNEL)
        rig = Rig(slack, store, new_notifier(slack, store), request_id, card_ts)
        try:
            yield rig
        finally:
            rig.notifier.outbox.stop(timeout=1)
            store.close()


def upload(rig: Rig, key: str = "snapshot") -> bool:
    return rig.notifier.upload_to_thread(rig.request_id, key, "snapshot-1.csv", CSV, "Snapshot of the tagged contacts")


def test_a_file_is_uploaded_into_the_thread_once_across_two_calls(rig: Rig) -> None:
    assert upload(rig) is True
    assert upload(rig) is False
    rig.drain()
    [message] = rig.file_messages()
    assert (message.thread_ts, message.text) == (rig.card_ts, "Snapshot of the tagged contacts")
    [file] = message.files
    assert (file["name"], file["size"]) == ("snapshot-1.csv", len(CSV))
    assert rig.slack.file_content(file["id"]) == CSV
    assert rig.store.notices(rig.request_id)["snapshot"] == "posted"
    assert len(rig.slack.calls_to("files.getUploadURLExternal")) == 1
    # The bytes went to the emulator's upload URL without the bot token.
    assert [(p.file_id, p.sent_authorization) for p in rig.slack.upload_posts] == [(file["id"], False)]
    # Another key is another file.
    assert upload(rig, "snapshot:2") is True
    rig.drain()
    assert len(rig.file_messages()) == 2


def test_a_refused_completion_is_retried_and_the_file_lands_once_even_after_a_restart(rig: Rig) -> None:
    rig.slack.fail_next("files.completeUploadExternal", "internal_error")
    assert upload(rig) is True
    rig.drain()
    assert [c.ok for c in rig.slack.calls_to("files.completeUploadExternal")] == [False, True]
    assert len(rig.file_messages()) == 1
    # The retry asked for a new upload URL; the first, never completed, file is not in Slack.
    first, second = (p.file_id for p in rig.slack.upload_posts)
    assert first != second and [m.files[0]["id"] for m in rig.file_messages()] == [second]

    rig.restart()
    assert upload(rig) is False
    rig.drain()
    assert len(rig.file_messages()) == 1
    assert len(rig.slack.calls_to("files.getUploadURLExternal")) == 2


def test_the_claim_is_released_when_slack_keeps_refusing(rig: Rig) -> None:
    rig.slack.remove_member(CHANNEL, rig.slack.bot_user_id)
    assert upload(rig) is True
    rig.drain()
    assert [c.error for c in rig.slack.calls_to("files.completeUploadExternal")] == ["not_in_channel"] * 3
    assert "snapshot" not in rig.store.notices(rig.request_id)
    assert rig.file_messages() == []
    # Once the bot is back in the channel the same upload may be made, once.
    rig.slack.add_member(CHANNEL, rig.slack.bot_user_id)
    assert upload(rig) is True
    rig.drain()
    assert len(rig.file_messages()) == 1
    assert rig.store.notices(rig.request_id)["snapshot"] == "posted"


def test_a_request_without_a_card_gets_no_file(rig: Rig) -> None:
    rig.store.update_request(rig.request_id, card_ts=None)
    assert upload(rig) is False
    assert rig.slack.calls_to("files.getUploadURLExternal") == []
    assert rig.store.notices(rig.request_id) == {}


@pytest.mark.parametrize("foreign", ["other port", "files.slack.com"])
def test_an_upload_url_off_slacks_file_host_gets_nothing(rig: Rig, foreign: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with SlackEmulator() as elsewhere:
        # Another loopback origin (same host, other port), or Slack's real file host while the bot
        # talks to the emulator: neither is where this Slack keeps its files.
        rig.slack.hand_out_upload_urls_on(elsewhere.root_url if foreign == "other port" else "https://files.slack.com")
        with caplog.at_level(logging.WARNING, logger="bot.notifier"):
            assert upload(rig) is True
            rig.drain()
        assert elsewhere.upload_posts == [] and elsewhere.calls == []
    assert rig.slack.upload_posts == []
    assert len(rig.slack.calls_to("files.getUploadURLExternal")) == 3
    assert rig.slack.calls_to("files.completeUploadExternal") == []
    assert "snapshot" not in rig.store.notices(rig.request_id)
    assert rig.file_messages() == []
    assert "upload URL refused" in caplog.text


def test_an_upload_that_landed_just_before_a_crash_is_recognised_by_its_name(rig: Rig) -> None:
    assert rig.notifier.upload_file_once(rig.request_id, "snapshot-request-1.csv", CSV, "Snapshot") is True
    rig.drain()
    # The process dies after Slack completed the upload but before the notice was marked posted.
    with rig.store._unit() as db:
        db.execute("UPDATE notices SET state = 'claimed', ts = NULL WHERE request_id = ?", [rig.request_id])
    notifier = rig.restart()
    notifier.settle_claimed(rig.request_id)
    assert rig.store.notices(rig.request_id)["file:snapshot-request-1.csv"] == "posted"
    assert notifier.upload_file_once(rig.request_id, "snapshot-request-1.csv", CSV, "Snapshot") is False
    rig.drain()
    assert len(rig.file_messages()) == 1
