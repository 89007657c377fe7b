"""The Slack emulator, exercised through the real slack_sdk WebClient and raw HTTP over loopback."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.sandbox.slack import SlackEmulator, render_transcript

ALICE, BOB, LEAD = "U0ALICE", "U0BOB", "U0LEAD"
GENERAL, SECRET_ROOM = "C0GENERAL", "G0SECRET"

APPROVAL_BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Delete 3 tags requested by <@U0ALICE>?"}},
    {
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "value": "job-1",
             "action_id": "approve"},
            {"type": "button", "text": {"type": "plain_text", "text": "Reject"}, "value": "job-1",
             "action_id": "reject"},
        ],
    },
]


class FakeClock:
    """A settable clock, so expiry can be tested without waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def populate(emulator: SlackEmulator) -> None:
    emulator.add_user(ALICE, "alice", real_name="Alice Example")
    emulator.add_user(BOB, "bob")
    emulator.add_user(LEAD, "lead", is_admin=True)
    emulator.add_channel(GENERAL, "general", members=[ALICE, BOB, LEAD, emulator.bot_user_id])
    emulator.add_channel(SECRET_ROOM, "secret", members=[ALICE], is_private=True)
    emulator.add_usergroup("S0LEADS", "team-leads", [LEAD])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[SlackEmulator]:
    with SlackEmulator(clock=clock) as running:
        populate(running)
        yield running


@pytest.fixture
def client(emulator: SlackEmulator) -> WebClient:
    return WebClient(token=emulator.bot_token, base_url=emulator.api_url)


def api_error(call: object) -> str:
    """Run a WebClient call that must fail; return the Slack error code."""
    with pytest.raises(SlackApiError) as failure:
        call()  # type: ignore[operator]
    return str(failure.value.response["error"])


def raw_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read()


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as failure:
        return failure.code, dict(failure.headers), failure.read()


# -- auth ----------------------------------------------------------------------------------------------


def test_auth_test_identifies_the_bot(client: WebClient, emulator: SlackEmulator) -> None:
    answer = client.auth_test()
    assert (answer["user_id"], answer["team_id"], answer["bot_id"]) == ("U0BOT", "T0SANDBOX", emulator.bot_id)


def test_wrong_token_is_invalid_auth_and_no_token_is_not_authed(emulator: SlackEmulator) -> None:
    assert api_error(WebClient(token="xoxb-wrong", base_url=emulator.api_url).auth_test) == "invalid_auth"
    status, _, body = raw_post(emulator.api_url + "auth.test", b"", {})
    assert (status, json.loads(body)["error"]) == (200, "not_authed")


def test_token_may_travel_as_a_form_parameter(emulator: SlackEmulator) -> None:
    body = f"token={emulator.bot_token}".encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, answer = raw_post(emulator.api_url + "auth.test", body, form)
    assert status == 200 and json.loads(answer)["ok"] is True


def test_socket_mode_url_needs_the_app_level_token(client: WebClient, emulator: SlackEmulator) -> None:
    assert api_error(lambda: client.apps_connections_open(app_token=emulator.bot_token)) == "not_allowed_token_type"
    url = client.apps_connections_open(app_token=emulator.app_token)["url"]
    assert url.startswith("ws://127.0.0.1:")
    assert api_error(lambda: client.auth_test(token=emulator.app_token)) == "not_allowed_token_type"


def test_unknown_method(client: WebClient) -> None:
    assert api_error(lambda: client.api_call("chat.teleport")) == "unknown_method"


def test_calls_are_recorded_without_the_token(client: WebClient, emulator: SlackEmulator) -> None:
    client.chat_postMessage(channel=GENERAL, text="hello")
    call = emulator.calls_to("chat.postMessage")[-1]
    assert call.ok and call.status == 200 and call.params["text"] == "hello"
    assert emulator.bot_token not in json.dumps(call.params)


# -- messages -------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_errors(client: WebClient, emulator: SlackEmulator) -> None:
    assert api_error(lambda: client.chat_postMessage(channel=SECRET_ROOM, text="hi")) == "not_in_channel"
    assert api_error(lambda: client.chat_postMessage(channel="C0NOPE", text="hi")) == "channel_not_found"
    assert api_error(lambda: client.chat_postMessage(channel=GENERAL)) == "no_text"
    emulator.remove_member(GENERAL, emulator.bot_user_id)
    assert api_error(lambda: client.chat_postMessage(channel=GENERAL, text="hi")) == "not_in_channel"
    assert emulator.messages(GENERAL) == []


