"""The driver against a throwaway Bolt app served by waitress on loopback, backed by the emulator."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import waitress
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from bot.sandbox.slack import DriverError, SlackDriver, SlackEmulator

SIGNING_SECRET = "sandbox-signing-secret"
ALICE, BOB, LEAD = "U0ALICE", "U0BOB", "U0LEAD"
GENERAL, QUIET = "C0GENERAL", "C0QUIET"

CARD = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Delete 2 tags?"}},
    {
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "value": "job-7",
             "action_id": "approve"},
            {"type": "button", "text": {"type": "plain_text", "text": "Reject"}, "value": "job-7",
             "action_id": "reject"},
        ],
    },
]
MODAL = {
    "type": "modal",
    "callback_id": "upload",
    "title": {"type": "plain_text", "text": "Delete tags"},
    "submit": {"type": "plain_text", "text": "Preview"},
    "private_metadata": GENERAL,
    "blocks": [
        {"type": "input", "block_id": "ids", "label": {"type": "plain_text", "text": "Tag ids"},
         "element": {"type": "plain_text_input", "action_id": "value"}},
        {"type": "input", "block_id": "file", "optional": True, "label": {"type": "plain_text", "text": "CSV"},
         "element": {"type": "file_input", "action_id": "csv", "filetypes": ["csv"]}},
        {"type": "input", "block_id": "mode", "label": {"type": "plain_text", "text": "Mode"},
         "element": {"type": "static_select", "action_id": "pick", "options": [
             {"text": {"type": "plain_text", "text": "By id"}, "value": "id"},
             {"text": {"type": "plain_text", "text": "By name"}, "value": "name"}]}},
    ],
}
PREVIEW = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "2 tags, 10 contacts"}},
    {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Submit for approval"}, "action_id": "submit"}]},
]
HOME = {
    "type": "home",
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Your requests"}},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Refresh"}, "action_id": "refresh"}]},
    ],
}


@dataclass
class Seen:
    """What the throwaway app's listeners received."""

    events: list[dict[str, Any]] = field(default_factory=list)
    retry_nums: list[str | None] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[bytes] = field(default_factory=list)


def build_app(emulator: SlackEmulator, seen: Seen) -> App:
    app = App(
        client=WebClient(token=emulator.bot_token, base_url=emulator.api_url),
        signing_secret=SIGNING_SECRET,
        token_verification_enabled=False,
    )
    register_commands(app)
    register_actions(app)
    register_events(app, emulator, seen)
    return app


def register_commands(app: App) -> None:
    @app.command("/deletetags")
    def on_command(ack: Any, command: dict, respond: Any, client: WebClient) -> None:
        if command["text"] == "preview":
            ack(text="Preview", blocks=PREVIEW)
            return
        if command["text"] == "modal":
            ack()
            client.views_open(trigger_id=command["trigger_id"], view=MODAL)
            return
        ack(f"Checking {command['text']}")
        respond(text=f"Found {len(command['text'].split())} tags")
        client.chat_postMessage(channel=command["channel_id"], text="Approval needed", blocks=CARD)


def register_actions(app: App) -> None:
    @app.action("approve")
    def on_approve(ack: Any, body: dict, client: WebClient) -> None:
        ack()
        text = f"Approved by <@{body['user']['id']}> ({body['actions'][0]['value']})"
        client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text=text, blocks=[])

    @app.action("reject")
    def on_reject(ack: Any, respond: Any) -> None:
        ack()
        respond(text="Rejected", replace_original=True)

    @app.action("submit")
    def on_submit_preview(ack: Any, body: dict, respond: Any) -> None:
        ack()
        respond(text=f"Submitted (ephemeral: {body['container']['is_ephemeral']})", replace_original=True)

    @app.action("refresh")
    def on_refresh(ack: Any, body: dict, client: WebClient) -> None:
        ack()
        refreshed = {**HOME, "private_metadata": f"refreshed by {body['user']['id']} in {body['container']['type']}"}
        client.views_publish(user_id=body["user"]["id"], view=refreshed)


def register_events(app: App, emulator: SlackEmulator, seen: Seen) -> None:
    @app.view("upload")
    def on_submit(ack: Any, view: dict) -> None:
        values = view["state"]["values"]
        seen.submissions.append(values)
        if not values["ids"]["value"]["value"]:
            ack(response_action="errors", errors={"ids": "Enter at least one tag id"})
            return
        ack()

    @app.event("message")
    def on_message(event: dict, request: Any) -> None:
        seen.retry_nums.append((request.headers.get("x-slack-retry-num") or [None])[0])
        for shared in event.get("files", []):
            download = urllib.request.Request(
                shared["url_private_download"], headers={"Authorization": f"Bearer {emulator.bot_token}"}
            )
            with urllib.request.urlopen(download, timeout=5) as answer:
                seen.downloads.append(answer.read())
        seen.events.append(event)

    @app.event("app_mention")
    def on_mention(event: dict) -> None:
        seen.events.append(event)

    @app.event("app_home_opened")
    def on_home(event: dict, client: WebClient) -> None:
        client.views_publish(user_id=event["user"], view=HOME)


