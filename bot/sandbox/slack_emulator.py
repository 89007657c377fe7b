"""A stateful, offline stand-in for the Slack Web API, response_url endpoints and file hosting.

Everything is served over real HTTP on 127.0.0.1 so that slack_sdk and Bolt talk to it exactly as they
talk to Slack. State lives in memory behind one lock; inspection methods hand out copies.
"""

from __future__ import annotations

import bisect
import copy
import email.parser
import email.policy
import itertools
import json
import math
import mimetypes
import secrets
import uuid
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlsplit

Json = dict[str, Any]
Block = dict[str, Any]

RESPONSE_URL_LIFETIME = 30 * 60
RESPONSE_URL_MAX_USES = 5
TRIGGER_LIFETIME = 3.0
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT_LENGTH = 40_000

TIER_LIMITS = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIERS = {
    "chat.update": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "chat.getPermalink": 4,
    "conversations.open": 3,
    "conversations.info": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.members": 4,
    "users.info": 4,
    "usergroups.users.list": 2,
    "usergroups.list": 2,
    "views.open": 4,
    "views.push": 4,
    "views.update": 4,
    "views.publish": 4,
    "files.info": 4,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}
# Bot scopes the emulator enforces ({"ok": false, "error": "missing_scope", "needed": …} like Slack).
# Only the file-upload methods check so far; every other method answers whatever the token holds.
ENFORCED_SCOPES = {
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
POST_MESSAGE_BURST = 3
POST_MESSAGE_PER_SECOND = 1.0

SIGN_IN_PAGE = (
    "<!DOCTYPE html><html><head><title>Slack</title></head>"
    "<body><h1>Sign in to Sandbox</h1><form action=\"/signin\" method=\"post\">"
    "<input name=\"email\"><input name=\"password\" type=\"password\"></form></body></html>"
)


# ---------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------


@dataclass
class MessageVersion:
    """An earlier version of an edited message."""

    text: str
    blocks: list[Block]
    edited_at: float


@dataclass
class Message:
    """A message as stored in a conversation (top level or thread reply)."""

    ts: str
    channel: str
    user: str
    text: str
    blocks: list[Block] = field(default_factory=list)
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edits: list[MessageVersion] = field(default_factory=list)
    deleted: bool = False
    files: list[Json] = field(default_factory=list)
    subtype: str | None = None
    bot_id: str | None = None
    metadata: Json | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def edited(self) -> bool:
        return bool(self.edits)

    def to_slack(self, team_id: str, include_metadata: bool = False) -> Json:
        """The message object as Slack hands it to apps (metadata only when asked for, as Slack does)."""
        body: Json = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts, "team": team_id}
        if include_metadata and self.metadata:
            body["metadata"] = copy.deepcopy(self.metadata)
        body["blocks"] = copy.deepcopy(self.blocks)
        optional = {"thread_ts": self.thread_ts, "subtype": self.subtype, "bot_id": self.bot_id}
        body.update({key: value for key, value in optional.items() if value is not None})
        if self.files:
            body["files"] = copy.deepcopy(self.files)
        if self.edits:
            body["edited"] = {"user": self.user, "ts": self.ts}
        return body


@dataclass
class Ephemeral:
    """A message only one person can see."""

    channel: str
    user: str
    text: str
    blocks: list[Block]
    via: str  # "chat.postEphemeral" | "response_url" | "ack" | "slack"
    ts: str
    thread_ts: str | None = None
    deleted: bool = False
    edits: list[MessageVersion] = field(default_factory=list)


@dataclass
class ResponsePost:
    """One POST to a response_url."""

    url_id: str
    body: Json
    status: int
    at: float


@dataclass
class View:
    """A modal or Home tab view."""

    id: str
    type: str
    user: str
    blocks: list[Block]
    callback_id: str
    private_metadata: str
    title: str
    source: Json
    hash: str
    opened_ts: str
    team_id: str
    app_id: str
    bot_id: str
    state: Json = field(default_factory=dict)
    external_id: str = ""
    channel: str | None = None
    previous_view_id: str | None = None
    root_view_id: str | None = None
    closed: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    def to_slack(self) -> Json:
        """The view object as Slack hands it to apps."""
        body = {key: copy.deepcopy(value) for key, value in self.source.items() if key != "blocks"}
        body.update(
            {
                "id": self.id,
                "team_id": self.team_id,
                "type": self.type,
                "blocks": copy.deepcopy(self.blocks),
                "private_metadata": self.private_metadata,
                "callback_id": self.callback_id,
                "state": {"values": copy.deepcopy(self.state)},
                "hash": self.hash,
                "external_id": self.external_id,
                "previous_view_id": self.previous_view_id,
                "root_view_id": self.root_view_id or self.id,
                "app_id": self.app_id,
                "app_installed_team_id": self.team_id,
                "bot_id": self.bot_id,
            }
        )
        return body


@dataclass
class ApiCall:
    """One Web API call as the emulator saw it (token removed)."""

    method: str
    params: Json
    status: int
    ok: bool
    error: str | None
    at: float


@dataclass
class Activity:
    """Something a person did that Slack shows nowhere but a transcript should (commands, clicks)."""

    kind: str  # "command" | "click" | "submit"
    user: str
    channel: str | None
    text: str
    ts: str


@dataclass
class Download:
    """One GET of a private file URL."""

    file_id: str
    authorized: bool
    at: float


@dataclass
class User:
    """A person (or the bot) in the workspace."""

    id: str
    name: str
    real_name: str
    is_admin: bool = False
    deleted: bool = False
    is_bot: bool = False

    def to_slack(self, team_id: str) -> Json:
        profile = {"real_name": self.real_name, "display_name": self.name}
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_bot": self.is_bot,
            "tz": "UTC",
            "profile": profile,
        }


@dataclass
class Channel:
    """A conversation: public or private channel, DM with the bot, or group DM."""

    id: str
    name: str
    members: set[str]
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    dm_user: str | None = None

    @property
    def channel_type(self) -> str:
        """The `channel_type` Slack puts on message events."""
        if self.is_im:
            return "im"
        if self.is_mpim:
            return "mpim"
        return "group" if self.is_private else "channel"

    def to_slack(self, bot_user_id: str) -> Json:
        body: Json = {
            "id": self.id,
            "name": self.name,
            "is_channel": not (self.is_private or self.is_im or self.is_mpim),
            "is_group": self.is_private and not self.is_mpim,
            "is_im": self.is_im,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private or self.is_im or self.is_mpim,
            "is_archived": False,
            "is_member": bot_user_id in self.members,
            "num_members": len(self.members),
        }
        if self.dm_user:
            body["user"] = self.dm_user
        return body


@dataclass
class Usergroup:
    """A user group (subteam) such as @team-leads."""

    id: str
    handle: str
    users: list[str]


@dataclass
class StoredFile:
    """A hosted file: its Slack file object and its bytes."""

    info: Json
    content: bytes


@dataclass
class UploadPost:
    """One POST of a file's bytes to an upload URL from files.getUploadURLExternal."""

    file_id: str
    size: int
    # Slack's upload URL is pre-signed: a client has no reason to send a token there.
    sent_authorization: bool
    at: float