def test_thread_replies_and_broadcast(client: WebClient, emulator: SlackEmulator) -> None:
    parent = client.chat_postMessage(channel=GENERAL, text="card", blocks=APPROVAL_BLOCKS)["ts"]
    first = client.chat_postMessage(channel=GENERAL, text="progress 1", thread_ts=parent)["ts"]
    client.chat_postMessage(channel=GENERAL, text="done", thread_ts=first, reply_broadcast=True)
    thread = emulator.thread(GENERAL, parent)
    assert [m.text for m in thread] == ["card", "progress 1", "done"]
    assert emulator.thread(GENERAL, first) == thread
    assert [m.thread_ts for m in thread] == [None, parent, parent]
    assert thread[2].reply_broadcast and not thread[1].reply_broadcast
    orphan = api_error(lambda: client.chat_postMessage(channel=GENERAL, text="x", thread_ts="1.000001"))
    assert orphan == "thread_not_found"


def test_post_to_a_user_id_opens_the_dm(client: WebClient, emulator: SlackEmulator) -> None:
    posted = client.chat_postMessage(channel=ALICE, text="psst")
    dm = client.conversations_open(users=ALICE)["channel"]["id"]
    assert posted["channel"] == dm and dm.startswith("D")
    assert emulator.channel(dm).members == {ALICE, emulator.bot_user_id}
    assert [m.text for m in emulator.messages(dm)] == ["psst"]


def test_update_keeps_history_and_refuses_others_messages(client: WebClient, emulator: SlackEmulator) -> None:
    ts = client.chat_postMessage(channel=GENERAL, text="pending", blocks=APPROVAL_BLOCKS)["ts"]
    client.chat_update(channel=GENERAL, ts=ts, text="approved", blocks=[])
    message = emulator.message(GENERAL, ts)
    assert (message.text, message.blocks) == ("approved", [])
    assert [(v.text, len(v.blocks)) for v in message.edits] == [("pending", 2)]
    assert api_error(lambda: client.chat_update(channel=GENERAL, ts="1.000001", text="x")) == "message_not_found"
    person = emulator.record_user_message(ALICE, GENERAL, "my own words")
    assert api_error(lambda: client.chat_update(channel=GENERAL, ts=person.ts, text="x")) == "cant_update_message"


def test_blocks_get_ids_and_are_validated(client: WebClient, emulator: SlackEmulator) -> None:
    blocks = [{"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Go"}}]}]
    ts = client.chat_postMessage(channel=GENERAL, text="x", blocks=blocks)["ts"]
    stored = emulator.message(GENERAL, ts).blocks[0]
    assert stored["block_id"] and stored["elements"][0]["action_id"]
    too_many = [{"type": "divider"}] * 51
    assert api_error(lambda: client.chat_postMessage(channel=GENERAL, text="x", blocks=too_many)) == "invalid_blocks"
    long_label = {"type": "button", "text": {"type": "plain_text", "text": "x" * 76}}
    long_button = [{"type": "actions", "elements": [long_label]}]
    assert api_error(lambda: client.chat_postMessage(channel=GENERAL, text="x", blocks=long_button)) == "invalid_blocks"


def test_ephemeral_needs_the_user_in_the_channel(client: WebClient, emulator: SlackEmulator) -> None:
    emulator.add_user("U0OUT", "outsider")
    outsider = api_error(lambda: client.chat_postEphemeral(channel=GENERAL, user="U0OUT", text="x"))
    assert outsider == "user_not_in_channel"
    assert api_error(lambda: client.chat_postEphemeral(channel=GENERAL, user="U0NOBODY", text="x")) == "user_not_found"
    ts = client.chat_postEphemeral(channel=GENERAL, user=BOB, text="only you")["message_ts"]
    [ephemeral] = emulator.ephemerals
    assert (ephemeral.user, ephemeral.text, ephemeral.via, ephemeral.ts) == (BOB, "only you", "chat.postEphemeral", ts)


