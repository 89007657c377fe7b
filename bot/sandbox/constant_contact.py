"""An offline, stateful Constant Contact V3 API simulator: real HTTP on 127.0.0.1.

It serves the tag, bulk-activity and privileges endpoints under ``/v3`` and an OAuth2 authorization
server (refresh, device flow, authorization code with PKCE) under ``/oauth2/default/v1``, with the
real service's limits, error shapes and activity life cycle, plus knobs to inject faults.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import random
import re
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

from bot.sandbox.cc_state import (
    CONTACT_INCLUDES, CONTACT_STATUSES, MAX_TAGS_PER_CONTACT, OUTCOME_COMPLETE, OUTCOME_FAIL, OUTCOME_STUCK,
    OUTCOME_TIMEOUT, TAGGINGS_ADD, Account, AccessGrant, ActivityRecord, AuthServer, ContactRecord, DailyQuota,
    DuplicateTagName, OAuthError, SimClock, SlidingWindow, TagRecord, example_tags, iso_time, parse_scope,
)

API_PREFIX = "/v3"
AUTH_PREFIX = "/oauth2/default/v1"
ACCOUNT_NUMBER = "1234"
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH_SCOPE = "contact_data offline_access"
MAX_PAGE = 500
DEFAULT_PAGE = 50
MAX_TAG_IDS = 500
MAX_TAGGING_TAG_IDS = 50  # tag_ids of contacts_taggings_add, and the `tags` filter of GET /contacts
MAX_TAGGING_CONTACT_IDS = 500
TAGGING_SOURCES = ("contact_ids", "list_ids", "tag_ids", "all_active_contacts", "new_subscriber")
ACTIVITY_STATE_FILTERS = ("processing", "completed", "cancelled", "failed", "timed_out")
PRIVILEGE_IDS = {
    "account:read": 1, "account:update": 2, "contacts:read": 10, "contacts:write": 11,
    "contacts:lists:read": 12, "contacts:lists:write": 13, "campaign:read": 30,
    "campaign:create": 31, "campaign:send": 32, "ui:campaign:metrics": 40,
}
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_JSON_TYPE_RE = re.compile(r"^application/([a-z0-9.+-]*\+)?json\s*(;.*)?$", re.IGNORECASE)


# ---------------------------------------------------------------- records and HTTP plumbing


@dataclass
class Faults:
    """Fault injection knobs; change them at any time while the simulator runs."""

    error_rate: float = 0.0
    latency_seconds: float = 0.0
    throttle_burst: int = 0
    stuck: bool = False
    fail_activities: bool = False
    # The error text a failing activity reports (its activity_errors); empty: the usual internal error.
    fail_activity_error: str = ""
    timeout_activities: bool = False
    # The next N successful POST/PUT/DELETE API calls take effect but are answered 503.
    fail_after_commit: int = 0
    # Paths (such as "/v3/contacts") whose every request is refused 403: one endpoint not allowed.
    refused_paths: tuple[str, ...] = ()


@dataclass
class RequestRecord:
    """One answered request; ``at`` is the arrival time on ``time.monotonic()``."""

    at: float
    method: str
    path: str
    query: dict[str, str]
    status: int
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] | None = None
    response: Any = None


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json_body(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def is_form(self) -> bool:
        content_type = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        return content_type == "application/x-www-form-urlencoded"

    def form(self) -> dict[str, str]:
        return first_values(self.body.decode("utf-8", "replace"))


@dataclass
class HttpResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None

    def payload(self) -> tuple[bytes, str | None]:
        if self.text is not None:
            return self.text.encode("utf-8"), "text/plain; charset=utf-8"
        if self.body is None:
            return b"", None
        return json.dumps(self.body).encode("utf-8"), "application/json"


def first_values(query: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}


def api_error(status: int, key: str, message: str) -> HttpResponse:
    """The general array-form error body (spec ``APIErrorSchema``)."""
    return HttpResponse(status, [{"error_key": key, "error_message": message}])


def oauth_error(error: OAuthError) -> HttpResponse:
    body = {"error": error.error, "error_description": error.description}
    return HttpResponse(error.status, body, {"Cache-Control": "no-store"})


class Refusal(Exception):
    """Stops handling a request and answers ``response`` instead."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__(response.status)
        self.response = response


def refuse(status: int, key: str, message: str) -> Refusal:
    return Refusal(api_error(status, key, message))


def not_found(message: str = "The requested resource was not found.") -> Refusal:
    return refuse(404, "contacts.api.not_found", message)


def invalid(message: str) -> Refusal:
    return refuse(400, "contacts.api.validation.error", message)