@dataclass
class _PendingUpload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None


@dataclass
class _Trigger:
    user: str
    channel: str | None
    issued_at: float
    used: bool = False


@dataclass
class _ResponseTarget:
    channel: str | None
    user: str | None
    created_at: float
    message_ts: str | None = None
    ephemeral_ts: str | None = None
    thread_ts: str | None = None
    uses: int = 0


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Json, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
        return cls(status, json.dumps(payload).encode(), headers=headers or {})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> _Reply:
        return cls(status, text.encode(), content_type)


class ApiError(Exception):
    """A Slack Web API error: HTTP 200 with ok=false."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


# ---------------------------------------------------------------------------------------------------
# Parameters and blocks
# ---------------------------------------------------------------------------------------------------


class _Params:
    """Web API arguments from a JSON body, a form body or the query string."""

    def __init__(self, values: Json) -> None:
        self.values = values

    def text(self, name: str, error: str = "invalid_arguments") -> str:
        value = self.opt(name)
        if not value:
            raise ApiError(error)
        return value

    def opt(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else str(value)

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)

    def json(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {name}: invalid JSON"]})
        return value


def _parse_body(content_type: str, body: bytes) -> Json:
    if not body:
        return {}
    if content_type.startswith("application/json"):
        parsed = json.loads(body.decode("utf-8"))
        return parsed if isinstance(parsed, dict) else {}
    if content_type.startswith("multipart/form-data"):
        return {name: value.decode("utf-8", "replace") for name, value in _multipart_parts(content_type, body)}
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))


def _multipart_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition") or ""
        parts.append((str(name), part.get_payload(decode=True) or b""))
    return parts


def _random_block_id() -> str:
    return secrets.token_urlsafe(4)[:5]


def interactive_elements(block: Block) -> list[Json]:
    """Elements of a block that can carry an action_id."""
    kind = block.get("type")
    if kind == "actions":
        candidates = block.get("elements") or []
    elif kind == "section" and isinstance(block.get("accessory"), dict):
        candidates = [block["accessory"]]
    elif kind == "input" and isinstance(block.get("element"), dict):
        candidates = [block["element"]]
    else:
        candidates = []
    return [element for element in candidates if isinstance(element, dict) and element.get("type") != "image"]


def iter_buttons(blocks: list[Block]) -> Iterator[tuple[Block, Json]]:
    """(block, button) pairs in display order."""
    for block in blocks:
        for element in interactive_elements(block):
            if element.get("type") == "button":
                yield block, element


def _text_of(value: Any) -> str:
    return value.get("text", "") if isinstance(value, dict) else ""


def _block_problems(index: int, block: Any) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"[ERROR] block {index}: missing type"]
    problems = []
    kind = block["type"]
    if kind == "section":
        if not block.get("text") and not block.get("fields"):
            problems.append(f"[ERROR] block {index}: section needs text or fields")
        if len(_text_of(block.get("text"))) > 3000:
            problems.append(f"[ERROR] block {index}: section text longer than 3000 characters")
        if len(block.get("fields") or []) > 10:
            problems.append(f"[ERROR] block {index}: more than 10 fields")
    if kind == "header" and len(_text_of(block.get("text"))) > 150:
        problems.append(f"[ERROR] block {index}: header text longer than 150 characters")
    if kind == "actions" and not 1 <= len(block.get("elements") or []) <= 25:
        problems.append(f"[ERROR] block {index}: actions need 1 to 25 elements")
    for element in interactive_elements(block):
        if element.get("type") == "button":
            problems.extend(_button_problems(index, element))
    return problems


def _button_problems(index: int, button: Json) -> list[str]:
    problems = []
    if not 1 <= len(_text_of(button.get("text"))) <= 75:
        problems.append(f"[ERROR] block {index}: button text must be 1 to 75 characters")
    if len(str(button.get("value") or "")) > 2000:
        problems.append(f"[ERROR] block {index}: button value longer than 2000 characters")
    return problems


def prepare_blocks(blocks: Any, *, limit: int) -> list[Block]:
    """Validate blocks like Slack does and fill in the block_id/action_id values Slack generates."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        raise ApiError("invalid_blocks_format")
    problems = [] if len(blocks) <= limit else [f"[ERROR] no more than {limit} items allowed"]
    for index, block in enumerate(blocks):
        problems.extend(_block_problems(index, block))
    prepared = copy.deepcopy(blocks)
    problems.extend(_fill_ids(prepared))
    if problems:
        raise ApiError("invalid_blocks", errors=problems, response_metadata={"messages": problems})
    return prepared