def test_ts_values_strictly_increase_even_within_one_microsecond(client: WebClient, emulator: SlackEmulator) -> None:
    stamps = [client.chat_postMessage(channel=GENERAL, text=str(n))["ts"] for n in range(40)]
    stamps += [emulator.record_user_message(ALICE, GENERAL, str(n)).ts for n in range(200)]
    assert len(set(stamps)) == len(stamps)
    assert stamps == sorted(stamps) == sorted(stamps, key=float)
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert [m.ts for m in emulator.messages(GENERAL)] == stamps


def test_history_replies_and_members(client: WebClient, emulator: SlackEmulator) -> None:
    parent = client.chat_postMessage(channel=GENERAL, text="card")["ts"]
    client.chat_postMessage(channel=GENERAL, text="reply", thread_ts=parent)
    client.chat_postMessage(channel=GENERAL, text="later")
    assert [m["text"] for m in client.conversations_history(channel=GENERAL)["messages"]] == ["later", "card"]
    replies = client.conversations_replies(channel=GENERAL, ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["card", "reply"]
    assert api_error(lambda: client.conversations_history(channel=SECRET_ROOM)) == "not_in_channel"
    assert client.conversations_members(channel=SECRET_ROOM)["members"] == [ALICE]


def test_permalink_and_delete(client: WebClient, emulator: SlackEmulator) -> None:
    ts = client.chat_postMessage(channel=GENERAL, text="x")["ts"]
    link = client.chat_getPermalink(channel=GENERAL, message_ts=ts)["permalink"]
    assert link.endswith(f"/archives/{GENERAL}/p{ts.replace('.', '')}")
    client.chat_delete(channel=GENERAL, ts=ts)
    assert emulator.message(GENERAL, ts).deleted


# -- conversations, users, user groups ----------------------------------------------------------------


def test_conversation_and_user_info(client: WebClient, emulator: SlackEmulator) -> None:
    info = client.conversations_info(channel=GENERAL)["channel"]
    assert (info["name"], info["is_member"], info["is_private"]) == ("general", True, False)
    assert api_error(lambda: client.conversations_info(channel=SECRET_ROOM)) == "channel_not_found"
    user = client.users_info(user=ALICE)["user"]
    assert (user["name"], user["real_name"], user["deleted"]) == ("alice", "Alice Example", False)
    assert api_error(lambda: client.users_info(user="U0NOBODY")) == "user_not_found"


def test_usergroups(client: WebClient, emulator: SlackEmulator) -> None:
    assert client.usergroups_users_list(usergroup="S0LEADS")["users"] == [LEAD]
    emulator.set_usergroup_users("S0LEADS", [LEAD, BOB])
    assert client.usergroups_users_list(usergroup="S0LEADS")["users"] == [LEAD, BOB]
    assert client.usergroups_list()["usergroups"][0]["handle"] == "team-leads"
    assert api_error(lambda: client.usergroups_users_list(usergroup="team-leads")) == "no_such_subteam"
    emulator.usergroups_enabled = False
    assert api_error(lambda: client.usergroups_users_list(usergroup="S0LEADS")) == "plan_upgrade_required"


# -- rate limits and injected failures -----------------------------------------------------------------


def test_rate_limits_answer_429_with_retry_after_only_when_on(client: WebClient, emulator: SlackEmulator) -> None:
    for n in range(25):
        client.usergroups_users_list(usergroup="S0LEADS")
        client.chat_postMessage(channel=GENERAL, text=str(n))
    emulator.rate_limits = True
    for _ in range(20):
        client.usergroups_users_list(usergroup="S0LEADS")
    with pytest.raises(SlackApiError) as failure:
        client.usergroups_users_list(usergroup="S0LEADS")
    assert failure.value.response.status_code == 429
    assert failure.value.response["error"] == "ratelimited"
    assert 1 <= int(failure.value.response.headers["Retry-After"]) <= 60
    emulator.rate_limits = False
    client.usergroups_users_list(usergroup="S0LEADS")


def test_post_message_limit_is_per_channel_with_a_small_burst(
    client: WebClient, emulator: SlackEmulator, clock: FakeClock
) -> None:
    emulator.rate_limits = True
    sent = 0
    with pytest.raises(SlackApiError) as failure:
        for sent in range(10):
            client.chat_postMessage(channel=GENERAL, text=str(sent))
    assert 1 <= sent <= 5 and failure.value.response.status_code == 429
    assert failure.value.response.headers["Retry-After"] == "1"
    client.chat_postMessage(channel=ALICE, text="another channel is fine")
    clock.now += 1.0
    client.chat_postMessage(channel=GENERAL, text="a second later")
    statuses = [call.status for call in emulator.calls_to("chat.postMessage")]
    assert statuses.count(429) == 1


def test_fail_next_injects_api_errors_and_http_statuses(client: WebClient, emulator: SlackEmulator) -> None:
    emulator.fail_next("chat.update", 429)
    emulator.fail_next("chat.postMessage", "not_in_channel", count=2)
    emulator.fail_next("users.info", 500)
    ts = emulator.record_bot_message(GENERAL, "x").ts
    with pytest.raises(SlackApiError) as limited:
        client.chat_update(channel=GENERAL, ts=ts, text="y")
    assert limited.value.response.status_code == 429 and limited.value.response.headers["Retry-After"] == "1"
    client.chat_update(channel=GENERAL, ts=ts, text="y")
    assert api_error(lambda: client.chat_postMessage(channel=GENERAL, text="a")) == "not_in_channel"
    assert api_error(lambda: client.chat_postMessage(channel=GENERAL, text="a")) == "not_in_channel"
    client.chat_postMessage(channel=GENERAL, text="third time lucky")
    with pytest.raises(SlackApiError) as broken:
        client.users_info(user=ALICE)
    assert broken.value.response.status_code == 500


# -- files ----------------------------------------------------------------------------------------------


def test_private_file_download_needs_the_bot_token(emulator: SlackEmulator) -> None:
    info = emulator.add_file(ALICE, "tags.csv", b"id\n123\n")
    assert (info["size"], info["mode"], info["filetype"], info["mimetype"]) == (7, "hosted", "csv", "text/csv")
    for url in (info["url_private"], info["url_private_download"]):
        status, content_type, body = raw_get(url, {"Authorization": f"Bearer {emulator.bot_token}"})
        assert (status, content_type, body) == (200, "text/csv", b"id\n123\n")
        for headers in ({}, {"Authorization": "Bearer xoxb-wrong"}):
            status, content_type, body = raw_get(url, headers)
            assert status == 200 and content_type.startswith("text/html") and b"Sign in" in body
    assert [d.authorized for d in emulator.downloads] == [True, False, False, True, False, False]


def test_files_info_and_upload_v2(client: WebClient, emulator: SlackEmulator) -> None:
    assert api_error(lambda: client.files_info(file="F0NOPE")) == "file_not_found"
    parent = client.chat_postMessage(channel=GENERAL, text="card")["ts"]
    uploaded = client.files_upload_v2(
        channel=GENERAL, thread_ts=parent, content=b"report,1\n", filename="report.csv", initial_comment="Report"
    )
    file_id = uploaded["file"]["id"]
    info = client.files_info(file=file_id)["file"]
    assert (info["name"], info["size"], info["user"]) == ("report.csv", 9, emulator.bot_user_id)
    assert emulator.file(file_id).content == b"report,1\n"
    reply = emulator.thread(GENERAL, parent)[-1]
    assert (reply.text, reply.files[0]["id"]) == ("Report", file_id)


def post_bytes(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def start_upload(client: WebClient, name: str, data: bytes) -> str:
    """files.getUploadURLExternal, then the bytes POSTed to the URL it names; the file id."""
    ticket = client.files_getUploadURLExternal(filename=name, length=len(data))
    assert post_bytes(ticket["upload_url"], data) == (200, f"OK - {len(data)}".encode())
    return str(ticket["file_id"])


def test_upload_v2_shares_the_file_in_a_channel(client: WebClient, emulator: SlackEmulator) -> None:
    uploaded = client.files_upload_v2(channel=GENERAL, content=b"a,b\n1,2\n", filename="t.csv", title="Tags")
    file_id = uploaded["file"]["id"]
    assert uploaded["files"] == [{"id": file_id, "title": "Tags"}]
    assert emulator.file_content(file_id) == b"a,b\n1,2\n"
    [message] = emulator.messages(GENERAL)
    assert (message.user, message.subtype, message.text) == (emulator.bot_user_id, "file_share", "")
    assert [(f["id"], f["name"], f["size"]) for f in message.files] == [(file_id, "t.csv", 8)]
    info = client.files_info(file=file_id)["file"]
    assert info["channels"] == [GENERAL] and info["shares"]["public"][GENERAL][0]["ts"] == message.ts
    # The upload URL is on the emulator's own loopback origin, and slack_sdk sent the bytes there
    # without a token (it is pre-signed, as Slack's is).
    [ticket] = emulator.calls_to("files.getUploadURLExternal")
    assert ticket.params["length"] == "8" and ticket.params["filename"] == "t.csv"
    [post] = emulator.upload_posts
    assert (post.file_id, post.size, post.sent_authorization) == (file_id, 8, False)


def test_a_file_uploaded_into_a_thread_shows_in_the_thread_and_transcript(
    client: WebClient, emulator: SlackEmulator
) -> None:
    parent = client.chat_postMessage(channel=GENERAL, text="card")["ts"]
    first = client.chat_postMessage(channel=GENERAL, thread_ts=parent, text="submitted")["ts"]
    data = b"x" * 2345
    ticket = client.files_getUploadURLExternal(filename="snapshot-12.csv", length=len(data))
    assert ticket["upload_url"].startswith(f"{emulator.root_url}/upload/v1/")
    assert post_bytes(ticket["upload_url"], data)[0] == 200
    # A reply's ts names its thread, as for chat.postMessage.
    client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}], channel_id=GENERAL, thread_ts=first,
                                        initial_comment="Snapshot before deletion")
    thread = emulator.thread(GENERAL, parent)
    assert [m.text for m in thread] == ["card", "submitted", "Snapshot before deletion"]
    assert thread[-1].thread_ts == parent and thread[-1].files[0]["id"] == ticket["file_id"]
    assert emulator.file_content(ticket["file_id"]) == data
    replies = client.conversations_replies(channel=GENERAL, ts=parent)["messages"]
    assert replies[-1]["files"][0]["name"] == "snapshot-12.csv"
    transcript = render_transcript(emulator, GENERAL)
    assert "↳ [" in transcript and "@deletetags-bot: Snapshot before deletion" in transcript
    assert "[file: snapshot-12.csv, 2,345 bytes]" in transcript


