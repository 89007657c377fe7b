"""Acts as the people in a workspace: sends signed requests to a Bolt app exactly as Slack does."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, TypeVar
from urllib.parse import urlencode

from bot.sandbox.slack_emulator import (
    ApiError,
    Channel,
    Ephemeral,
    Json,
    Message,
    SlackEmulator,
    View,
    iter_buttons,
)
from bot.sandbox.transcript import render_transcript

T = TypeVar("T")

ACK_DEADLINE = 3.0
VERIFICATION_TOKEN = "sandbox-verification-token"
ENVELOPE_TYPES = {"command": "slash_commands", "interaction": "interactive", "event": "events_api"}
_SLACK_MARKUP = re.compile(r"<(?:[@#!][^<>]*|https?://[^<>]*|mailto:[^<>]*)>")
_TEXT_INPUTS = {"plain_text_input", "email_text_input", "url_text_input", "number_input", "rich_text_input"}
_SINGLE_OPTION = {"static_select", "external_select", "radio_buttons"}
_MULTI_OPTION = {"multi_static_select", "multi_external_select", "checkboxes"}
_PICKED_FIELD = {
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
}


class DriverError(AssertionError):
    """The scripted person tried something a real person could not do."""


@dataclass
class DriverResponse:
    """What the app answered: HTTP status (0 when nothing came back), body, elapsed seconds."""

    status: int
    body: str
    elapsed: float
    headers: dict[str, str] = field(default_factory=dict)
    delivered: bool = True
    related: list[DriverResponse] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 200

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}

    def reply(self) -> Json:
        """The ack body as Slack reads it: a JSON object, or plain text meaning {"text": ...}."""
        if not self.body.strip():
            return {}
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return {"text": self.body}
        return parsed if isinstance(parsed, dict) else {"text": self.body}


def slack_escape(text: str) -> str:
    """Escape &, < and > as Slack does for typed text, keeping mentions and links intact."""
    pieces, last = [], 0
    for match in _SLACK_MARKUP.finditer(text):
        pieces.append(_escape_plain(text[last : match.start()]))
        pieces.append(match.group())
        last = match.end()
    pieces.append(_escape_plain(text[last:]))
    return "".join(pieces)


def _escape_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def button_labels(blocks: list[Json]) -> list[str]:
    return [button.get("text", {}).get("text", "") for _, button in iter_buttons(blocks)]


def find_button(blocks: list[Json], label: str) -> tuple[Json, Json]:
    """The (block, button) whose visible text is `label` (exact first, then ignoring case and spaces)."""
    buttons = list(iter_buttons(blocks))
    for matches in (lambda text: text == label, lambda text: text.strip().casefold() == label.strip().casefold()):
        for block, button in buttons:
            if matches(button.get("text", {}).get("text", "")):
                return block, button
    shown = " ".join(f"[ {text} ]" for text in button_labels(blocks)) or "(none)"
    raise DriverError(f"no button {label!r}; buttons found: {shown}")


class SlackDriver:
    """Sends slash commands, clicks, submissions and events to the app, and records them in the emulator."""

    def __init__(
        self,
        emulator: SlackEmulator,
        app_url: str,
        signing_secret: str,
        *,
        mode: Literal["http", "socket"] = "http",
        http_timeout: float = 15.0,
    ) -> None:
        self.emulator = emulator
        self.app_url = app_url
        self._signing_secret = signing_secret
        self.mode = mode
        self.http_timeout = http_timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- signing and transport ---------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Slack's v0 signature: HMAC-SHA256 over `v0:<timestamp>:<body>` with the signing secret."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + stamp.encode() + b":" + body
        digest = hmac.new(self._signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}

    def send_raw(self, body: bytes, headers: dict[str, str]) -> DriverResponse:
        """POST exactly these bytes and headers to the app (no signing)."""
        request = urllib.request.Request(self.app_url, data=body, headers=headers, method="POST")
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=self.http_timeout) as answer:
                text = answer.read().decode("utf-8", "replace")
                return DriverResponse(answer.status, text, time.monotonic() - started, dict(answer.headers))
        except urllib.error.HTTPError as failure:
            text = failure.read().decode("utf-8", "replace")
            return DriverResponse(failure.code, text, time.monotonic() - started, dict(failure.headers))

    def _deliver(
        self, kind: str, payload: Json, *, retry_num: int | None = None, retry_reason: str = "http_timeout"
    ) -> DriverResponse:
        if self.mode == "socket":
            return self._deliver_socket(kind, payload, retry_num, retry_reason)
        body, content_type = self._http_body(kind, payload)
        headers = {"Content-Type": content_type, **self.sign(body)}
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason})
        return self.send_raw(body, headers)

    @staticmethod
    def _http_body(kind: str, payload: Json) -> tuple[bytes, str]:
        if kind == "command":
            return urlencode(payload).encode(), "application/x-www-form-urlencoded"
        if kind == "interaction":
            return urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
        return json.dumps(payload).encode(), "application/json"

    def _deliver_socket(self, kind: str, payload: Json, retry_num: int | None, retry_reason: str) -> DriverResponse:
        self.wait_for(self.emulator.has_socket_connection, timeout=10.0, what="the app's Socket Mode connection")
        started = time.monotonic()
        ack = self.emulator.socket_hub().deliver(
            ENVELOPE_TYPES[kind], payload, accepts_response_payload=kind != "event",
            retry_attempt=retry_num or 0, retry_reason=retry_reason if retry_num else "", timeout=ACK_DEADLINE,
        )
        elapsed = time.monotonic() - started
        if ack is None:
            return DriverResponse(0, "", elapsed)
        body = json.dumps(ack["payload"]) if ack.get("payload") else ""
        return DriverResponse(200, body, elapsed)

    # -- people --------------------------------------------------------------------------------------

    def _person(self, user: str) -> Json:
        name = self.emulator.user_name(user)
        return {"id": user, "username": name, "name": name, "team_id": self.emulator.team_id}

    def _team(self) -> Json:
        return {"id": self.emulator.team_id, "domain": self.emulator.team_domain}

    def _conversation(self, channel: str, user: str) -> Channel:
        """The conversation a person acts in; the bot's user id stands for the person's DM with the bot."""
        channel_id = self.emulator.open_dm(user) if channel == self.emulator.bot_user_id else channel
        try:
            conversation = self.emulator.channel(channel_id)
        except KeyError:
            raise DriverError(f"unknown conversation {channel_id!r}") from None
        if user not in conversation.members:
            who = self.emulator.user_name(user)
            raise DriverError(f"@{who} is not a member of {channel_id} (#{conversation.name})")
        return conversation

    # -- slash commands ----------------------------------------------------------------------------

    def slash_command(self, user: str, channel: str, text: str, command: str = "/deletetags") -> DriverResponse:
        """Type `<command> <text>` in a conversation; what the ack says is shown as Slack would."""
        conversation = self._conversation(channel, user)
        self.emulator.record_activity("command", user, conversation.id, f"{command} {text}".strip())
        payload = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.emulator.team_id,
            "team_domain": self.emulator.team_domain,
            "channel_id": conversation.id,
            "channel_name": "directmessage" if conversation.is_im else conversation.name,
            "user_id": user,
            "user_name": self.emulator.user_name(user),
            "command": command,
            "text": slack_escape(text),
            "api_app_id": self.emulator.app_id,
            "is_enterprise_install": "false",
            "response_url": self.emulator.new_response_url(channel=conversation.id, user=user),
            "trigger_id": self.emulator.new_trigger_id(user, channel=conversation.id),
        }
        # Slack shows the ack reply before anything the app does after acking, so its place is reserved now.
        ack_ts = self.emulator.next_ts()
        response = self._deliver("command", payload)
        self._show_command_ack(user, conversation.id, command, response, ack_ts)
        return response

    def _show_command_ack(self, user: str, channel: str, command: str, response: DriverResponse, ts: str) -> None:
        if not response.ok or response.elapsed > ACK_DEADLINE:
            reason = "operation_timeout" if response.ok or response.status == 0 else "dispatch_failed"
            self._show_command_error(user, channel, command, reason, ts)
            return
        reply = response.reply()
        if not reply:
            return
        text, blocks = str(reply.get("text") or ""), reply.get("blocks") or []
        try:
            if reply.get("response_type") == "in_channel":
                self.emulator.record_bot_message(channel, text, blocks, ts=ts)
            else:
                self.emulator.record_ephemeral(channel, user, text, blocks, via="ack", ts=ts)
        except ApiError as failure:
            self._show_command_error(user, channel, command, failure.error, ts)

    def _show_command_error(self, user: str, channel: str, command: str, reason: str, ts: str) -> None:
        text = f'{command} failed with the error "{reason}"'
        self.emulator.record_ephemeral(channel, user, text, via="slack", ts=ts)

    # -- clicks --------------------------------------------------------------------------------------

    def click(
        self, user: str, message: Message | View | Ephemeral, button_text: str, *, channel: str | None = None
    ) -> DriverResponse:
        """Click the button labelled `button_text` on the current version of a message, ephemeral or view."""
        if isinstance(message, View):
            return self._click_view(user, message, button_text)
        if isinstance(message, Ephemeral):
            return self._click_ephemeral(user, message, button_text)
        return self._click_message(user, message, button_text, channel)

    def _click_message(self, user: str, message: Message, label: str, channel: str | None) -> DriverResponse:
        current = self._current_message(channel or message.channel, message.ts)
        conversation = self.emulator.channel(current.channel)
        if (conversation.is_private or conversation.is_im or conversation.is_mpim) and user not in conversation.members:
            raise DriverError(f"@{self.emulator.user_name(user)} cannot see {current.channel}")
        block, button = find_button(current.blocks, label)
        container: Json = {
            "type": "message", "message_ts": current.ts, "channel_id": current.channel, "is_ephemeral": False
        }
        if current.thread_ts:
            container["thread_ts"] = current.thread_ts
        payload = self._action_payload(user, block, button, container, current.channel)
        payload["message"] = current.to_slack(self.emulator.team_id)
        payload["response_url"] = self.emulator.new_response_url(
            channel=current.channel, user=user, message_ts=current.ts, thread_ts=current.thread_ts
        )
        self.emulator.record_activity("click", user, current.channel, f"[ {button['text']['text']} ]")
        return self._deliver("interaction", payload)

    def _current_message(self, channel: str, ts: str) -> Message:
        try:
            current = self.emulator.message(channel, ts)
        except ApiError:
            raise DriverError(f"no message {ts} in {channel}") from None
        if current.deleted:
            raise DriverError(f"message {ts} in {channel} was deleted")
        return current

    def _click_ephemeral(self, user: str, ephemeral: Ephemeral, label: str) -> DriverResponse:
        try:
            current = self.emulator.ephemeral(ephemeral.ts)
        except ApiError:
            raise DriverError(f"no ephemeral message {ephemeral.ts}") from None
        if current.user != user or current.deleted:
            raise DriverError(f"@{self.emulator.user_name(user)} cannot see ephemeral message {current.ts}")
        block, button = find_button(current.blocks, label)
        container = {"type": "message", "message_ts": current.ts, "channel_id": current.channel, "is_ephemeral": True}
        payload = self._action_payload(user, block, button, container, current.channel)
        payload["response_url"] = self.emulator.new_response_url(
            channel=current.channel, user=user, ephemeral_ts=current.ts, thread_ts=current.thread_ts
        )
        self.emulator.record_activity("click", user, current.channel, f"[ {button['text']['text']} ]")
        return self._deliver("interaction", payload)

    def _click_view(self, user: str, view: View, label: str) -> DriverResponse:
        current = self._current_view(user, view)
        block, button = find_button(current.blocks, label)
        container = {"type": "view", "view_id": current.id}
        payload = self._action_payload(user, block, button, container, current.channel)
        payload["view"] = current.to_slack()
        payload["state"] = {"values": current.state}
        self.emulator.record_activity("click", user, current.channel, f"[ {button['text']['text']} ]")
        return self._deliver("interaction", payload)

    def _current_view(self, user: str, view: View) -> View:
        current = self.emulator.view(view.id)
        if current.user != user:
            raise DriverError(f"view {view.id} belongs to @{self.emulator.user_name(current.user)}")
        if current.closed:
            raise DriverError(f"view {view.id} ({current.title!r}) is closed")
        return current

    def _action_payload(self, user: str, block: Json, button: Json, container: Json, channel: str | None) -> Json:
        action = {
            "action_id": button["action_id"],
            "block_id": block["block_id"],
            "text": button["text"],
            "value": button.get("value"),
            "type": "button",
            "action_ts": self.emulator.next_ts(),
        }
        if button.get("style"):
            action["style"] = button["style"]
        payload: Json = {
            "type": "block_actions",
            "user": self._person(user),
            "api_app_id": self.emulator.app_id,
            "token": VERIFICATION_TOKEN,
            "container": container,
            "trigger_id": self.emulator.new_trigger_id(user, channel=channel),
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "state": {"values": {}},
            "actions": [action],
        }
        if channel:
            payload["channel"] = {"id": channel, "name": self.emulator.channel(channel).name}
        return payload

    # -- modals --------------------------------------------------------------------------------------

    def submit_view(self, user: str, view: View, values: dict[str, dict[str, object]]) -> DriverResponse:
        """Fill a modal's inputs ({block_id: {action_id: value}}) and press its submit button."""
        current = self._current_view(user, view)
        if current.type != "modal":
            raise DriverError(f"view {view.id} is a {current.type} view; only modals can be submitted")
        state = build_view_state(current.blocks, values)
        self.emulator.record_view_state(current.id, state)
        submitted = self.emulator.view(current.id)
        payload = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._person(user),
            "api_app_id": self.emulator.app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.emulator.new_trigger_id(user, channel=current.channel),
            "view": submitted.to_slack(),
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
        self.emulator.record_activity("submit", user, current.channel, f'submitted "{current.title}"')
        response = self._deliver("interaction", payload)
        if response.ok:
            try:
                self.emulator.apply_view_response(current.id, response.reply())
            except ApiError as failure:
                raise DriverError(f"the app answered the submission with an invalid view: {failure.error}") from None
        return response

    # -- messages and events -----------------------------------------------------------------------

    def post_message(self, user: str, channel: str, text: str, *, thread_ts: str | None = None) -> DriverResponse:
        """Post a message as a person; the bot gets `message` (and `app_mention` when mentioned) if it is a member."""
        conversation = self._conversation(channel, user)
        message = self._record(user, conversation, slack_escape(text), thread_ts)
        response = self._send_message_event(self._message_event(message, conversation), conversation)
        if f"<@{self.emulator.bot_user_id}" in message.text and not conversation.is_im and response.delivered:
            response.related.append(self.send_event(self._mention_event(message)))
        return response

    def upload_file(
        self, user: str, channel: str, name: str, content: bytes, *, text: str = "", thread_ts: str | None = None
    ) -> DriverResponse:
        """Upload a file with an optional comment; the bot gets a `message` event with subtype file_share."""
        conversation = self._conversation(channel, user)
        stored = self.emulator.add_file(user, name, content)
        message = self._record(user, conversation, slack_escape(text), thread_ts, files=[stored], subtype="file_share")
        return self._send_message_event(self._message_event(message, conversation), conversation)

    def share_files(
        self, user: str, channel: str, files: list[Json], *, text: str = "", thread_ts: str | None = None
    ) -> DriverResponse:
        """Share file objects already in the emulator (see `add_file`, `add_remote_file`) in one message."""
        conversation = self._conversation(channel, user)
        message = self._record(user, conversation, slack_escape(text), thread_ts, files=files, subtype="file_share")
        return self._send_message_event(self._message_event(message, conversation), conversation)

    def _record(
        self, user: str, conversation: Channel, text: str, thread_ts: str | None, *, files: list[Json] | None = None,
        subtype: str | None = None,
    ) -> Message:
        try:
            return self.emulator.record_user_message(
                user, conversation.id, text, thread_ts=thread_ts, files=files, subtype=subtype
            )
        except ApiError as failure:
            raise DriverError(f"cannot post in {conversation.id}: {failure.error}") from None

    def _message_event(self, message: Message, conversation: Channel) -> Json:
        event: Json = {
            "type": "message",
            "channel": conversation.id,
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "event_ts": message.ts,
            "channel_type": conversation.channel_type,
            "team": self.emulator.team_id,
        }
        if message.subtype:
            event.update({"subtype": message.subtype, "files": message.files, "upload": False, "display_as_bot": False})
        else:
            event["client_msg_id"] = str(uuid.uuid4())
            event["blocks"] = [_rich_text_block(message.text)]
        if message.is_reply:
            parent = self.emulator.message(conversation.id, message.thread_ts or "")
            event.update({"thread_ts": message.thread_ts, "parent_user_id": parent.user})
        return event

    def _mention_event(self, message: Message) -> Json:
        event = {
            "type": "app_mention",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "channel": message.channel,
            "event_ts": message.ts,
            "team": self.emulator.team_id,
            "client_msg_id": str(uuid.uuid4()),
        }
        if message.is_reply:
            event["thread_ts"] = message.thread_ts
        return event

    def _send_message_event(self, event: Json, conversation: Channel) -> DriverResponse:
        # Slack only delivers message events from conversations the bot belongs to.
        if self.emulator.bot_user_id not in self.emulator.channel(conversation.id).members:
            return DriverResponse(0, "not delivered: the bot is not a member of the conversation", 0.0, delivered=False)
        return self.send_event(event)

    def open_home(self, user: str) -> DriverResponse:
        """Open the app's Home tab (fires app_home_opened)."""
        event: Json = {
            "type": "app_home_opened",
            "user": user,
            "channel": self.emulator.open_dm(user),
            "tab": "home",
            "event_ts": self.emulator.next_ts(),
        }
        home = self.emulator.home(user)
        if home is not None:
            event["view"] = home.to_slack()
        return self.send_event(event)

    def send_event(self, event: dict, *, event_id: str | None = None, retry_num: int | None = None) -> DriverResponse:
        """Deliver an Events API `event_callback` wrapping `event`."""
        envelope = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.emulator.team_id,
            "api_app_id": self.emulator.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.emulator.team_id,
                    "user_id": self.emulator.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }
        return self._deliver("event", envelope, retry_num=retry_num)

    # -- waiting -------------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "") -> T:
        """Poll until `predicate` returns something truthy; LookupError and StopIteration count as "not yet"."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                result = predicate()
                if result:
                    return result
            except (LookupError, StopIteration) as failure:
                last_error = failure
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        detail = f" (last error: {last_error!r})" if last_error else ""
        transcript = render_transcript(self.emulator)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or 'a condition'}{detail}\n"
                             f"--- transcript ---\n{transcript}")


def _rich_text_block(text: str) -> Json:
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return {"type": "rich_text", "block_id": uuid.uuid4().hex[:5], "elements": [section]}


# -- view state --------------------------------------------------------------------------------------


def build_view_state(blocks: list[Json], values: dict[str, dict[str, object]]) -> Json:
    """state.values for a submission: every input block, filled from `values` where given."""
    inputs = {b["block_id"]: b["element"] for b in blocks if b.get("type") == "input" and b.get("element")}
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise DriverError(f"no input blocks {unknown}; inputs: {_describe_inputs(inputs)}")
    state: Json = {}
    for block_id, element in inputs.items():
        given = dict(values.get(block_id, {}))
        action_id = element["action_id"]
        if set(given) - {action_id}:
            raise DriverError(f"block {block_id!r} has action_id {action_id!r}, not {sorted(given)}")
        state[block_id] = {action_id: _element_state(element, given.get(action_id))}
    return state


def _describe_inputs(inputs: dict[str, Json]) -> str:
    return ", ".join(
        f"{block_id}/{element.get('action_id')} ({element.get('type')})"
        for block_id, element in inputs.items()
    )


def _element_state(element: Json, value: object) -> Json:
    kind = str(element.get("type"))
    if isinstance(value, dict) and "type" in value:
        return dict(value)
    if kind in _TEXT_INPUTS:
        return {"type": kind, "value": None if value is None else str(value)}
    if kind == "file_input":
        files = value.get("files", []) if isinstance(value, dict) else list(value or [])  # type: ignore[call-overload]
        return {"type": kind, "files": files}
    if kind in _SINGLE_OPTION:
        return {"type": kind, "selected_option": None if value is None else _option(element, value)}
    if kind in _MULTI_OPTION:
        chosen = value if isinstance(value, list) else ([] if value is None else [value])
        return {"type": kind, "selected_options": [_option(element, item) for item in chosen]}
    if kind in _PICKED_FIELD:
        return {"type": kind, _PICKED_FIELD[kind]: value}
    return {"type": kind, "value": value}


def _option(element: Json, wanted: object) -> Json:
    if isinstance(wanted, dict):
        return wanted
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if wanted in (option.get("value"), option.get("text", {}).get("text")):
            return option
    if element.get("type") in ("external_select", "multi_external_select"):
        return {"text": {"type": "plain_text", "text": str(wanted)}, "value": str(wanted)}
    labels = [option.get("text", {}).get("text") for option in options]
    raise DriverError(f"no option {wanted!r} in {element.get('action_id')!r}; options: {labels}")