def _fill_ids(blocks: list[Block]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        block_id = block.setdefault("block_id", _random_block_id())
        if block_id in seen:
            problems.append(f"[ERROR] duplicate block_id {block_id!r}")
        seen.add(block_id)
        action_ids: set[str] = set()
        for element in interactive_elements(block):
            action_id = element.setdefault("action_id", _random_block_id())
            if action_id in action_ids:
                problems.append(f"[ERROR] duplicate action_id {action_id!r} in block {block_id!r}")
            action_ids.add(action_id)
    return problems


def _file_type(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"txt": "text", "": "binary"}.get(extension, extension)


# ---------------------------------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------------------------------


class _RateLimiter:
    """Per-method sliding one-minute windows, plus a per-channel token bucket for chat.postMessage."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    def reset(self) -> None:
        self._windows.clear()
        self._buckets.clear()

    def retry_after(self, method: str, channel: str | None) -> int | None:
        """Seconds to wait if this call is over the limit, else None (and the call is counted)."""
        if method == "chat.postMessage":
            return self._take_token(channel or "")
        tier = METHOD_TIERS.get(method)
        return None if tier is None else self._count_in_window(method, TIER_LIMITS[tier])

    def _count_in_window(self, method: str, limit: int) -> int | None:
        now = self._clock()
        window = self._windows.setdefault(method, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + 60 - now))
        window.append(now)
        return None

    def _take_token(self, channel: str) -> int | None:
        now = self._clock()
        tokens, updated = self._buckets.get(channel, (float(POST_MESSAGE_BURST), now))
        tokens = min(float(POST_MESSAGE_BURST), tokens + (now - updated) * POST_MESSAGE_PER_SECOND)
        if tokens < 1:
            self._buckets[channel] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / POST_MESSAGE_PER_SECOND))
        self._buckets[channel] = (tokens - 1, now)
        return None


# ---------------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of connections from the bot's threads
    # would be refused or reset before the accept loop catches up.
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: SlackEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        reply = self.server.emulator.handle_http(verb, self.path, headers, body)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# ---------------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------------


DEFAULT_BOT_SCOPES = ("app_mentions:read", "channels:history", "chat:write", "commands", "files:read",
                      "files:write", "groups:history", "im:history", "mpim:history", "usergroups:read")


class SlackEmulator:
    """A one-workspace Slack: Web API, response_url endpoints, private file hosting, Socket Mode."""

    def __init__(
        self,
        *,
        port: int = 0,
        bot_token: str = "xoxb-sandbox-bot-token",
        team_id: str = "T0SANDBOX",
        bot_user_id: str = "U0BOT",
        rate_limits: bool = False,
        app_token: str = "xapp-sandbox-app-token",
        bot_name: str = "deletetags-bot",
        app_id: str = "A0SANDBOX",
        bot_id: str = "B0BOT",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._port = port
        self.bot_token = bot_token
        # Real Slack reports a token's scopes in the x-oauth-scopes header of every answer.
        self.bot_scopes: list[str] = list(DEFAULT_BOT_SCOPES)
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = "sandbox"
        self.bot_user_id = bot_user_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.bot_id = bot_id
        self.usergroups_enabled = True
        self._clock = clock
        self._lock = threading.RLock()
        self._limiter = _RateLimiter(clock)
        self._rate_limits = rate_limits
        self._counter = itertools.count(1)
        self._last_micros = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket_hub: SocketModeHub | None = None
        self._init_state()
        self._methods = self._method_table()
        self._users[bot_user_id] = User(bot_user_id, bot_name, bot_name, is_bot=True)

    def _init_state(self) -> None:
        self._users: dict[str, User] = {}
        self._channels: dict[str, Channel] = {}
        self._usergroups: dict[str, Usergroup] = {}
        self._files: dict[str, StoredFile] = {}
        self._file_redirects: dict[str, str] = {}
        self._uploads: dict[str, _PendingUpload] = {}
        self._messages: dict[str, list[Message]] = {}
        self._ephemerals: list[Ephemeral] = []
        self._responses: list[ResponsePost] = []
        self._response_targets: dict[str, _ResponseTarget] = {}
        self._views: dict[str, View] = {}
        self._homes: dict[str, str] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._calls: list[ApiCall] = []
        self._failures: dict[str, deque[str | int]] = {}
        self._activities: list[Activity] = []
        self._downloads: list[Download] = []
        self._upload_posts: list[UploadPost] = []
        self._upload_root: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> SlackEmulator:
        """Bind 127.0.0.1 and serve in a daemon thread."""
        if self._server is None:
            self._server = _Server(("127.0.0.1", self._port), self)
            server = self._server
            self._thread = threading.Thread(
                target=lambda: server.serve_forever(poll_interval=0.05), name="slack-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._socket_hub is not None:
            self._socket_hub.stop()
            self._socket_hub = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Slack emulator is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.root_url}/api/"

    @property
    def rate_limits(self) -> bool:
        return self._rate_limits

    @rate_limits.setter
    def rate_limits(self, enabled: bool) -> None:
        with self._lock:
            self._limiter.reset()
            self._rate_limits = enabled

    def now(self) -> float:
        return self._clock()

    def next_ts(self) -> str:
        """A fresh ts from the workspace's strictly increasing sequence."""
        with self._lock:
            return self._next_ts()

    # -- setup -------------------------------------------------------------------------------------

    def add_user(
        self, user_id: str, name: str, *, real_name: str | None = None, is_admin: bool = False, deleted: bool = False
    ) -> str:
        with self._lock:
            self._users[user_id] = User(user_id, name, real_name or name, is_admin=is_admin, deleted=deleted)
        return user_id

    def add_channel(self, channel_id: str, name: str, *, members: list[str], is_private: bool = False) -> str:
        with self._lock:
            self._channels[channel_id] = Channel(channel_id, name.lstrip("#"), set(members), is_private=is_private)
            self._messages.setdefault(channel_id, [])
        return channel_id

    def add_member(self, channel_id: str, user_id: str) -> None:
        with self._lock:
            self._channels[channel_id].members.add(user_id)

    def remove_member(self, channel_id: str, user_id: str) -> None:
        with self._lock:
            self._channels[channel_id].members.discard(user_id)

    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> str:
        with self._lock:
            self._usergroups[group_id] = Usergroup(group_id, handle.lstrip("@"), list(users))
        return group_id

    def set_usergroup_users(self, group_id: str, users: list[str]) -> None:
        with self._lock:
            self._usergroups[group_id].users = list(users)

    def add_file(
        self, owner: str, name: str, content: bytes, *, filetype: str | None = None, mimetype: str | None = None
    ) -> Json:
        """Store a file as if `owner` had uploaded it; returns the full file object."""
        with self._lock:
            file_id = self._new_id("F")
            info = self._file_object(file_id, owner, name, len(content), filetype=filetype, mimetype=mimetype)
            self._files[file_id] = StoredFile(info, content)
            return copy.deepcopy(info)

    def add_remote_file(self, owner: str, name: str, external_url: str) -> Json:
        """Register a remote file (files.remote.add): Slack keeps only a link, in `url_private`."""
        with self._lock:
            file_id = self._new_id("F")
            info = self._file_object(file_id, owner, name, 0)
            del info["url_private_download"]
            info.update({"mode": "external", "is_external": True, "external_type": "app",
                         "external_url": external_url, "url_private": external_url})
            self._files[file_id] = StoredFile(info, b"")
            return copy.deepcopy(info)

    def point_file_at(self, file_id: str, url: str) -> Json:
        """Make a hosted file's object name another download URL (as a forged or buggy payload would)."""
        with self._lock:
            info = self._files[file_id].info
            info["url_private"] = info["url_private_download"] = url
            return copy.deepcopy(info)

    def redirect_file_downloads(self, file_id: str, location: str) -> None:
        """Answer every download of the file with a 302 to `location`."""
        with self._lock:
            self._file_redirects[file_id] = location

    def hand_out_upload_urls_on(self, root_url: str | None) -> None:
        """Make files.getUploadURLExternal name upload URLs under another origin (as a forged or buggy
        answer would); None goes back to the emulator's own."""
        with self._lock:
            self._upload_root = root_url

    def fail_next(self, method: str, error: str | int, count: int = 1) -> None:
        """Make the next `count` calls of `method` fail with an API error (str) or an HTTP status (int)."""
        with self._lock:
            self._failures.setdefault(method, deque()).extend([error] * count)

    def new_response_url(
        self,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
        ephemeral_ts: str | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """Issue a response_url; the keywords say where its replies land and what replace_original edits."""
        with self._lock:
            url_id = secrets.token_hex(8)
            self._response_targets[url_id] = _ResponseTarget(
                channel, user, self._clock(), message_ts=message_ts, ephemeral_ts=ephemeral_ts, thread_ts=thread_ts
            )
        return f"{self.root_url}/response/{self.team_id}/{url_id}"

    def new_trigger_id(self, user_id: str, *, channel: str | None = None) -> str:
        with self._lock:
            trigger_id = f"{int(self._clock())}.{next(self._counter)}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = _Trigger(user_id, channel, self._clock())
        return trigger_id

    # -- inspection ----------------------------------------------------------------------------------

    def messages(self, channel_id: str) -> list[Message]:
        """Top-level messages and thread replies of a conversation, in ts order."""
        with self._lock:
            return copy.deepcopy(self._messages.get(channel_id, []))

    def thread(self, channel_id: str, ts: str) -> list[Message]:
        """The thread's parent followed by its replies; `ts` may name the parent or any reply."""
        with self._lock:
            root = self._thread_root(channel_id, ts)
            return copy.deepcopy([m for m in self._messages.get(channel_id, []) if root in (m.ts, m.thread_ts)])

    def message(self, channel_id: str, ts: str) -> Message:
        with self._lock:
            return copy.deepcopy(self._find_message(channel_id, ts))

    @property
    def ephemerals(self) -> list[Ephemeral]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    def ephemeral(self, ts: str) -> Ephemeral:
        with self._lock:
            return copy.deepcopy(self._find_ephemeral(ts))

    @property
    def responses(self) -> list[ResponsePost]:
        with self._lock:
            return copy.deepcopy(self._responses)

    @property
    def views(self) -> dict[str, View]:
        with self._lock:
            return copy.deepcopy(self._views)

    def view(self, view_id: str) -> View:
        with self._lock:
            return copy.deepcopy(self._views[view_id])

    def home(self, user_id: str) -> View | None:
        with self._lock:
            view_id = self._homes.get(user_id)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    @property
    def calls(self) -> list[ApiCall]:
        with self._lock:
            return copy.deepcopy(self._calls)

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    @property
    def activities(self) -> list[Activity]:
        with self._lock:
            return copy.deepcopy(self._activities)

    @property
    def downloads(self) -> list[Download]:
        with self._lock:
            return copy.deepcopy(self._downloads)

    @property
    def channel_ids(self) -> list[str]:
        with self._lock:
            return list(self._channels)

    def channel(self, channel_id: str) -> Channel:
        with self._lock:
            return copy.deepcopy(self._channels[channel_id])

    def user(self, user_id: str) -> User | None:
        with self._lock:
            found = self._users.get(user_id)
            return copy.deepcopy(found) if found else None

    def user_name(self, user_id: str) -> str:
        found = self.user(user_id)
        return found.name if found else user_id

    def usergroup_handle(self, group_id: str) -> str | None:
        with self._lock:
            group = self._usergroups.get(group_id)
            return group.handle if group else None

    def file(self, file_id: str) -> StoredFile:
        with self._lock:
            return copy.deepcopy(self._files[file_id])

    def file_content(self, file_id: str) -> bytes:
        """The bytes of a hosted file (one uploaded by the bot, or added with add_file)."""
        with self._lock:
            return self._files[file_id].content

    @property
    def upload_posts(self) -> list[UploadPost]:
        """Every POST to an upload URL, in order (whether or not the URL was valid)."""
        with self._lock:
            return copy.deepcopy(self._upload_posts)

    # -- hooks used by the driver (acting as Slack's client side) -------------------------------------

    def open_dm(self, user_id: str) -> str:
        """The DM between the bot and a person (created on first use)."""
        with self._lock:
            return self._dm_with(user_id).id

    def record_user_message(
        self,
        user: str,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        files: list[Json] | None = None,
        subtype: str | None = None,
    ) -> Message:
        """Store a message a person posted; thread_ts may name any message of the thread."""
        with self._lock:
            root = self._thread_root(channel, thread_ts)
            message = self._append_message(channel, user, text, [], thread_ts=root, files=files, subtype=subtype)
            return copy.deepcopy(message)

    def record_ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[Block] | None = None,
        *,
        via: str,
        thread_ts: str | None = None,
        ts: str | None = None,
    ) -> Ephemeral:
        """Show a message to one person; `ts` may be one reserved earlier with next_ts()."""
        prepared = prepare_blocks(blocks or [], limit=MAX_MESSAGE_BLOCKS)
        with self._lock:
            ephemeral = Ephemeral(channel, user, text, prepared, via, ts or self._next_ts(), thread_ts=thread_ts)
            self._ephemerals.append(ephemeral)
            return copy.deepcopy(ephemeral)

    def record_bot_message(
        self, channel: str, text: str, blocks: list[Block] | None = None, *, ts: str | None = None
    ) -> Message:
        """A message that appears as the bot's without a Web API call (e.g. an in_channel ack)."""
        prepared = prepare_blocks(blocks or [], limit=MAX_MESSAGE_BLOCKS)
        with self._lock:
            message = self._append_message(channel, self.bot_user_id, text, prepared, bot_id=self.bot_id, ts=ts)
            return copy.deepcopy(message)

    def record_activity(self, kind: str, user: str, channel: str | None, text: str) -> Activity:
        with self._lock:
            activity = Activity(kind, user, channel, text, self._next_ts())
            self._activities.append(activity)
            return copy.deepcopy(activity)

    def record_view_state(self, view_id: str, values: Json) -> None:
        with self._lock:
            self._views[view_id].state = copy.deepcopy(values)

    def apply_view_response(self, view_id: str, response: Json) -> None:
        """Apply a view_submission ack: close, show errors, update, push or clear."""
        with self._lock:
            view = self._views[view_id]
            action = response.get("response_action")
            view.errors = dict(response.get("errors") or {}) if action == "errors" else {}
            if action == "errors":
                return
            if action == "update":
                self._replace_view(view, response.get("view") or {})
            elif action == "push":
                pushed = self._create_view(response.get("view") or {}, view.user, view.channel, "modal")
                pushed.previous_view_id, pushed.root_view_id = view.id, view.root_view_id or view.id
            elif action == "clear":
                self._close_stack(view)
            else:
                view.closed = True

    # -- HTTP entry point -----------------------------------------------------------------------------

    def handle_http(self, verb: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Route one HTTP request (called from the server threads)."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        if path.startswith("/api/"):
            values = dict(parse_qsl(parts.query, keep_blank_values=True))
            try:
                values.update(_parse_body(headers.get("content-type", ""), body))
            except ValueError:
                return _Reply.json({"ok": False, "error": "invalid_json"})
            return self._web_api(path[len("/api/") :], headers, values)
        if path.startswith("/response/") and verb == "POST":
            return self._post_response(path.rsplit("/", 1)[-1], headers.get("content-type", ""), body)
        if path.startswith("/upload/v1/") and verb == "POST":
            return self._receive_upload(path.rsplit("/", 1)[-1], headers, body)
        if path.startswith("/files-pri/") and verb == "GET":
            return self._download(path, headers.get("authorization", ""))
        if verb == "GET" and path.startswith(("/archives/", "/files/")):
            return _Reply.text(SIGN_IN_PAGE, content_type="text/html; charset=utf-8")
        return _Reply.text("not found", status=404)

    # -- Web API dispatch -----------------------------------------------------------------------------

    def _method_table(self) -> dict[str, Callable[[_Params], Json]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.members": self._conversations_members,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "usergroups.list": self._usergroups_list,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.info": self._files_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "apps.connections.open": self._apps_connections_open,
        }

    def _web_api(self, method: str, headers: dict[str, str], values: Json) -> _Reply:
        with self._lock:
            params = {key: value for key, value in values.items() if key != "token"}
            reply = self._call_method(method, headers, values)
            payload = json.loads(reply.body) if reply.body else {}
            error = None if payload.get("ok") else payload.get("error")
            self._calls.append(ApiCall(method, params, reply.status, bool(payload.get("ok")), error, self._clock()))
            return reply

    def _call_method(self, method: str, headers: dict[str, str], values: Json) -> _Reply:
        handler = self._methods.get(method)
        if handler is None:
            return _Reply.json({"ok": False, "error": "unknown_method", "req_method": method})
        params = _Params(values)
        try:
            token = self._authenticate(method, headers, params)
            self._check_scope(method, token)
            injected = self._injected_failure(method)
            if injected is not None:
                return injected
            if self._rate_limits:
                retry_after = self._limiter.retry_after(method, params.opt("channel"))
                if retry_after is not None:
                    return _Reply.json({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(retry_after)})
            scopes = {"x-oauth-scopes": ",".join(self.bot_scopes)} if token == self.bot_token else {}
            return _Reply.json({"ok": True, **handler(params)}, headers=scopes)
        except ApiError as failure:
            return _Reply.json({"ok": False, "error": failure.error, **failure.extra})

    def _authenticate(self, method: str, headers: dict[str, str], params: _Params) -> str:
        authorization = headers.get("authorization", "")
        token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else params.opt("token")
        if not token:
            raise ApiError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise ApiError("invalid_auth")
        # Slack refuses app-level tokens everywhere except the app-level methods, and the reverse.
        if (token == self.app_token) != (method == "apps.connections.open"):
            raise ApiError("not_allowed_token_type")
        return token

    def _check_scope(self, method: str, token: str) -> None:
        needed = ENFORCED_SCOPES.get(method)
        if needed and token == self.bot_token and needed not in self.bot_scopes:
            raise ApiError("missing_scope", needed=needed, provided=",".join(self.bot_scopes))

    def _injected_failure(self, method: str) -> _Reply | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue.popleft()
        if isinstance(failure, str):
            raise ApiError(failure)
        if failure == 429:
            return _Reply.json({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": "1"})
        return _Reply.json({"ok": False, "error": "internal_error"}, failure)

    # -- shared helpers (call with the lock held) ----------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0SBX{next(self._counter):05d}"

    def _next_ts(self) -> str:
        """Strictly increasing ts: seconds with exactly six decimals, so string and float order agree."""
        micros = max(int(self._clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, channel_id: str | None) -> Channel:
        channel = self._channels.get(channel_id or "")
        if channel is None:
            raise ApiError("channel_not_found")
        return channel

    def _user(self, user_id: str | None) -> User:
        user = self._users.get(user_id or "")
        if user is None:
            raise ApiError("user_not_found")
        return user

    def _dm_with(self, user_id: str) -> Channel:
        self._user(user_id)
        for channel in self._channels.values():
            if channel.is_im and channel.dm_user == user_id:
                return channel
        channel = Channel(self._new_id("D"), user_id, {self.bot_user_id, user_id}, is_im=True, dm_user=user_id)
        self._channels[channel.id] = channel
        self._messages[channel.id] = []
        return channel

    def _post_target(self, channel_ref: str) -> Channel:
        """chat.postMessage accepts a conversation id, a user id (the bot's DM) or a #name."""
        if channel_ref in self._users:
            return self._dm_with(channel_ref)
        if channel_ref.startswith("#"):
            for channel in self._channels.values():
                if channel.name == channel_ref[1:]:
                    return channel
        return self._channel(channel_ref)

    def _require_bot_member(self, channel: Channel) -> None:
        if self.bot_user_id not in channel.members:
            raise ApiError("not_in_channel")

    def _find_message(self, channel_id: str, ts: str | None) -> Message:
        for message in self._messages.get(channel_id, []):
            if message.ts == ts:
                return message
        raise ApiError("message_not_found")

    def _find_ephemeral(self, ts: str | None) -> Ephemeral:
        for ephemeral in self._ephemerals:
            if ephemeral.ts == ts:
                return ephemeral
        raise ApiError("message_not_found")

    def _thread_root(self, channel_id: str, thread_ts: str | None) -> str | None:
        if not thread_ts:
            return None
        try:
            parent = self._find_message(channel_id, thread_ts)
        except ApiError:
            raise ApiError("thread_not_found") from None
        return parent.thread_ts or parent.ts

    def _append_message(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[Block],
        *,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        files: list[Json] | None = None,
        subtype: str | None = None,
        bot_id: str | None = None,
        metadata: Json | None = None,
        ts: str | None = None,
    ) -> Message:
        message = Message(
            ts or self._next_ts(), channel, user, text, blocks, thread_ts=thread_ts, reply_broadcast=reply_broadcast,
            files=copy.deepcopy(files or []), subtype=subtype, bot_id=bot_id, metadata=metadata,
        )
        bisect.insort(self._messages.setdefault(channel, []), message, key=lambda stored: float(stored.ts))
        return message

    def _message_content(self, params: _Params, *, required: bool = True) -> tuple[str, list[Block]]:
        text = params.opt("text") or ""
        blocks = prepare_blocks(params.json("blocks"), limit=MAX_MESSAGE_BLOCKS)
        if required and not text and not blocks and not params.values.get("attachments"):
            raise ApiError("no_text")
        if len(text) > MAX_TEXT_LENGTH:
            raise ApiError("msg_too_long")
        return text, blocks

    def _file_object(
        self,
        file_id: str,
        owner: str,
        name: str,
        size: int,
        *,
        filetype: str | None = None,
        mimetype: str | None = None,
        title: str | None = None,
    ) -> Json:
        quoted = quote(name)
        private = f"{self.root_url}/files-pri/{self.team_id}-{file_id}/{quoted}"
        return {
            "id": file_id,
            "created": int(self._clock()),
            "timestamp": int(self._clock()),
            "name": name,
            "title": title or name,
            "mimetype": mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream",
            "filetype": filetype or _file_type(name),
            "pretty_type": (filetype or _file_type(name)).upper(),
            "user": owner,
            "user_team": self.team_id,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "is_public": False,
            "url_private": private,
            "url_private_download": f"{self.root_url}/files-pri/{self.team_id}-{file_id}/download/{quoted}",
            "permalink": f"{self.root_url}/files/{owner}/{file_id}/{quoted}",
        }

    # -- auth / chat --------------------------------------------------------------------------------

    def _auth_test(self, params: _Params) -> Json:
        return {
            "url": f"{self.root_url}/",
            "team": "Sandbox",
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: _Params) -> Json:
        channel = self._post_target(params.text("channel", "channel_not_found"))
        self._require_bot_member(channel)
        text, blocks = self._message_content(params)
        thread_ts = self._thread_root(channel.id, params.opt("thread_ts"))
        message = self._append_message(
            channel.id, self.bot_user_id, text, blocks, thread_ts=thread_ts,
            reply_broadcast=bool(thread_ts) and params.flag("reply_broadcast"), bot_id=self.bot_id,
            metadata=params.json("metadata"),
        )
        return {"channel": channel.id, "ts": message.ts, "message": message.to_slack(self.team_id)}

    def _editable_message(self, params: _Params) -> Message:
        channel = self._channel(params.text("channel", "channel_not_found"))
        message = self._find_message(channel.id, params.text("ts", "message_not_found"))
        if message.deleted:
            raise ApiError("message_not_found")
        return message

    def _chat_update(self, params: _Params) -> Json:
        message = self._editable_message(params)
        if message.user != self.bot_user_id:
            raise ApiError("cant_update_message")
        text, blocks = self._message_content(params, required=False)
        message.edits.append(MessageVersion(message.text, message.blocks, self._clock()))
        # Slack keeps the old blocks when chat.update omits `blocks`, and the old text when it omits `text`.
        if "blocks" in params.values:
            message.blocks = blocks
        if "text" in params.values:
            message.text = text
        body = message.to_slack(self.team_id)
        return {"channel": message.channel, "ts": message.ts, "text": message.text, "message": body}

    def _chat_delete(self, params: _Params) -> Json:
        message = self._editable_message(params)
        if message.user != self.bot_user_id:
            raise ApiError("cant_delete_message")
        message.deleted = True
        return {"channel": message.channel, "ts": message.ts}

    def _chat_post_ephemeral(self, params: _Params) -> Json:
        channel = self._post_target(params.text("channel", "channel_not_found"))
        user = self._user(params.text("user", "user_not_found"))
        self._require_bot_member(channel)
        if user.id not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks = self._message_content(params)
        thread_ts = params.opt("thread_ts") or None
        ephemeral = Ephemeral(channel.id, user.id, text, blocks, "chat.postEphemeral", self._next_ts(), thread_ts)
        self._ephemerals.append(ephemeral)
        return {"message_ts": ephemeral.ts}

    def _chat_get_permalink(self, params: _Params) -> Json:
        channel = self._channel(params.text("channel", "channel_not_found"))
        message = self._find_message(channel.id, params.text("message_ts", "message_not_found"))
        link = f"{self.root_url}/archives/{channel.id}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    # -- conversations / users / usergroups ------------------------------------------------------------

    def _conversations_open(self, params: _Params) -> Json:
        if params.opt("channel"):
            return {"channel": self._channel(params.opt("channel")).to_slack(self.bot_user_id)}
        user_ids = [user for user in (params.opt("users") or "").split(",") if user]
        if not user_ids:
            raise ApiError("users_list_not_supplied")
        for user_id in user_ids:
            self._user(user_id)
        existing = len(self._channels)
        channel = self._dm_with(user_ids[0]) if len(user_ids) == 1 else self._group_dm(user_ids)
        already_open = len(self._channels) == existing
        return {"channel": {"id": channel.id}, "no_op": already_open, "already_open": already_open}

    def _group_dm(self, user_ids: list[str]) -> Channel:
        members = {self.bot_user_id, *user_ids}
        for channel in self._channels.values():
            if channel.is_mpim and channel.members == members:
                return channel
        name = "mpdm-" + "--".join(sorted(self._users[user].name for user in user_ids)) + "-1"
        channel = Channel(self._new_id("G"), name, members, is_private=True, is_mpim=True)
        self._channels[channel.id] = channel
        self._messages[channel.id] = []
        return channel

    def _conversations_info(self, params: _Params) -> Json:
        channel = self._channel(params.text("channel", "channel_not_found"))
        if channel.is_private and self.bot_user_id not in channel.members:
            raise ApiError("channel_not_found")
        return {"channel": channel.to_slack(self.bot_user_id)}

    def _readable_channel(self, params: _Params) -> Channel:
        channel = self._channel(params.text("channel", "channel_not_found"))
        self._require_bot_member(channel)
        return channel

    def _conversations_history(self, params: _Params) -> Json:
        channel = self._readable_channel(params)
        visible = [m for m in self._messages[channel.id] if not m.deleted and (not m.is_reply or m.reply_broadcast)]
        limit = int(params.opt("limit") or 100)
        newest_first = [m.to_slack(self.team_id) for m in reversed(visible)]
        return {
            "messages": newest_first[:limit],
            "has_more": len(newest_first) > limit,
            "response_metadata": {"next_cursor": ""},
        }

    def _conversations_replies(self, params: _Params) -> Json:
        channel = self._readable_channel(params)
        root = self._thread_root(channel.id, params.text("ts", "thread_not_found"))
        in_thread = [m for m in self._messages[channel.id] if root in (m.ts, m.thread_ts) and not m.deleted]
        with_metadata = params.flag("include_all_metadata")
        thread = [m.to_slack(self.team_id, with_metadata) for m in in_thread]
        return {"messages": thread, "has_more": False, "response_metadata": {"next_cursor": ""}}

    def _conversations_members(self, params: _Params) -> Json:
        channel = self._channel(params.text("channel", "channel_not_found"))
        return {"members": sorted(channel.members), "response_metadata": {"next_cursor": ""}}

    def _users_info(self, params: _Params) -> Json:
        return {"user": self._user(params.text("user", "user_not_found")).to_slack(self.team_id)}

    def _usergroups_users_list(self, params: _Params) -> Json:
        if not self.usergroups_enabled:
            raise ApiError("plan_upgrade_required")
        group = self._usergroups.get(params.text("usergroup", "no_such_subteam"))
        if group is None:
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}

    def _usergroups_list(self, params: _Params) -> Json:
        if not self.usergroups_enabled:
            raise ApiError("plan_upgrade_required")
        groups = []
        for group in self._usergroups.values():
            entry: Json = {"id": group.id, "team_id": self.team_id, "handle": group.handle, "name": group.handle}
            entry["user_count"] = len(group.users)
            if params.flag("include_users"):
                entry["users"] = list(group.users)
            groups.append(entry)
        return {"usergroups": groups}

    # -- views ---------------------------------------------------------------------------------------

    def _take_trigger(self, params: _Params) -> _Trigger:
        trigger = self._triggers.get(params.text("trigger_id", "invalid_trigger_id"))
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.used or self._clock() - trigger.issued_at >= TRIGGER_LIFETIME:
            raise ApiError("expired_trigger_id")
        trigger.used = True
        return trigger

    def _check_view(self, view: Any, kind: str) -> Json:
        if not isinstance(view, dict) or view.get("type") != kind:
            raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] view type must be {kind}"]})
        problems = []
        title = _text_of(view.get("title"))
        if kind == "modal" and not 1 <= len(title) <= 24:
            problems.append("[ERROR] title must be 1 to 24 characters")
        blocks = view.get("blocks") or []
        has_inputs = any(isinstance(block, dict) and block.get("type") == "input" for block in blocks)
        if kind == "modal" and has_inputs and not view.get("submit"):
            problems.append("[ERROR] a modal with input blocks needs submit")
        if len(str(view.get("private_metadata") or "")) > 3000:
            problems.append("[ERROR] private_metadata longer than 3000 characters")
        if problems:
            raise ApiError("invalid_arguments", response_metadata={"messages": problems})
        return view

    def _create_view(self, source: Json, user: str, channel: str | None, kind: str) -> View:
        source = self._check_view(source, kind)
        blocks = prepare_blocks(source.get("blocks") or [], limit=MAX_VIEW_BLOCKS)
        view = View(
            id=self._new_id("V"), type=kind, user=user, blocks=blocks, callback_id=source.get("callback_id") or "",
            private_metadata=source.get("private_metadata") or "", title=_text_of(source.get("title")),
            source=copy.deepcopy(source), hash=self._new_hash(), opened_ts=self._next_ts(),
            team_id=self.team_id, app_id=self.app_id, bot_id=self.bot_id, external_id=source.get("external_id") or "",
            channel=channel,
        )
        self._views[view.id] = view
        return view

    def _replace_view(self, view: View, source: Json) -> None:
        source = self._check_view(source, view.type)
        view.blocks = prepare_blocks(source.get("blocks") or [], limit=MAX_VIEW_BLOCKS)
        view.source = copy.deepcopy(source)
        view.callback_id = source.get("callback_id") or ""
        view.private_metadata = source.get("private_metadata") or ""
        view.title = _text_of(source.get("title"))
        view.external_id = source.get("external_id") or view.external_id
        view.hash = self._new_hash()
        view.closed = False

    def _new_hash(self) -> str:
        return f"{int(self._clock())}.{secrets.token_hex(4)}"

    def _close_stack(self, view: View) -> None:
        root = view.root_view_id or view.id
        for candidate in self._views.values():
            if candidate.user == view.user and (candidate.root_view_id or candidate.id) == root:
                candidate.closed = True

    def _views_open(self, params: _Params) -> Json:
        trigger = self._take_trigger(params)
        view = self._create_view(params.json("view"), trigger.user, trigger.channel, "modal")
        return {"view": view.to_slack()}

    def _views_push(self, params: _Params) -> Json:
        trigger = self._take_trigger(params)
        below = [v for v in self._views.values() if v.user == trigger.user and v.type == "modal" and not v.closed]
        view = self._create_view(params.json("view"), trigger.user, trigger.channel, "modal")
        if below:
            view.previous_view_id, view.root_view_id = below[-1].id, below[-1].root_view_id or below[-1].id
        return {"view": view.to_slack()}

    def _views_update(self, params: _Params) -> Json:
        view = self._view_by_reference(params.opt("view_id"), params.opt("external_id"))
        expected = params.opt("hash")
        if expected and expected != view.hash:
            raise ApiError("hash_conflict")
        self._replace_view(view, params.json("view"))
        return {"view": view.to_slack()}

    def _view_by_reference(self, view_id: str | None, external_id: str | None) -> View:
        for view in self._views.values():
            if (view_id and view.id == view_id) or (external_id and view.external_id == external_id):
                return view
        raise ApiError("not_found")

    def _views_publish(self, params: _Params) -> Json:
        user = self._user(params.text("user_id", "user_not_found"))
        source = params.json("view")
        existing = self._homes.get(user.id)
        if existing is None:
            view = self._create_view(source, user.id, None, "home")
            self._homes[user.id] = view.id
            return {"view": view.to_slack()}
        view = self._views[existing]
        expected = params.opt("hash")
        if expected and expected != view.hash:
            raise ApiError("hash_conflict")
        self._replace_view(view, source)
        return {"view": view.to_slack()}

    # -- files ---------------------------------------------------------------------------------------

    def _files_info(self, params: _Params) -> Json:
        stored = self._files.get(params.text("file", "file_not_found"))
        if stored is None:
            raise ApiError("file_not_found")
        return {"file": copy.deepcopy(stored.info), "comments": [], "response_metadata": {"next_cursor": ""}}

    def _files_get_upload_url(self, params: _Params) -> Json:
        filename = params.opt("filename")
        length = params.opt("length")
        missing = [name for name, value in (("filename", filename), ("length", length)) if not value]
        if missing:
            messages = [f"[ERROR] missing required field: {name}" for name in missing]
            raise ApiError("invalid_arguments", response_metadata={"messages": messages})
        assert filename is not None and length is not None
        if not length.isdigit():
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] length must be an integer"]})
        if int(length) == 0:
            # Slack's reference: missing_argument "typically only occurs when the length provided is 0".
            raise ApiError("missing_argument")
        file_id = self._new_id("F")
        token = secrets.token_urlsafe(12)
        self._uploads[token] = _PendingUpload(file_id, filename, int(length))
        # Slack's is https://files.slack.com/upload/v1/…; the emulator serves its own on its loopback origin.
        return {"upload_url": f"{self._upload_root or self.root_url}/upload/v1/{token}", "file_id": file_id}

    def _files_complete_upload(self, params: _Params) -> Json:
        entries = params.json("files")
        if not isinstance(entries, list) or not entries \
                or not all(isinstance(entry, dict) and entry.get("id") for entry in entries):
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] files: ids required"]})
        references = [params.opt("channel_id")] if params.opt("channel_id") else []
        references += [ref for ref in (params.opt("channels") or "").split(",") if ref.strip()]
        channels = [self._post_target(ref.strip()) for ref in dict.fromkeys(references)]
        thread_ts = params.opt("thread_ts") or None
        if thread_ts and len(channels) != 1:
            # Slack: "make sure to provide only one channel when using thread_ts".
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] thread_ts needs one channel"]})
        for channel in channels:
            self._require_bot_member(channel)
        root = self._thread_root(channels[0].id, thread_ts) if thread_ts else None
        # Everything is checked before anything changes: a refused call can be made again.
        entries = list({str(entry["id"]): entry for entry in entries}.values())
        pending = [(*self._pending_upload(str(entry["id"])), entry) for entry in entries]
        infos = []
        for token, upload, entry in pending:
            del self._uploads[token]  # "This method can only be called once."
            content = upload.content or b""
            info = self._file_object(upload.file_id, self.bot_user_id, upload.filename, len(content),
                                     title=entry.get("title"))
            self._files[upload.file_id] = StoredFile(info, content)
            infos.append(info)
        for channel in channels:
            message = self._append_message(
                channel.id, self.bot_user_id, params.opt("initial_comment") or "", [], thread_ts=root,
                files=infos, subtype="file_share", bot_id=self.bot_id,
            )
            for info in infos:
                self._record_share(info, channel, message)
        return {"files": [{"id": info["id"], "title": info["title"]} for info in infos]}

    def _pending_upload(self, file_id: str) -> tuple[str, _PendingUpload]:
        for token, upload in self._uploads.items():
            if upload.file_id == file_id:
                if upload.content is None:
                    raise ApiError("file_not_found")  # no bytes were POSTed to its upload URL
                return token, upload
        raise ApiError("file_not_found")

    def _record_share(self, info: Json, channel: Channel, message: Message) -> None:
        public = not (channel.is_private or channel.is_im or channel.is_mpim)
        share: Json = {"ts": message.ts, "channel_name": channel.name, "team_id": self.team_id}
        if message.thread_ts:
            share["thread_ts"] = message.thread_ts
        info.setdefault("shares", {}).setdefault("public" if public else "private", {}) \
            .setdefault(channel.id, []).append(share)
        listed = "channels" if public else "ims" if channel.is_im else "groups"
        info.setdefault(listed, []).append(channel.id)

    def _receive_upload(self, token: str, headers: dict[str, str], body: bytes) -> _Reply:
        with self._lock:
            pending = self._uploads.get(token)
            content_type = headers.get("content-type", "")
            if content_type.startswith("multipart/form-data"):
                parts = _multipart_parts(content_type, body)
                body = parts[0][1] if parts else b""
            file_id = pending.file_id if pending else ""
            self._upload_posts.append(UploadPost(file_id, len(body), "authorization" in headers, self._clock()))
            if pending is None:
                return _Reply.text("invalid upload url", status=404)
            pending.content = body
            return _Reply.text(f"OK - {len(body)}")

    def _download(self, path: str, authorization: str) -> _Reply:
        with self._lock:
            file_id = path.split("/")[2].rsplit("-", 1)[-1]
            authorized = authorization == f"Bearer {self.bot_token}"
            self._downloads.append(Download(file_id, authorized, self._clock()))
            stored = self._files.get(file_id)
            if file_id in self._file_redirects:
                return _Reply(302, b"", "text/plain", {"Location": self._file_redirects[file_id]})
            # Slack answers a missing or wrong token with its sign-in page, HTTP 200, not an error.
            if not authorized:
                return _Reply.text(SIGN_IN_PAGE, content_type="text/html; charset=utf-8")
            if stored is None:
                return _Reply.text("file not found", status=404)
            return _Reply(200, stored.content, stored.info["mimetype"])

    # -- response_url --------------------------------------------------------------------------------

    def _post_response(self, url_id: str, content_type: str, body: bytes) -> _Reply:
        with self._lock:
            target = self._response_targets.get(url_id)
            if target is None:
                return _Reply.text("no_service", status=404)
            try:
                payload = self._response_payload(content_type, body)
            except ValueError:
                return _Reply.text("invalid_payload", status=400)
            status, answer = self._apply_response(target, payload)
            self._responses.append(ResponsePost(url_id, payload, status, self._clock()))
            return _Reply.text(answer, status=status)

    @staticmethod
    def _response_payload(content_type: str, body: bytes) -> Json:
        if content_type.startswith("application/x-www-form-urlencoded"):
            body = dict(parse_qsl(body.decode("utf-8"))).get("payload", "").encode()
        payload = json.loads(body.decode("utf-8") or "{}")
        if not isinstance(payload, dict):
            raise ValueError("payload must be an object")
        return payload

    def _apply_response(self, target: _ResponseTarget, payload: Json) -> tuple[int, str]:
        if self._clock() - target.created_at > RESPONSE_URL_LIFETIME:
            return 404, "expired_url"
        if target.uses >= RESPONSE_URL_MAX_USES:
            return 404, "used_url"
        target.uses += 1
        try:
            self._deliver_response(target, payload)
        except ApiError as failure:
            return 400, failure.error
        return 200, "ok"

    def _deliver_response(self, target: _ResponseTarget, payload: Json) -> None:
        params = _Params(payload)
        if params.flag("delete_original"):
            self._delete_original(target)
            return
        text, blocks = self._message_content(params)
        if params.flag("replace_original") and (target.message_ts or target.ephemeral_ts):
            self._replace_original(target, text, blocks)
        elif payload.get("response_type") == "in_channel":
            channel = self._channel(target.channel)
            thread_ts = self._thread_root(channel.id, params.opt("thread_ts"))
            self._append_message(channel.id, self.bot_user_id, text, blocks, thread_ts=thread_ts, bot_id=self.bot_id)
        else:
            thread_ts = params.opt("thread_ts") or target.thread_ts
            channel, user = target.channel or "", target.user or ""
            ephemeral = Ephemeral(channel, user, text, blocks, "response_url", self._next_ts(), thread_ts)
            self._ephemerals.append(ephemeral)

    def _delete_original(self, target: _ResponseTarget) -> None:
        if target.ephemeral_ts:
            self._find_ephemeral(target.ephemeral_ts).deleted = True
        elif target.message_ts and target.channel:
            self._find_message(target.channel, target.message_ts).deleted = True

    def _replace_original(self, target: _ResponseTarget, text: str, blocks: list[Block]) -> None:
        if target.ephemeral_ts:
            original: Message | Ephemeral = self._find_ephemeral(target.ephemeral_ts)
        else:
            original = self._find_message(target.channel or "", target.message_ts)
        original.edits.append(MessageVersion(original.text, original.blocks, self._clock()))
        original.text, original.blocks = text, blocks

    # -- Socket Mode ---------------------------------------------------------------------------------

    def _apps_connections_open(self, params: _Params) -> Json:
        if self._socket_hub is None:
            self._socket_hub = SocketModeHub(self.app_id).start()
        return {"url": self._socket_hub.new_url()}

    def socket_hub(self) -> SocketModeHub:
        """The Socket Mode server; exists once the app has called apps.connections.open."""
        with self._lock:
            if self._socket_hub is None:
                raise RuntimeError("no Socket Mode connection: the app has not called apps.connections.open")
            return self._socket_hub

    def has_socket_connection(self) -> bool:
        with self._lock:
            return self._socket_hub is not None and self._socket_hub.connected()