def test_completing_an_upload_in_a_channel_without_the_bot_fails_and_can_be_retried(
    client: WebClient, emulator: SlackEmulator
) -> None:
    file_id = start_upload(client, "t.csv", b"1\n")

    def complete() -> None:
        client.files_completeUploadExternal(files=[{"id": file_id}], channel_id=SECRET_ROOM)

    assert api_error(complete) == "not_in_channel"
    assert emulator.messages(SECRET_ROOM) == []
    assert api_error(lambda: client.files_info(file=file_id)) == "file_not_found"
    emulator.add_member(SECRET_ROOM, emulator.bot_user_id)
    complete()
    assert [m.files[0]["id"] for m in emulator.messages(SECRET_ROOM)] == [file_id]
    assert emulator.file(file_id).info["groups"] == [SECRET_ROOM]
    # "This method can only be called once."
    assert api_error(complete) == "file_not_found"
    assert len(emulator.messages(SECRET_ROOM)) == 1


def test_upload_methods_refuse_what_slack_refuses(client: WebClient, emulator: SlackEmulator) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=emulator.api_url)
    assert api_error(lambda: wrong.files_getUploadURLExternal(filename="t.csv", length=3)) == "invalid_auth"
    assert api_error(lambda: wrong.files_completeUploadExternal(files=[{"id": "F1"}])) == "invalid_auth"
    assert api_error(lambda: client.files_getUploadURLExternal(filename="t.csv", length=0)) == "missing_argument"
    assert api_error(lambda: client.api_call("files.getUploadURLExternal", params={"length": 3})) == "invalid_arguments"
    assert api_error(lambda: client.files_completeUploadExternal(files=[{"id": "F0NOPE"}])) == "file_not_found"
    # Bytes never POSTed: nothing to complete.
    ticket = client.files_getUploadURLExternal(filename="t.csv", length=3)
    assert api_error(lambda: client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}])) == "file_not_found"
    file_id = start_upload(client, "t.csv", b"abc")

    def into_two_channels_thread() -> None:
        client.files_completeUploadExternal(files=[{"id": file_id}], channels=[GENERAL, SECRET_ROOM],
                                            thread_ts="1.000001")

    assert api_error(into_two_channels_thread) == "invalid_arguments"
    assert post_bytes(f"{emulator.root_url}/upload/v1/not-a-ticket", b"abc")[0] == 404