UNAUTHORIZED = {"error_key": "unauthorized", "error_message": "Unauthorized"}
THROTTLED = {"error_key": "throttled", "error_message": "Too Many Requests"}
QUOTA_EXCEEDED = {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and bool(_UUID_RE.match(value))


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise invalid(f"limit must be an integer from 1 to {MAX_PAGE}.")
    return int(raw)


def parse_bool(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise invalid(f"{name} does not have a valid value.")
    return raw.lower() == "true"


def encode_cursor(next_seq: int, limit: int) -> str:
    return base64.urlsafe_b64encode(f"limit={limit}&next={next_seq}".encode()).decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(first sequence number, page size) from an opaque cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        fields = first_values(text)
        return int(fields["next"]), int(fields["limit"])
    except (binascii.Error, UnicodeDecodeError, KeyError, ValueError):
        raise invalid("cursor does not have a valid value.") from None


def encode_contacts_cursor(next_seq: int, limit: int, filters: dict[str, str]) -> str:
    """Opaque: the position and page size, and the filters, so the next link alone is enough."""
    text = urlencode({"limit": limit, "next": next_seq} | filters)
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


def decode_contacts_cursor(cursor: str) -> dict[str, str]:
    try:
        fields = first_values(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii"))
        int(fields["next"]), int(fields["limit"])
    except (binascii.Error, UnicodeDecodeError, KeyError, ValueError):
        raise invalid("cursor does not have a valid value.") from None
    return fields


def csv_values(raw: str, name: str, allowed: tuple[str, ...]) -> list[str]:
    values = [value.strip() for value in raw.split(",") if value.strip()]
    wrong = [value for value in values if value not in allowed]
    if wrong or not values:
        raise invalid(f"{name} accepts only {', '.join(allowed)}.")
    return values


def require_json_object(request: HttpRequest) -> dict[str, Any]:
    if not _JSON_TYPE_RE.match(request.header("Content-Type") or ""):
        # The error_key of the real 415 is not documented; this one is made up.
        raise refuse(415, "contacts.api.unsupported_media_type",
                       "Content-Type must be application/json.")
    body = request.json_body()
    if not isinstance(body, dict):
        raise invalid("The request body is not a valid JSON object.")
    return body


def check_tag_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise invalid("name must be between 1 and 255 characters long.")
    if "<" in name or ">" in name:
        raise invalid("name must not contain the characters < or >.")
    return name


def activity_href(activity_id: str) -> str:
    return f"{API_PREFIX}/activities/{activity_id}"


def created_activity_json(record: ActivityRecord) -> dict[str, Any]:
    """The creation answer, shaped like the documented example (``status`` is empty)."""
    stamp = iso_time(record.created_at)
    return {
        "activity_id": record.activity_id, "state": "initialized", "created_at": stamp,
        "updated_at": stamp, "percent_done": 1, "activity_errors": [], "status": {},
        "_links": {"self": {"href": activity_href(record.activity_id)}},
    }


def activity_json(record: ActivityRecord, now: float) -> dict[str, Any]:
    """The generic ``Activity`` body of ``GET /activities/{id}``."""
    view = record.view(now)
    body: dict[str, Any] = {"activity_id": record.activity_id, "state": view.state,
                            "created_at": iso_time(view.created_at),
                            "updated_at": iso_time(view.updated_at)}
    if view.started_at is not None:
        body["started_at"] = iso_time(view.started_at)
    if view.completed_at is not None:
        body["completed_at"] = iso_time(view.completed_at)
    body["percent_done"] = view.percent_done
    body["activity_errors"] = view.errors
    body["status"] = {"items_total_count": view.items_total,
                      "items_completed_count": view.items_completed}
    body["_links"] = {"self": {"href": activity_href(record.activity_id)}}
    return body


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def bearer_token(header: str | None) -> str:
    if not header or not header.lower().startswith("bearer "):
        return ""
    return header[7:].strip()


# ---------------------------------------------------------------- the HTTP server


class _SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of connections from the bot's threads
    # would be refused or reset before the accept loop catches up.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: "ConstantContactSimulator") -> None:
        super().__init__(address, _Handler)
        self.app = app
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections so that no thread keeps answering after stop()."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ConstantContactSandbox/1.0"
    timeout = 30.0
    disable_nagle_algorithm = True
    server: _SandboxServer

    def _serve(self) -> None:
        arrived = time.monotonic()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        target = urlsplit(self.path)
        path = target.path.rstrip("/") or "/"
        request = HttpRequest(self.command, path, first_values(target.query),
                              dict(self.headers.items()), body)
        self._write(self.server.app.answer(request, arrived))

    def _write(self, response: HttpResponse) -> None:
        payload, content_type = response.payload()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the simulator keeps its own request log."""


# ---------------------------------------------------------------- the simulator


class ConstantContactSimulator:
    """A stateful Constant Contact V3 API + OAuth2 server on 127.0.0.1 (see the module doc)."""

    def __init__(self, *, port: int = 0, tag_count: int = 0, client_id: str = "sandbox-client-id",
                 client_secret: str = "sandbox-client-secret", requests_per_second: int = 4,
                 daily_quota: int = 10_000, activity_seconds: float = 2.0,
                 access_token_seconds: float = 86_400, time_scale: float = 1.0, seed: int = 0,
                 clock: Callable[[], float] | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.requests_per_second = requests_per_second
        self.activity_seconds = activity_seconds
        self.faults = Faults()
        self.request_log: list[RequestRecord] = []
        self.internal_errors: list[str] = []
        self.privileges: list[str] = list(PRIVILEGE_IDS)
        self.next_activity_seconds: list[float] = []
        self.auto_approve_device_after: int | None = None
        self.device_interval_seconds = 5
        self.token_requests_per_second = 1
        self.max_queued_activities = 1000
        self._port = port
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._clock = SimClock(time_scale, clock or time.time)
        self._account = Account(self._clock, self._rng, random.Random(f"contacts-{seed}"))
        self._auth = AuthServer(self._clock, client_id, access_token_seconds)
        self._api_window = SlidingWindow()
        self._token_window = SlidingWindow()
        self._quota = DailyQuota(daily_quota, self._clock)
        self._server: _SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._api = _ApiEndpoints(self)
        self._oauth = _OAuthEndpoints(self)
        self._seed_tags(tag_count)

    def _seed_tags(self, count: int) -> None:
        now = self._clock.now()
        for index, (name, contacts) in enumerate(example_tags(count, self._rng)):
            self._account.add_tag(name, contacts, created_at=now - (count - index) * 3_600)

    # life cycle
    def start(self) -> ConstantContactSimulator:
        if self._server is not None:
            return self
        server = _SandboxServer(("127.0.0.1", self._port), self)
        self._server = server
        self._auth.issuer = f"{self.origin}/oauth2/default"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cc-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ConstantContactSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + API_PREFIX

    @property
    def auth_url(self) -> str:
        return self.origin + AUTH_PREFIX

    def now(self) -> float:
        """The simulated epoch time."""
        return self._clock.now()

    # state set-up and inspection
    def issue_refresh_token(self) -> str:
        """A fresh refresh token, as if a person had just consented."""
        with self._lock:
            return self._auth.new_chain(REFRESH_SCOPE, confidential=True)

    def add_tag(self, name: str, contacts_count: int = 0, *, tag_source: str | None = None,
                created_at: float | None = None) -> str:
        """A tag as if made in Constant Contact; `created_at` is simulated epoch seconds (default now)."""
        with self._lock:
            return self._account.add_tag(name, contacts_count, tag_source, created_at).tag_id

    def change_tag(self, tag_id: str, *, name: str | None = None, contacts_count: int | None = None) -> None:
        """Rename a tag or change how many contacts carry it, as work in Constant Contact's UI would."""
        with self._lock:
            tag = self._account.tags[tag_id]
            if name is not None:
                self._account.rename_tag(tag, name)
            if contacts_count is not None:
                self._account.set_contacts_count(tag, contacts_count)
                tag.updated_at = self._clock.now()

    def remove_tag(self, tag_id: str) -> None:
        """Delete a tag behind the bot's back, as someone in Constant Contact's UI might."""
        with self._lock:
            self._account.drop_tag(tag_id)

    def tags(self) -> list[dict[str, Any]]:
        """Snapshot of every existing tag, in creation order, with its contact count."""
        with self._lock:
            self._account.settle()
            return [tag.to_json(include_count=True) for tag in self._account.tags.values()]

    def tag_ids(self) -> set[str]:
        with self._lock:
            self._account.settle()
            return set(self._account.tags)

    def tag_exists(self, tag_id: str) -> bool:
        return tag_id in self.tag_ids()

    # contacts: each has a status (see CONTACT_STATUSES) and carries up to 50 tags. A tag made with
    # add_tag(name, N) has N anonymous active contacts that become real the first time anything
    # looks at the tag's contacts (GET /contacts naming it, contacts_with_tag).
    def add_contacts(self, tag_id: str | None, count: int, status: str = "active") -> list[str]:
        """``count`` new contacts with this status, carrying the tag (none when ``tag_id`` is None)."""
        with self._lock:
            tag = self._account.tags[tag_id] if tag_id is not None else None
            made = []
            for _ in range(count):
                contact = self._account.add_contact(status)
                if tag is not None:
                    self._account.tag(contact, tag)
                made.append(contact.contact_id)
            return made

    def tag_contacts(self, tag_ids: list[str], contact_ids: list[str]) -> None:
        """Tag contacts (deleted ones too) at once, as the UI would; ValueError past 50 tags a contact."""
        with self._lock:
            tags = [self._account.tags[tag_id] for tag_id in tag_ids]
            contacts = [self._account.contacts[contact_id] for contact_id in contact_ids]
            for contact in contacts:
                if len(set(contact.taggings) | set(tag_ids)) > MAX_TAGS_PER_CONTACT:
                    raise ValueError(f"contact {contact.contact_id} would carry more than "
                                     f"{MAX_TAGS_PER_CONTACT} tags")
            for contact in contacts:
                for tag in tags:
                    self._account.tag(contact, tag)

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact in the UI: its status becomes deleted; it keeps its taggings."""
        with self._lock:
            self._account.delete_contact(self._account.contacts[contact_id])

    def contacts_with_tag(self, tag_id: str) -> set[str]:
        """Every contact carrying the tag, deleted ones included."""
        with self._lock:
            self._account.settle()
            tag = self._account.tags.get(tag_id)
            if tag is None:
                return set()
            self._account.materialise(tag)
            return set(tag.members)

    def contact(self, contact_id: str) -> dict[str, Any]:
        """Snapshot of one contact: contact_id, status, email, taggings."""
        with self._lock:
            self._account.settle()
            return self._account.contacts[contact_id].snapshot()

    def activities(self) -> list[dict[str, Any]]:
        with self._lock:
            self._account.settle()
            now = self._clock.now()
            return [record.snapshot(now) for record in self._account.activities.values()]

    def token_requests(self) -> list[RequestRecord]:
        return [r for r in list(self.request_log) if r.path == AUTH_PREFIX + "/token"]

    # faults and time-based events
    def expire_access_tokens(self) -> None:
        with self._lock:
            self._auth.expire_access_tokens()

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._auth.revoke_refresh_tokens()

    def exhaust_quota(self) -> None:
        with self._lock:
            self._quota.exhaust()

    def set_daily_quota(self, limit: int) -> None:
        """Calls allowed per simulated UTC day from now on (the calls already counted today stay)."""
        with self._lock:
            self._quota.limit = limit

    def spend_quota(self, calls: int) -> None:
        """Count calls against today's quota as if made earlier (by the bot before a restart, say)."""
        with self._lock:
            self._quota.spend(calls)

    def quota_used_today(self) -> int:
        """API calls counted against the quota on the simulated clock's UTC day: every call the gateway
        let through, whatever its answer; refused ones (429) do not count."""
        with self._lock:
            return self._quota.used_today()

    def forget_activity(self, activity_id: str) -> None:
        with self._lock:
            record = self._account.activities.get(activity_id)
            if record is None:
                raise KeyError(activity_id)
            record.forgotten = True

    def approve_device(self, user_code: str) -> None:
        with self._lock:
            self._auth.device_by_user_code(user_code).approved = True

    def deny_device(self, user_code: str) -> None:
        with self._lock:
            self._auth.device_by_user_code(user_code).denied = True

    # request handling (called from server threads)
    def answer(self, request: HttpRequest, arrived: float) -> HttpResponse:
        try:
            response = self._route(request, arrived)
        except Exception:  # a simulator bug must still produce an answer
            self.internal_errors.append(traceback.format_exc())
            response = api_error(500, "server_error", "There was a problem with our internal service.")
        self._record(request, arrived, response)
        return response

    def _route(self, request: HttpRequest, arrived: float) -> HttpResponse:
        if request.path.startswith(AUTH_PREFIX + "/"):
            return self._oauth.answer(request, arrived)
        if request.path == "/activate":
            return self._oauth.activate(request)
        if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
            return self._api.answer(request, arrived)
        return not_found().response

    def _record(self, request: HttpRequest, arrived: float, response: HttpResponse) -> None:
        record = RequestRecord(
            at=arrived, method=request.method, path=request.path, query=dict(request.query),
            status=response.status, headers=dict(request.headers), json=request.json_body(),
            form=request.form() if request.is_form() else None, response=response.body,
        )
        self.request_log.append(record)

    def _activity_outcome(self) -> str:
        if self.faults.stuck:
            return OUTCOME_STUCK
        if self.faults.fail_activities:
            return OUTCOME_FAIL
        if self.faults.timeout_activities:
            return OUTCOME_TIMEOUT
        return OUTCOME_COMPLETE

    def _new_activity(self, kind: str, tag_ids: list[str], contact_ids: list[str] | None = None) -> ActivityRecord:
        duration = (self.next_activity_seconds.pop(0) if self.next_activity_seconds
                    else self.activity_seconds)
        return self._account.create_activity(kind, tag_ids, duration, self._activity_outcome(),
                                             self.faults.fail_activity_error, contact_ids)


Handler = Callable[[HttpRequest, "re.Match[str]"], HttpResponse]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    privilege: str | None
    handler: Handler


class _ApiEndpoints:
    """The ``/v3`` endpoints, behind the gateway checks (rate, quota, token, faults)."""

    def __init__(self, sim: ConstantContactSimulator) -> None:
        self.sim = sim
        self.account = sim._account
        tag = r"/v3/contact_tags/(?P<tag_id>[^/]+)"
        self.routes = [
            _Route("GET", re.compile(r"/v3/contact_tags"), "contacts:read", self.list_tags),
            _Route("POST", re.compile(r"/v3/contact_tags"), "contacts:write", self.create_tag),
            _Route("GET", re.compile(tag), "contacts:read", self.get_tag),
            _Route("PUT", re.compile(tag), "contacts:write", self.rename_tag),
            _Route("DELETE", re.compile(tag), "contacts:write", self.delete_tag),
            _Route("POST", re.compile(r"/v3/activities/contacts_tags_delete"), "contacts:write",
                   self.create_tags_delete),
            _Route("POST", re.compile(r"/v3/activities/contacts_taggings_add"), "contacts:write",
                   self.create_taggings_add),
            _Route("GET", re.compile(r"/v3/contacts"), "contacts:read", self.list_contacts),
            _Route("GET", re.compile(r"/v3/activities"), "contacts:write", self.list_activities),
            _Route("GET", re.compile(r"/v3/activities/(?P<activity_id>[^/]+)"), "contacts:write",
                   self.get_activity),
            _Route("GET", re.compile(r"/v3/account/user/privileges"), None, self.list_privileges),
        ]

    def answer(self, request: HttpRequest, arrived: float) -> HttpResponse:
        if self.sim.faults.latency_seconds > 0:
            time.sleep(self.sim.faults.latency_seconds)
        try:
            with self.sim._lock:
                grant = self._gateway(request, arrived)
            route, match = self._find(request)
            self._authorise(route, grant)
            with self.sim._lock:
                self.account.settle()
                response = route.handler(request, match)
        except Refusal as refusal:
            return refusal.response
        return self._maybe_lose(request, response)

    def _gateway(self, request: HttpRequest, arrived: float) -> AccessGrant:
        """Per-second throttle, daily quota, access token, injected server errors."""
        faults = self.sim.faults
        forced = faults.throttle_burst > 0
        if forced:
            faults.throttle_burst -= 1
        # The real API sends no Retry-After header with either 429; only the body tells them apart.
        if forced or not self.sim._api_window.hit(self.sim.requests_per_second, arrived):
            raise Refusal(HttpResponse(429, dict(THROTTLED)))
        if not self.sim._quota.consume():
            raise Refusal(HttpResponse(429, dict(QUOTA_EXCEEDED)))
        grant = self.sim._auth.check_access(bearer_token(request.header("Authorization")))
        if grant is None:
            raise Refusal(HttpResponse(401, dict(UNAUTHORIZED)))
        if faults.error_rate > 0 and self.sim._rng.random() < faults.error_rate:
            raise Refusal(self._server_error())
        if request.path in faults.refused_paths:
            raise Refusal(api_error(403, "forbidden", "This application may not use this endpoint."))
        return grant

    def _server_error(self) -> HttpResponse:
        if self.sim._rng.random() < 0.5:
            return api_error(500, "server_error", "There was a problem with our internal service.")
        return api_error(503, "service_unavailable", "Our internal service is temporarily unavailable.")

    def _find(self, request: HttpRequest) -> tuple[_Route, re.Match[str]]:
        path_known = False
        for route in self.routes:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            path_known = True
            if route.method == request.method:
                return route, match
        if path_known:
            raise refuse(405, "contacts.api.method_not_allowed",
                           f"Method {request.method} is not supported for this resource.")
        raise not_found()

    def _authorise(self, route: _Route, grant: AccessGrant) -> None:
        if route.privilege is None:
            return
        if "contact_data" not in grant.scope.split():
            raise refuse(403, "forbidden", "The access token lacks the contact_data scope.")
        if route.privilege not in self.sim.privileges:
            raise refuse(403, "forbidden",
                           f"The user lacks the {route.privilege} privilege needed for this request.")

    def _maybe_lose(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        faults = self.sim.faults
        if request.method in ("POST", "PUT", "DELETE") and response.status < 300:
            with self.sim._lock:
                if faults.fail_after_commit > 0:
                    faults.fail_after_commit -= 1
                    return api_error(503, "service_unavailable",
                                     "Our internal service is temporarily unavailable.")
        return response

    # tags
    def list_tags(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        limit = parse_limit(request.query.get("limit"))
        include_count = parse_bool(request.query.get("include_count"), "include_count")
        first_seq = 0
        if "cursor" in request.query:
            first_seq, cursor_limit = decode_cursor(request.query["cursor"])
            limit = limit if "limit" in request.query else cursor_limit
        tags = self.account.tags_from(first_seq)
        body: dict[str, Any] = {"tags": [tag.to_json(include_count) for tag in tags[:limit]]}
        if len(tags) > limit:
            # Like the documented example, the next link is not a /v3 path; clients take the cursor.
            cursor = encode_cursor(tags[limit].seq, limit)
            href = f"/contacts-service/v3/accounts/{ACCOUNT_NUMBER}/contact_tags?cursor={cursor}&limit={limit}"
            body["_links"] = {"next": {"href": href}}
        return HttpResponse(200, body)

    def _tag(self, match: re.Match[str]) -> TagRecord:
        tag_id = match["tag_id"]
        if not is_uuid(tag_id):
            raise invalid("tag_id must be a UUID.")
        tag = self.account.tags.get(tag_id)
        if tag is None:
            raise not_found(f"Tag {tag_id} was not found.")
        return tag

    def create_tag(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        body = require_json_object(request)
        name = check_tag_name(body.get("name"))
        source = body.get("tag_source")
        if source is not None and not isinstance(source, str):
            raise invalid("tag_source must be a string.")
        try:
            tag = self.account.add_tag(name, 0, source)
        except DuplicateTagName:
            raise refuse(409, "contacts.api.conflict", f"A tag named {name!r} already exists.") from None
        return HttpResponse(201, tag.to_json(include_count=False))

    def get_tag(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        include_count = parse_bool(request.query.get("include_count"), "include_count")
        return HttpResponse(200, self._tag(match).to_json(include_count))

    def rename_tag(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        name = check_tag_name(require_json_object(request).get("name"))
        tag = self._tag(match)
        try:
            self.account.rename_tag(tag, name)
        except DuplicateTagName:
            raise refuse(409, "contacts.api.conflict", f"A tag named {name!r} already exists.") from None
        return HttpResponse(200, tag.to_json(include_count=False))

    def delete_tag(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        tag = self._tag(match)
        record = self.sim._new_activity("tag_delete", [tag.tag_id])
        return HttpResponse(202, created_activity_json(record))

    # activities
    def create_tags_delete(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        tag_ids = require_json_object(request).get("tag_ids")
        if not isinstance(tag_ids, list) or not tag_ids:
            raise invalid("tag_ids is required and must be a non-empty array.")
        if len(tag_ids) > MAX_TAG_IDS:
            raise invalid(f"tag_ids must not contain more than {MAX_TAG_IDS} items.")
        malformed = [str(tag_id) for tag_id in tag_ids if not is_uuid(tag_id)]
        if malformed:
            raise invalid(f"tag_ids contains values that are not UUIDs: {', '.join(malformed[:5])}")
        self._check_queue()
        record = self.sim._new_activity("contacts_tags_delete", tag_ids)
        return HttpResponse(201, created_activity_json(record))

    def _check_queue(self) -> None:
        if self.account.unfinished_count() >= self.sim.max_queued_activities:
            # The spec documents this 429 but not its body; this error_key is made up.
            raise refuse(429, "activities.api.too_many_queued",
                         "You exceeded 1,000 queued activities for this user account.")

    def create_taggings_add(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        """Only ``source.contact_ids`` is simulated; the other (valid) sources get a 400 that says so."""
        body = require_json_object(request)
        tag_ids = _uuid_list(body.get("tag_ids"), "tag_ids", MAX_TAGGING_TAG_IDS)
        source = body.get("source")
        if not isinstance(source, dict) or not source:
            raise invalid("source is required and must name the contacts to tag.")
        unknown = [key for key in source if key not in TAGGING_SOURCES]
        if unknown or len(source) != 1:
            raise invalid("source must hold exactly one of " + ", ".join(TAGGING_SOURCES) + ".")
        if "contact_ids" not in source:
            raise invalid("The sandbox simulates only source.contact_ids.")
        if "exclude" in body:
            raise invalid("exclude applies only when the source is all_active_contacts or list_ids.")
        contact_ids = _uuid_list(source["contact_ids"], "source.contact_ids", MAX_TAGGING_CONTACT_IDS)
        missing = [tag_id for tag_id in dict.fromkeys(tag_ids) if tag_id not in self.account.tags]
        if missing:
            # The spec lists a 404 for this endpoint (not for contacts_tags_delete): unknown tags.
            raise not_found(f"Tag {missing[0]} was not found.")
        self._check_queue()
        record = self.sim._new_activity(TAGGINGS_ADD, tag_ids, contact_ids)
        return HttpResponse(201, created_activity_json(record))

    # contacts
    def list_contacts(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        query = request.query
        state = decode_contacts_cursor(query["cursor"]) if "cursor" in query else {}
        limit = parse_limit(query["limit"]) if "limit" in query else int(state.get("limit", DEFAULT_PAGE))
        filters = {name: query[name] if name in query else state[name]
                   for name in ("tags", "status", "include") if name in query or name in state}
        include_count = parse_bool(query.get("include_count"), "include_count")
        tag_ids: tuple[str, ...] | None = None
        if "tags" in filters:
            raw = [value.strip().lower() for value in filters["tags"].split(",") if value.strip()]
            tag_ids = tuple(_uuid_list(raw, "tags", MAX_TAGGING_TAG_IDS))
        wanted = set(CONTACT_STATUSES) - {"deleted"}  # by default, deleted contacts are left out
        if "status" in filters:
            wanted = set(csv_values(filters["status"], "status", ("all",) + CONTACT_STATUSES))
            wanted = set(CONTACT_STATUSES) if "all" in wanted else wanted
        include = frozenset(csv_values(filters["include"], "include", CONTACT_INCLUDES)
                            if "include" in filters else ())
        statuses = frozenset(wanted)
        page, next_seq = self.account.contacts_page(tag_ids, statuses, int(state.get("next", 0)), limit)
        body: dict[str, Any] = {"contacts": [contact.to_json(include) for contact in page]}
        if include_count:
            body["contacts_count"] = self._count(tag_ids, statuses)
        if next_seq is not None:
            cursor = encode_contacts_cursor(next_seq, limit, filters)
            body["_links"] = {"next": {"href": f"{API_PREFIX}/contacts?{urlencode({'cursor': cursor})}"}}
        return HttpResponse(200, body)

    def _count(self, tag_ids: tuple[str, ...] | None, statuses: frozenset[str]) -> int:
        candidates: list[ContactRecord] = self.account.candidates(tag_ids)[0]
        return sum(1 for contact in candidates if contact.status in statuses)

    def get_activity(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        record = self.account.visible_activity(match["activity_id"])
        if record is None:
            raise not_found("Resource not found for the activity_id provided.")
        return HttpResponse(200, activity_json(record, self.sim.now()))

    def list_activities(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        limit = parse_limit(request.query.get("limit"))
        state = request.query.get("state")
        if state is not None and state not in ACTIVITY_STATE_FILTERS:
            raise invalid(f"state must be one of {', '.join(ACTIVITY_STATE_FILTERS)}.")
        before = decode_cursor(request.query["cursor"])[0] if "cursor" in request.query else None
        now = self.sim.now()
        found = [record for record in self.account.visible_activities()
                 if (before is None or record.seq < before)
                 and (state is None or record.view(now).state == state)]
        page = found[:limit]
        body: dict[str, Any] = {"activities": [activity_json(record, now) for record in page]}
        if len(found) > limit:
            params: dict[str, Any] = {"cursor": encode_cursor(page[-1].seq, limit), "limit": limit}
            params |= {"state": state} if state else {}
            body["_links"] = {"next": {"href": f"{API_PREFIX}/activities?{urlencode(params)}"}}
        return HttpResponse(200, body)

    def list_privileges(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        body = [{"privilege_id": PRIVILEGE_IDS.get(name, 1000 + index), "privilege_name": name}
                for index, name in enumerate(self.sim.privileges)]
        return HttpResponse(200, body)


class _OAuthEndpoints:
    """The authorization server: ``/token``, ``/device/authorize``, ``/authorize``, ``/activate``."""

    def __init__(self, sim: ConstantContactSimulator) -> None:
        self.sim = sim
        self.auth = sim._auth

    def answer(self, request: HttpRequest, arrived: float) -> HttpResponse:
        endpoint = (request.method, request.path[len(AUTH_PREFIX):])
        try:
            if endpoint == ("POST", "/token"):
                return self.token(request, arrived)
            if endpoint == ("POST", "/device/authorize"):
                return self.device_authorize(request)
            if endpoint == ("GET", "/authorize"):
                return self.authorize(request)
        except OAuthError as error:
            return oauth_error(error)
        return HttpResponse(404, {"error": "not_found", "error_description": "Unknown endpoint."})

    def _form(self, request: HttpRequest) -> dict[str, str]:
        if not request.is_form():
            raise OAuthError(400, "invalid_request",
                             "The request must be sent as application/x-www-form-urlencoded.")
        return request.form()

    def _client(self, request: HttpRequest, form: dict[str, str]) -> bool:
        """Authenticate the client; True for a confidential client (it proved the secret)."""
        failure = OAuthError(401, "invalid_client", "Client authentication failed.")
        basic = parse_basic(request.header("Authorization"))
        client_id, secret = basic if basic is not None else (form.get("client_id"), form.get("client_secret"))
        if client_id is None or not hmac.compare_digest(client_id.encode(), self.sim.client_id.encode()):
            raise failure
        if secret is None and basic is None:
            return False
        if not hmac.compare_digest((secret or "").encode(), self.sim.client_secret.encode()):
            raise failure
        return True

    def token(self, request: HttpRequest, arrived: float) -> HttpResponse:
        with self.sim._lock:
            within = self.sim._token_window.hit(self.sim.token_requests_per_second, arrived)
        if not within:
            # How the real token endpoint answers beyond 1 request/s is undocumented.
            return HttpResponse(429, {"error": "rate_limited",
                                      "error_description": "Too many requests to the token endpoint."})
        form = self._form(request)
        confidential = self._client(request, form)
        with self.sim._lock:
            body = self._grant(form, confidential)
        return HttpResponse(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _grant(self, form: dict[str, str], confidential: bool) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            return self.auth.refresh(_required(form, "refresh_token"), confidential)
        if grant_type == DEVICE_GRANT_TYPE:
            return self.auth.poll_device(_required(form, "device_code"), confidential,
                                         self.sim.auto_approve_device_after)
        if grant_type == "authorization_code":
            return self.auth.redeem_code(_required(form, "code"), form.get("redirect_uri"),
                                         form.get("code_verifier"), confidential)
        if not grant_type:
            raise OAuthError(400, "invalid_request", "The grant_type parameter is missing.")
        raise OAuthError(400, "unsupported_grant_type", "The authorization grant type is not supported.")

    def device_authorize(self, request: HttpRequest) -> HttpResponse:
        form = self._form(request)
        self._client(request, form)
        scope = parse_scope(form.get("scope"))
        with self.sim._lock:
            grant = self.auth.start_device(scope, self.sim.device_interval_seconds)
        verification = f"{self.sim.origin}/activate"
        return HttpResponse(200, {
            "device_code": grant.device_code, "user_code": grant.user_code,
            "verification_uri": verification,
            "verification_uri_complete": f"{verification}?user_code={grant.user_code}",
            "expires_in": round(grant.expires_at - self.sim.now()), "interval": grant.interval,
        })

    def authorize(self, request: HttpRequest) -> HttpResponse:
        query = request.query
        if query.get("client_id") != self.sim.client_id:
            raise OAuthError(400, "invalid_client", "The client_id is unknown.")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            raise OAuthError(400, "invalid_request", "The redirect_uri parameter is required.")
        params = self._authorize_params(query, redirect_uri)
        separator = "&" if "?" in redirect_uri else "?"
        return HttpResponse(302, None, {"Location": redirect_uri + separator + urlencode(params)})

    def _authorize_params(self, query: dict[str, str], redirect_uri: str) -> dict[str, str]:
        """Consent is automatic: the code (or the error) that goes back to the redirect URI."""
        state = {"state": query["state"]} if "state" in query else {}
        if query.get("response_type") != "code":
            return {"error": "unsupported_response_type"} | state
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method") != "S256":
            return {"error": "invalid_request",
                    "error_description": "code_challenge_method must be S256"} | state
        try:
            scope = parse_scope(query.get("scope"))
        except OAuthError as error:
            return {"error": error.error} | state
        with self.sim._lock:
            code = self.auth.new_code(redirect_uri, scope, challenge)
        return {"code": code} | state

    def activate(self, request: HttpRequest) -> HttpResponse:
        """The device-flow verification page: opening it counts as the person's consent."""
        try:
            self.sim.approve_device(request.query.get("user_code", ""))
        except KeyError:
            return HttpResponse(400, text="Unknown or expired user code.\n")
        return HttpResponse(200, text="Device approved. You can close this window.\n")


def _uuid_list(value: object, name: str, most: int) -> list[str]:
    if not isinstance(value, list) or not value:
        raise invalid(f"{name} is required and must be a non-empty array.")
    if len(value) > most:
        raise invalid(f"{name} must not contain more than {most} items.")
    malformed = [str(item) for item in value if not is_uuid(item)]
    if malformed:
        raise invalid(f"{name} contains values that are not UUIDs: {', '.join(malformed[:5])}")
    return [str(item).lower() for item in value]


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError(400, "invalid_request", f"The {name} parameter is missing.")
    return value


# ---------------------------------------------------------------- CLI entry point


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _banner(sim: ConstantContactSimulator, tags: int, refresh_token: str) -> list[str]:
    faults = sim.faults
    lines = [
        f"Constant Contact sandbox running with {tags} example tags.",
        f"CC_API_URL={sim.base_url}",
        f"CC_AUTH_URL={sim.auth_url}",
        f"CC_CLIENT_ID={sim.client_id}",
        f"CC_CLIENT_SECRET={sim.client_secret}",
        f"CC_REFRESH_TOKEN={refresh_token}",
    ]
    active = {"error_rate": faults.error_rate, "latency_seconds": faults.latency_seconds,
              "stuck": faults.stuck, "fail_activities": faults.fail_activities}
    shown = ", ".join(f"{name}={value}" for name, value in active.items() if value)
    if shown:
        lines.append(f"Faults: {shown}")
    lines.append("The refresh token rotates: each use returns a new one. Press Ctrl+C to stop.")
    return lines


@contextlib.contextmanager
def _slack_rehearsal(port: int | None, echo: Callable[[str], None]) -> Iterator[None]:
    """With --slack: the Slack emulator too, with a workspace, so `check` can pass end to end."""
    if port is None:
        yield
        return
    from bot.sandbox.slack import SlackEmulator
    from bot.sandbox.world import OPS_CHANNEL, PEOPLE, SIGNING_SECRET, populate_slack

    slack = SlackEmulator(port=port).start()
    populate_slack(slack)
    try:
        for line in (f"SLACK_API_URL={slack.api_url}", f"SLACK_BOT_TOKEN={slack.bot_token}",
                     f"SLACK_SIGNING_SECRET={SIGNING_SECRET}", f"APPROVER_IDS={PEOPLE.approver}",
                     f"APPROVAL_CHANNEL={OPS_CHANNEL}"):
            echo(line)
        yield
    finally:
        slack.stop()


def serve_forever(port: int, tags: int, activity_seconds: float, error_rate: float, latency: float,
                  stuck: bool, fail_activities: bool, echo: Callable[[str], None] = print,
                  *, stop: threading.Event | None = None, slack_port: int | None = None) -> None:
    """Run the simulator until Ctrl+C, SIGTERM or ``stop`` is set; print how to connect to it."""
    stop_event = stop or threading.Event()
    sim = ConstantContactSimulator(port=port, tag_count=tags, activity_seconds=activity_seconds)
    sim.faults.error_rate = error_rate
    sim.faults.latency_seconds = latency
    sim.faults.stuck = stuck
    sim.faults.fail_activities = fail_activities
    with sim, _stop_on_sigterm(stop_event), _slack_rehearsal(slack_port, echo):
        for line in _banner(sim, tags, sim.issue_refresh_token()):
            echo(line)
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while not stop_event.wait(0.2):
                pass
    echo("Constant Contact sandbox stopped.")