# ---------------------------------------------------------------------------------------------------
# Socket Mode
# ---------------------------------------------------------------------------------------------------


@dataclass
class _PendingAck:
    done: threading.Event = field(default_factory=threading.Event)
    ack: Json | None = None


class SocketModeHub:
    """The WebSocket side of Socket Mode: hands envelopes to the app's connection and collects acks."""

    def __init__(self, app_id: str) -> None:
        self._app_id = app_id
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._connections: list[Any] = []
        self._pending: dict[str, _PendingAck] = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.envelopes: list[Json] = []

    def start(self) -> SocketModeHub:
        # websockets is imported here so the product runtime never needs it unless Socket Mode is emulated.
        from websockets.sync.server import serve

        self._server = serve(self._serve_connection, "127.0.0.1", 0, compression=None)
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-socket-mode", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def new_url(self) -> str:
        ticket = secrets.token_hex(16)
        with self._lock:
            self._tickets.add(ticket)
        port = self._server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id={self._app_id}"

    def connected(self) -> bool:
        with self._lock:
            return bool(self._connections)

    def deliver(
        self,
        envelope_type: str,
        payload: Json,
        *,
        accepts_response_payload: bool,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 3.0,
    ) -> Json | None:
        """Send one envelope to the newest connection; the ack message, or None if none came in time."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        pending = _PendingAck()
        with self._lock:
            if not self._connections:
                raise RuntimeError("no Socket Mode connection is open")
            connection = self._connections[-1]
            self._pending[envelope_id] = pending
            self.envelopes.append(envelope)
        connection.send(json.dumps(envelope))
        pending.done.wait(timeout)
        with self._lock:
            self._pending.pop(envelope_id, None)
        return pending.ack

    def request_reconnect(self) -> None:
        """Ask every connection to reconnect, as Slack does before it recycles a socket."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.send(json.dumps({"type": "disconnect", "reason": "refresh_requested"}))

    def _serve_connection(self, connection: Any) -> None:
        query = dict(parse_qsl(urlsplit(connection.request.path).query))
        with self._lock:
            valid = query.get("ticket") in self._tickets
            self._tickets.discard(query.get("ticket", ""))
        if not valid:
            connection.close(code=1008, reason="invalid ticket")
            return
        connection.send(json.dumps(self._hello()))
        with self._lock:
            self._connections.append(connection)
        try:
            self._receive_acks(connection)
        finally:
            with self._lock:
                self._connections.remove(connection)

    def _hello(self) -> Json:
        return {
            "type": "hello",
            "num_connections": 1,
            "debug_info": {"host": "sandbox", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self._app_id},
        }

    def _receive_acks(self, connection: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for raw in connection:
                self._record_ack(raw)
        except ConnectionClosed:
            pass

    def _record_ack(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        with self._lock:
            pending = self._pending.get(message.get("envelope_id", "")) if isinstance(message, dict) else None
        if pending is not None:
            pending.ack = message
            pending.done.set()