def test_upload_posts_record_whether_a_token_came_along(client: WebClient, emulator: SlackEmulator) -> None:
    ticket = client.files_getUploadURLExternal(filename="t.csv", length=3)
    post_bytes(ticket["upload_url"], b"abc", {"Authorization": f"Bearer {emulator.bot_token}"})
    post_bytes(ticket["upload_url"], b"abc")
    assert [(p.file_id, p.sent_authorization) for p in emulator.upload_posts] == [
        (ticket["file_id"], True), (ticket["file_id"], False)]


def test_uploading_needs_files_write(client: WebClient, emulator: SlackEmulator) -> None:
    emulator.bot_scopes = [scope for scope in emulator.bot_scopes if scope != "files:write"]
    with pytest.raises(SlackApiError) as failure:
        client.files_upload_v2(channel=GENERAL, content=b"1\n", filename="t.csv")
    assert (failure.value.response["error"], failure.value.response["needed"]) == ("missing_scope", "files:write")
    assert "files:write" not in failure.value.response["provided"].split(",")
    assert emulator.upload_posts == [] and emulator.messages(GENERAL) == []
    assert api_error(lambda: client.files_completeUploadExternal(files=[{"id": "F1"}])) == "missing_scope"


# -- views ----------------------------------------------------------------------------------------------