@contextmanager
def serve(app: App) -> Iterator[str]:
    server = waitress.create_server(SlackRequestHandler(app), host="127.0.0.1", port=0, asyncore_loop_timeout=0.05)
    thread = threading.Thread(target=server.run, name="bolt-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}/slack/events"
    finally:
        # Closing waitress from another thread races its select(); close everything inside its own loop.
        server.trigger.pull_trigger(lambda: [dispatcher.close() for dispatcher in list(server._map.values())])
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()


@dataclass
class Workspace:
    emulator: SlackEmulator
    driver: SlackDriver
    seen: Seen
    app: App


def populate(emulator: SlackEmulator) -> None:
    emulator.add_user(ALICE, "alice")
    emulator.add_user(BOB, "bob")
    emulator.add_user(LEAD, "lead")
    emulator.add_channel(GENERAL, "general", members=[ALICE, BOB, LEAD, emulator.bot_user_id])
    emulator.add_channel(QUIET, "quiet", members=[ALICE])


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator() as emulator:
        populate(emulator)
        seen = Seen()
        app = build_app(emulator, seen)
        with serve(app) as url:
            yield Workspace(emulator, SlackDriver(emulator, url, SIGNING_SECRET), seen, app)


def approval_card(ws: Workspace) -> Any:
    return ws.driver.wait_for(
        lambda: next(m for m in ws.emulator.messages(GENERAL) if m.text == "Approval needed"), what="the approval card"
    )


# -- signatures -----------------------------------------------------------------------------------------


def test_signed_command_is_acked_and_respond_reaches_the_emulator(workspace: Workspace) -> None:
    response = workspace.driver.slash_command(ALICE, GENERAL, "123 456")
    assert response.status == 200 and response.elapsed < 3
    assert response.body == "Checking 123 456"
    found = workspace.driver.wait_for(
        lambda: [e for e in workspace.emulator.ephemerals if e.via == "response_url"], what="respond()"
    )
    assert (found[0].user, found[0].channel, found[0].text) == (ALICE, GENERAL, "Found 2 tags")
    [acked] = [e for e in workspace.emulator.ephemerals if e.via == "ack"]
    assert (acked.user, acked.text) == (ALICE, "Checking 123 456")
    assert workspace.emulator.responses[0].body["text"] == "Found 2 tags"


def test_command_text_is_escaped_like_slack_does(workspace: Workspace) -> None:
    response = workspace.driver.slash_command(ALICE, GENERAL, "a<b & <@U0BOB>")
    assert response.body == "Checking a&lt;b &amp; <@U0BOB>"


def test_bolt_rejects_bad_signatures_and_stale_timestamps(workspace: Workspace) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"}).encode()
    good = workspace.driver.send_raw(body, {"Content-Type": "application/json", **workspace.driver.sign(body)})
    assert good.status == 200 and "c-123" in good.body
    forged = {**workspace.driver.sign(body), "X-Slack-Signature": "v0=" + "0" * 64}
    assert workspace.driver.send_raw(body, {"Content-Type": "application/json", **forged}).status == 401
    stale = workspace.driver.sign(body, timestamp=int(time.time()) - 301)
    assert workspace.driver.send_raw(body, {"Content-Type": "application/json", **stale}).status == 401
    wrong_secret = SlackDriver(workspace.emulator, workspace.driver.app_url, "not-the-secret")
    assert wrong_secret.slash_command(ALICE, GENERAL, "1").status == 401


def test_failed_command_shows_the_person_slacks_error(workspace: Workspace) -> None:
    wrong_secret = SlackDriver(workspace.emulator, workspace.driver.app_url, "not-the-secret")
    wrong_secret.slash_command(ALICE, GENERAL, "1")
    [shown] = workspace.emulator.ephemerals
    assert (shown.via, shown.text) == ("slack", '/deletetags failed with the error "dispatch_failed"')


# -- clicks ---------------------------------------------------------------------------------------------


def test_click_finds_the_button_by_its_text_and_the_app_updates_the_card(workspace: Workspace) -> None:
    workspace.driver.slash_command(ALICE, GENERAL, "1 2")
    card = approval_card(workspace)
    assert workspace.driver.click(LEAD, card, "Approve").status == 200
    updated = workspace.driver.wait_for(
        lambda: (m := workspace.emulator.message(GENERAL, card.ts)).edits and m, what="the card update"
    )
    assert updated.text == "Approved by <@U0LEAD> (job-7)" and updated.blocks == []
    with pytest.raises(DriverError, match=r"no button 'Approve'; buttons found: \(none\)"):
        workspace.driver.click(LEAD, card, "Approve")


def test_click_reports_the_buttons_it_found(workspace: Workspace) -> None:
    workspace.driver.slash_command(ALICE, GENERAL, "1")
    card = approval_card(workspace)
    with pytest.raises(DriverError, match=r"no button 'Delete'; buttons found: \[ Approve \] \[ Reject \]"):
        workspace.driver.click(LEAD, card, "Delete")


def test_click_response_url_replaces_the_original(workspace: Workspace) -> None:
    workspace.driver.slash_command(ALICE, GENERAL, "1")
    card = approval_card(workspace)
    workspace.driver.click(BOB, card, "reject")
    rejected = workspace.driver.wait_for(
        lambda: workspace.emulator.message(GENERAL, card.ts).text == "Rejected" or None, what="the rejection"
    )
    assert rejected and workspace.emulator.message(GENERAL, card.ts).edits[0].text == "Approval needed"


def test_click_on_an_ephemeral_ack_and_replace_it_through_response_url(workspace: Workspace) -> None:
    workspace.driver.slash_command(ALICE, GENERAL, "preview")
    [preview] = workspace.emulator.ephemerals
    assert (preview.via, preview.user) == ("ack", ALICE)
    with pytest.raises(DriverError, match="cannot see"):
        workspace.driver.click(BOB, preview, "Submit for approval")
    assert workspace.driver.click(ALICE, preview, "Submit for approval").status == 200
    replaced = workspace.driver.wait_for(lambda: workspace.emulator.ephemeral(preview.ts).edits and
                                         workspace.emulator.ephemeral(preview.ts))
    assert replaced.text == "Submitted (ephemeral: True)" and replaced.blocks == []


def test_home_tab_and_view_button(workspace: Workspace) -> None:
    assert workspace.driver.open_home(ALICE).status == 200
    home = workspace.driver.wait_for(lambda: workspace.emulator.home(ALICE), what="the published home")
    assert workspace.driver.click(ALICE, home, "Refresh").status == 200
    workspace.driver.wait_for(lambda: "refreshed by U0ALICE in view" in workspace.emulator.home(ALICE).private_metadata)


# -- modals ---------------------------------------------------------------------------------------------


def test_modal_opened_from_a_command_and_submitted(workspace: Workspace) -> None:
    ws = workspace
    ws.driver.slash_command(ALICE, GENERAL, "modal")
    view = ws.driver.wait_for(lambda: next(iter(ws.emulator.views.values())), what="the modal")
    assert (view.title, view.user, view.channel) == ("Delete tags", ALICE, GENERAL)
    rejected = ws.driver.submit_view(ALICE, view, {"ids": {"value": ""}, "mode": {"pick": "By id"}})
    assert rejected.json()["response_action"] == "errors"
    still_open = ws.emulator.view(view.id)
    assert still_open.errors == {"ids": "Enter at least one tag id"} and not still_open.closed
    upload = ws.emulator.add_file(ALICE, "tags.csv", b"id\n1\n")
    accepted = ws.driver.submit_view(ALICE, view, {"ids": {"value": "1 2"}, "file": {"csv": {"files": [upload]}},
                                                   "mode": {"pick": "name"}})
    assert accepted.status == 200 and ws.emulator.view(view.id).closed
    values = ws.seen.submissions[-1]
    assert values["ids"]["value"] == {"type": "plain_text_input", "value": "1 2"}
    assert values["file"]["csv"]["files"][0]["id"] == upload["id"]
    assert values["mode"]["pick"]["selected_option"]["value"] == "name"
    with pytest.raises(DriverError, match="is closed"):
        ws.driver.submit_view(ALICE, view, {})


def test_submit_view_names_the_inputs_when_given_a_wrong_block(workspace: Workspace) -> None:
    workspace.driver.slash_command(ALICE, GENERAL, "modal")
    view = workspace.driver.wait_for(lambda: next(iter(workspace.emulator.views.values())))
    with pytest.raises(DriverError, match=r"ids/value \(plain_text_input\), file/csv \(file_input\)"):
        workspace.driver.submit_view(ALICE, view, {"tag_ids": {"value": "1"}})


# -- events ---------------------------------------------------------------------------------------------


def test_file_share_event_is_delivered_and_the_file_downloads(workspace: Workspace) -> None:
    response = workspace.driver.upload_file(ALICE, GENERAL, "tags.csv", b"id\n42\n", text="please delete")
    assert response.status == 200
    event = workspace.driver.wait_for(lambda: workspace.seen.events and workspace.seen.events[0], what="file_share")
    assert (event["subtype"], event["text"], event["channel_type"]) == ("file_share", "please delete", "channel")
    assert event["files"][0]["name"] == "tags.csv" and event["files"][0]["size"] == 6
    assert workspace.driver.wait_for(lambda: workspace.seen.downloads) == [b"id\n42\n"]
    [stored] = workspace.emulator.messages(GENERAL)
    assert stored.user == ALICE and stored.files[0]["id"] == event["files"][0]["id"]


def test_message_with_mention_in_a_thread_sends_message_and_app_mention(workspace: Workspace) -> None:
    parent = workspace.emulator.record_bot_message(GENERAL, "progress card")
    response = workspace.driver.post_message(BOB, GENERAL, "<@U0BOT> status?", thread_ts=parent.ts)
    assert response.status == 200 and [r.status for r in response.related] == [200]
    events = workspace.driver.wait_for(lambda: len(workspace.seen.events) == 2 and workspace.seen.events)
    assert sorted(e["type"] for e in events) == ["app_mention", "message"]
    assert all(e["thread_ts"] == parent.ts and e["ts"] != parent.ts for e in events)
    assert [m.text for m in workspace.emulator.thread(GENERAL, parent.ts)] == ["progress card", "<@U0BOT> status?"]


def test_direct_message_to_the_bot(workspace: Workspace) -> None:
    workspace.driver.post_message(ALICE, workspace.emulator.bot_user_id, "hello bot")
    event = workspace.driver.wait_for(lambda: workspace.seen.events and workspace.seen.events[0])
    assert event["channel_type"] == "im" and event["channel"].startswith("D")


def test_no_event_from_a_channel_without_the_bot(workspace: Workspace) -> None:
    response = workspace.driver.post_message(ALICE, QUIET, "anyone?")
    assert not response.delivered and response.status == 0
    assert [m.text for m in workspace.emulator.messages(QUIET)] == ["anyone?"]
    with pytest.raises(DriverError, match="not a member"):
        workspace.driver.post_message(BOB, QUIET, "let me in")


def test_event_retries_carry_the_retry_headers(workspace: Workspace) -> None:
    event = {"type": "message", "user": ALICE, "text": "x", "ts": "1.000001", "channel": GENERAL,
             "channel_type": "channel"}
    workspace.driver.send_event(event, event_id="Ev1")
    workspace.driver.send_event(event, event_id="Ev1", retry_num=1)
    seen = workspace.driver.wait_for(lambda: len(workspace.seen.retry_nums) == 2 and workspace.seen.retry_nums)
    assert seen == [None, "1"]


def test_wait_for_timeout_includes_the_transcript(workspace: Workspace) -> None:
    workspace.driver.post_message(ALICE, GENERAL, "is anybody there?")
    with pytest.raises(AssertionError) as failure:
        workspace.driver.wait_for(lambda: None, timeout=0.2, what="a miracle")
    message = str(failure.value)
    assert "waiting for a miracle" in message
    assert "── #general (C0GENERAL) ──" in message and "@alice: is anybody there?" in message


# -- Socket Mode ------------------------------------------------------------------------------------------


def test_socket_mode_round_trip(workspace: Workspace) -> None:
    ws = workspace
    handler = SocketModeHandler(ws.app, app_token=ws.emulator.app_token)
    handler.connect()
    try:
        driver = SlackDriver(ws.emulator, "", "", mode="socket")
        response = driver.slash_command(ALICE, GENERAL, "9")
        assert response.status == 200 and response.reply() == {"text": "Checking 9"}
        card = approval_card(ws)
        assert driver.click(LEAD, card, "Approve").status == 200
        driver.wait_for(lambda: ws.emulator.message(GENERAL, card.ts).edits, what="the card update over Socket Mode")
        driver.post_message(ALICE, GENERAL, "over the socket")
        driver.wait_for(lambda: any(e.get("text") == "over the socket" for e in ws.seen.events))
        envelope_types = [envelope["type"] for envelope in ws.emulator.socket_hub().envelopes]
        assert envelope_types == ["slash_commands", "interactive", "events_api"]
    finally:
        handler.close()