MODAL = {
    "type": "modal",
    "callback_id": "upload",
    "title": {"type": "plain_text", "text": "Delete tags"},
    "submit": {"type": "plain_text", "text": "Preview"},
    "private_metadata": "C0GENERAL",
    "blocks": [
        {"type": "input", "block_id": "ids", "label": {"type": "plain_text", "text": "Tag ids"},
         "element": {"type": "plain_text_input", "action_id": "value"}},
    ],
}


def test_views_open_requires_a_fresh_unused_trigger(
    client: WebClient, emulator: SlackEmulator, clock: FakeClock
) -> None:
    trigger = emulator.new_trigger_id(ALICE, channel=GENERAL)
    view = client.views_open(trigger_id=trigger, view=MODAL)["view"]
    stored = emulator.views[view["id"]]
    assert (stored.user, stored.title, stored.callback_id, stored.channel) == (ALICE, "Delete tags", "upload", GENERAL)
    assert api_error(lambda: client.views_open(trigger_id=trigger, view=MODAL)) == "expired_trigger_id"
    assert api_error(lambda: client.views_open(trigger_id="123.456.abc", view=MODAL)) == "invalid_trigger_id"
    stale = emulator.new_trigger_id(ALICE)
    clock.now += 3.0
    assert api_error(lambda: client.views_open(trigger_id=stale, view=MODAL)) == "expired_trigger_id"
    bad = {**MODAL, "submit": None}
    fresh = emulator.new_trigger_id(ALICE)
    assert api_error(lambda: client.views_open(trigger_id=fresh, view=bad)) == "invalid_arguments"


def test_views_update_and_publish(client: WebClient, emulator: SlackEmulator) -> None:
    view = client.views_open(trigger_id=emulator.new_trigger_id(ALICE), view=MODAL)["view"]
    changed = {**MODAL, "title": {"type": "plain_text", "text": "Checking…"}}
    assert api_error(lambda: client.views_update(view_id=view["id"], view=changed, hash="stale")) == "hash_conflict"
    client.views_update(view_id=view["id"], view=changed, hash=view["hash"])
    assert emulator.view(view["id"]).title == "Checking…"
    assert emulator.home(ALICE) is None
    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "No jobs"}}]}
    first = client.views_publish(user_id=ALICE, view=home)["view"]["id"]
    second = client.views_publish(user_id=ALICE, view={**home, "callback_id": "v2"})["view"]["id"]
    published = emulator.home(ALICE)
    assert published is not None and first == second == published.id and published.callback_id == "v2"


# -- response_url ---------------------------------------------------------------------------------------


def test_response_url_posts_are_recorded(client: WebClient, emulator: SlackEmulator) -> None:
    url = emulator.new_response_url(channel=GENERAL, user=ALICE)
    assert WebhookClient(url).send(text="working on it").status_code == 200
    assert WebhookClient(url).send(text="for everyone", response_type="in_channel").body == "ok"
    [ephemeral] = emulator.ephemerals
    assert (ephemeral.user, ephemeral.text, ephemeral.via) == (ALICE, "working on it", "response_url")
    assert [m.text for m in emulator.messages(GENERAL)] == ["for everyone"]
    assert [post.body.get("text") for post in emulator.responses] == ["working on it", "for everyone"]


def test_response_url_replaces_and_deletes_the_original(client: WebClient, emulator: SlackEmulator) -> None:
    ts = client.chat_postMessage(channel=GENERAL, text="card", blocks=APPROVAL_BLOCKS)["ts"]
    url = emulator.new_response_url(channel=GENERAL, user=LEAD, message_ts=ts)
    WebhookClient(url).send(text="Approved by lead", replace_original=True)
    message = emulator.message(GENERAL, ts)
    assert message.text == "Approved by lead" and message.blocks == [] and message.edits[0].text == "card"
    WebhookClient(url).send(delete_original=True)
    assert emulator.message(GENERAL, ts).deleted
    ephemeral_ts = emulator.record_ephemeral(GENERAL, ALICE, "preview", via="ack").ts
    WebhookClient(emulator.new_response_url(channel=GENERAL, user=ALICE, ephemeral_ts=ephemeral_ts)).send(
        text="submitted", replace_original=True
    )
    assert emulator.ephemeral(ephemeral_ts).text == "submitted"


def test_response_url_allows_five_uses_in_thirty_minutes(emulator: SlackEmulator, clock: FakeClock) -> None:
    url = emulator.new_response_url(channel=GENERAL, user=ALICE)
    statuses = [WebhookClient(url).send(text=str(n)).status_code for n in range(6)]
    assert statuses == [200] * 5 + [404]
    late = emulator.new_response_url(channel=GENERAL, user=ALICE)
    clock.now += 30 * 60 + 1
    assert WebhookClient(late).send(text="too late").body == "expired_url"


# -- transcript -----------------------------------------------------------------------------------------


def test_transcript_renders_threads_edits_ephemerals_buttons_and_modals(
    client: WebClient, emulator: SlackEmulator
) -> None:
    emulator.record_activity("command", ALICE, GENERAL, "/deletetags 1 2 3")
    client.views_open(trigger_id=emulator.new_trigger_id(ALICE, channel=GENERAL), view=MODAL)
    parent = client.chat_postMessage(channel=GENERAL, text="card", blocks=APPROVAL_BLOCKS)["ts"]
    client.chat_postMessage(channel=GENERAL, text="batch 1 of 2 &lt;done&gt;", thread_ts=parent)
    client.chat_postEphemeral(channel=GENERAL, user=BOB, text="You may not approve")
    client.chat_update(channel=GENERAL, ts=parent, text="approved", blocks=APPROVAL_BLOCKS[:1])
    text = render_transcript(emulator, GENERAL)
    lines = text.splitlines()
    assert lines[0] == f"── #general ({GENERAL}) ──"
    assert lines[1].endswith("@alice: /deletetags 1 2 3   (slash command)")
    assert lines[2].endswith("[modal opened for @alice: Delete tags]")
    assert lines[3].endswith("@deletetags-bot: Delete 3 tags requested by @alice? (edited)")
    assert lines[4].startswith("    ↳ [") and lines[4].endswith("@deletetags-bot: batch 1 of 2 <done>")
    assert lines[5].endswith("(only visible to @bob) @deletetags-bot: You may not approve")
    assert "[ Approve ]" not in text
    client.chat_update(channel=GENERAL, ts=parent, text="approved", blocks=APPROVAL_BLOCKS)
    assert "[ Approve ] [ Reject ]" in render_transcript(emulator)
    assert "only visible" not in render_transcript(emulator, GENERAL, include_ephemerals=False)
