"""Constant Contact V3 API client: tags, tag-delete activities, OAuth refresh, rate limit, retries.

With `bot.cc_oauth` (OAuth details), the only module of the product that imports httpx.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from pyrate_limiter import InMemoryBucket, Limiter, Rate, SingleBucketFactory
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_before_delay, wait_exponential_jitter

from bot.cc_oauth import (
    CC_AUTH_HINT,
    DEFAULT_SCOPE,
    AuthorizationFailed,
    ConstantContactError,
    DeviceCode,
    MemoryTokenStore,
    OAuthFlows,
    PkceRequest,
    ReauthorizationRequired,
    ServiceUnavailable,
    StoredTokens,
    TokenEndpoint,
    TokenManager,
    TokenStore,
    new_http_client,
)

__all__ = [
    "TERMINAL_STATES", "MAX_TAG_IDS", "MAX_OVERTAKES", "DEFAULT_SCOPE", "Tag", "Activity", "StoredTokens", "TokenStore",
    "MemoryTokenStore", "DeviceCode", "PkceRequest", "OAuthFlows", "ConstantContactClient",
    "ConstantContactError", "ReauthorizationRequired", "AuthorizationFailed", "QuotaExceeded",
    "TooManyQueuedActivities", "OutcomeUnknown", "NotFound", "BadRequest", "PermissionDenied",
    "ServiceUnavailable", "parse_activity", "CallSeen", "ContactTagging", "Conflict", "MAX_TAGGING_TAG_IDS",
    "MAX_TAGGING_CONTACT_IDS",
]

logger = logging.getLogger(__name__)

MAX_TAG_IDS = 500
MAX_TAGGING_TAG_IDS = 50  # tags named in one GET /contacts, or added by one contacts_taggings_add
MAX_TAGGING_CONTACT_IDS = 500  # source.contact_ids of one contacts_taggings_add
PAGE_LIMIT = 500
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled", "timed_out"})
# The prose of GET /activities spells the state `time_out`; the enum says `timed_out`.
_STATE_ALIASES = {"time_out": "timed_out"}
# Constant Contact counts requests in a sliding second by its own arrival time; stretching our
# window by 5% absorbs network jitter, and the limiter's own wake-up buffer stays small.
_WINDOW_STRETCH = 1.05
_MAX_BURST = 4
_LIMITER_BUFFER_MS = 10
_BACKOFF = wait_exponential_jitter(multiplier=0.25, max=4.0, jitter=0.25)


@dataclass(frozen=True)
class Tag:
    tag_id: str
    name: str
    contacts_count: int | None = None
    created_at: datetime | None = None
    tag_source: str | None = None


@dataclass(frozen=True)
class Activity:
    activity_id: str
    state: str
    percent_done: int
    items_total: int | None
    items_completed: int | None
    errors: tuple[str, ...]
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class ContactTagging:
    """A contact carrying some of the tags asked about, as GET /contacts reported it."""

    contact_id: str
    status: str  # active, deleted, not_set, pending_confirmation, temp_hold or unsubscribed
    # Of the tags asked about that this contact carries (lowercase ids, in the order asked). Empty only
    # when several tags were asked and the contact's taggings, as sent, name none of them.
    tag_ids: tuple[str, ...]


@dataclass(frozen=True)
class CallSeen:
    """One API call as it left and came back: what the quota ledger and the metrics count."""

    method: str
    endpoint: str  # the path with its ids replaced, such as /activities/{activity_id}
    status: int | None  # None: sent, but no answer came back (it may have reached Constant Contact)
    error_key: str | None = None  # on a 429: quota_exceeded or throttled


class QuotaExceeded(ConstantContactError):
    def __init__(self, resets_at: datetime) -> None:
        super().__init__(
            "Constant Contact's daily API quota for this application is used up. It resets at 00:00 UTC "
            f"({resets_at:%Y-%m-%d %H:%M} UTC); try again after that.")
        self.resets_at = resets_at


class TooManyQueuedActivities(ConstantContactError):
    """Constant Contact holds 1,000 queued activities for this account already."""


class OutcomeUnknown(ConstantContactError):
    """The create request may have reached Constant Contact, but no answer came back."""


class NotFound(ConstantContactError):
    """404: no such tag or activity (activities are kept for 10 days)."""


class BadRequest(ConstantContactError):
    def __init__(self, message: str, messages: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.messages = tuple(messages)


class Conflict(BadRequest):
    """409: the name is taken (creating or renaming a tag)."""


class PermissionDenied(ConstantContactError):
    """403: missing scope or user privilege, or the application is deactivated."""


class _Retryable(Exception):
    """A failure that nothing has come of yet, so the request may be sent again."""

    def __init__(self, final: ConstantContactError, reason: str) -> None:
        super().__init__(reason)
        self.final = final
        self.reason = reason


# A read (status poll, preview, reconciliation) goes before queued tag-delete POSTs: a poll is what
# makes a finished deletion's summary appear, while a queued POST only starts more work. A waiting
# POST is passed over at most this many times in a row, so it still gets a quarter of the budget.
MAX_OVERTAKES = 3


class _TurnGate:
    """Lets threads through one at a time: reads before writes, each in the order they arrived."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[bool, deque[object]] = {True: deque(), False: deque()}
        self._holder: object | None = None
        self._overtakes = 0

    @contextmanager
    def turn(self, read: bool) -> Iterator[None]:
        ticket = object()
        with self._cond:
            self._waiting[read].append(ticket)
            self._hand_on()
            try:
                self._cond.wait_for(lambda: self._holder is ticket)
            except BaseException:
                self._leave(ticket, read)
                raise
        try:
            yield
        finally:
            with self._cond:
                self._leave(ticket, read)

    def _leave(self, ticket: object, read: bool) -> None:
        if self._holder is ticket:
            self._holder = None
        else:
            self._waiting[read].remove(ticket)
        self._hand_on()

    def _hand_on(self) -> None:
        if self._holder is not None:
            return
        reads, writes = self._waiting[True], self._waiting[False]
        if reads and (not writes or self._overtakes < MAX_OVERTAKES):
            self._holder = reads.popleft()
            self._overtakes = self._overtakes + 1 if writes else 0
        elif writes:
            self._holder = writes.popleft()
            self._overtakes = 0
        else:
            return
        self._cond.notify_all()


class _FairLimiter:
    """Process-wide request budget (pyrate-limiter sliding window), served in turn by `_TurnGate`."""

    def __init__(self, requests_per_second: float) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        # Constant Contact counts 4 requests per second; a faster budget (an accelerated test
        # clock) keeps the same burst of 4 over a proportionally shorter window.
        limit = max(1, min(_MAX_BURST, int(requests_per_second)))
        interval_ms = math.ceil(1000 * limit / requests_per_second * _WINDOW_STRETCH)
        self._bucket = InMemoryBucket([Rate(limit, interval_ms)])
        # No background leaker thread: acquire() leaks old entries itself.
        factory = SingleBucketFactory(self._bucket, schedule_leak=False)
        self._limiter = Limiter(factory, buffer_ms=_LIMITER_BUFFER_MS)
        self._gate = _TurnGate()

    def acquire(self, read: bool) -> None:
        with self._gate.turn(read):
            self._bucket.leak(self._bucket.now())
            if not self._limiter.try_acquire("constant-contact-api", blocking=True):
                raise RuntimeError("rate limiter refused a single request")

    def close(self) -> None:
        self._limiter.close()


class ConstantContactClient:
    """Thread-safe client; use one per process so the rate limit covers every thread."""

    def __init__(
        self,
        *,
        api_url: str,
        auth_url: str,
        client_id: str,
        client_secret: str | None,
        token_store: TokenStore,
        initial_refresh_token: str | None = None,
        requests_per_second: float = 4.0,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        max_retry_seconds: float = 20.0,
        clock: Callable[[], float] = time.time,
        on_call: Callable[[CallSeen], None] | None = None,
    ) -> None:
        self._on_call = on_call
        self._api_url = api_url.rstrip("/")
        self._host = urlsplit(self._api_url).netloc
        self._http = new_http_client(transport, timeout)
        endpoint = TokenEndpoint(self._http, auth_url=auth_url, client_id=client_id,
                                 client_secret=client_secret, max_retry_seconds=max_retry_seconds)
        self._tokens = TokenManager(endpoint, token_store, initial_refresh_token=initial_refresh_token, clock=clock)
        self._limiter = _FairLimiter(requests_per_second)
        self._max_retry_seconds = max_retry_seconds
        self._clock = clock
        self._last_success_at: float | None = None

    # -- public API -------------------------------------------------------------------------

    def list_tags(self, include_count: bool = True) -> list[Tag]:
        """Every tag of the account, following the cursor links."""
        tags: list[Tag] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params = {"cursor": cursor} if cursor else {}
            params |= {"limit": str(PAGE_LIMIT), "include_count": "true" if include_count else "false"}
            body = self._get_json("/contact_tags", params)
            tags.extend(_tag(item) for item in _items(body, "tags"))
            cursor = _next_cursor(body)
            if cursor is None:
                return tags
            if cursor in seen:
                raise ConstantContactError("Constant Contact sent the same page cursor twice; listing stopped.")
            seen.add(cursor)

    def get_tag(self, tag_id: str) -> Tag | None:
        try:
            body = self._get_json(f"/contact_tags/{_segment(tag_id)}", {"include_count": "true"})
        except NotFound:
            return None
        return _tag(body)

    def create_tags_delete(self, tag_ids: Sequence[str]) -> Activity:
        """Queue deletion of up to 500 tags; the activity then runs on Constant Contact's side."""
        ids = _valid_tag_ids(tag_ids)
        path = "/activities/contacts_tags_delete"
        response = self._call("POST", path, body={"tag_ids": ids})
        try:
            return parse_activity(response.json())
        except (ValueError, ConstantContactError):
            raise _unreadable(response, path) from None

    def contacts_tagged(self, tag_ids: Sequence[str], page_size: int = PAGE_LIMIT) -> Iterator[list[ContactTagging]]:
        """Every contact (any status, deleted ones included) carrying any of these tags (at most 50 ids
        a call), page by page, following the cursor; each page is a list. Raises ValueError for > 50 ids."""
        asked = _valid_ids(tag_ids, MAX_TAGGING_TAG_IDS, "tag ids", "one contacts listing names")
        if not 1 <= page_size <= PAGE_LIMIT:
            raise ValueError(f"page_size must be between 1 and {PAGE_LIMIT}")
        asked = list(dict.fromkeys(i.strip().lower() for i in asked))
        return self._contact_pages(asked, page_size)

    def _contact_pages(self, asked: list[str], page_size: int) -> Iterator[list[ContactTagging]]:
        # The filters go with every page, cursor or not: the cursor may or may not carry them.
        base = {"tags": ",".join(asked), "status": "all", "include": "taggings", "limit": str(page_size)}
        cursor: str | None = None
        seen_cursors: set[str] = set()
        seen_contacts: set[str] = set()
        while True:
            body = self._get_json("/contacts", ({"cursor": cursor} if cursor else {}) | base)
            page = []
            for item in _items(body, "contacts"):
                tagging = _contact_tagging(item, asked)
                if tagging.contact_id not in seen_contacts:  # a contact moved across a page boundary
                    seen_contacts.add(tagging.contact_id)
                    page.append(tagging)
            cursor = _next_cursor(body)
            if page:
                yield page
            if cursor is None:
                return
            if cursor in seen_cursors:
                raise ConstantContactError("Constant Contact sent the same page cursor twice; listing stopped.")
            seen_cursors.add(cursor)

    def create_tag(self, name: str, tag_source: str | None = None) -> tuple[Tag, bool]:
        """Create a tag; when the name is taken (409), return the existing tag with that name and False.

        A 5xx or a lost answer raises OutcomeUnknown (never re-posted); calling again is safe, since
        a tag that did get made then answers 409 and comes back as the existing one."""
        if not isinstance(name, str) or not name.strip() or len(name) > 255 or "<" in name or ">" in name:
            raise ValueError("a tag name has 1 to 255 characters and no < or >")
        body: dict[str, Any] = {"name": name} | ({"tag_source": tag_source} if tag_source is not None else {})
        try:
            response = self._call("POST", "/contact_tags", body=body)
        except Conflict:
            wanted = name.casefold()
            existing = next((t for t in self.list_tags(include_count=False) if t.name.casefold() == wanted), None)
            if existing is None:
                raise ConstantContactError(
                    f"Constant Contact said a tag named {name!r} exists (HTTP 409), but no tag of that name "
                    "is listed.") from None
            return existing, False
        try:
            return _tag(response.json()), True
        except (ValueError, ConstantContactError):
            raise _unreadable(response, "/contact_tags") from None

    def create_taggings_add(self, tag_ids: Sequence[str], contact_ids: Sequence[str]) -> Activity:
        """Queue tagging up to 500 contacts with up to 50 tags (a POST: never retried blindly, like
        create_tags_delete). Deleted contacts are not tagged: the activity names them in its errors."""
        tags = _valid_ids(tag_ids, MAX_TAGGING_TAG_IDS, "tag ids", "one tagging activity adds")
        contacts = _valid_ids(contact_ids, MAX_TAGGING_CONTACT_IDS, "contact ids", "one tagging activity tags")
        path = "/activities/contacts_taggings_add"
        response = self._call("POST", path, body={"source": {"contact_ids": contacts}, "tag_ids": tags})
        try:
            return parse_activity(response.json())
        except (ValueError, ConstantContactError):
            raise _unreadable(response, path) from None

    def get_activity(self, activity_id: str) -> Activity:
        return parse_activity(self._get_json(f"/activities/{_segment(activity_id)}"))

    def list_activities(self, state: str | None = None, limit: int = 50) -> list[Activity]:
        """Activities of the last 10 days (newest page only); Constant Contact cannot filter by type."""
        if not 1 <= limit <= 500:
            raise ValueError("limit must be between 1 and 500")
        params = {"limit": str(limit)} | ({"state": _STATE_ALIASES.get(state, state)} if state else {})
        return [parse_activity(item) for item in _items(self._get_json("/activities", params), "activities")]

    def user_privileges(self) -> list[str]:
        body = self._get_json("/account/user/privileges")
        entries = body if isinstance(body, list) else []
        return [str(e["privilege_name"]) for e in entries if isinstance(e, Mapping) and e.get("privilege_name")]

    def refresh_now(self) -> None:
        self._tokens.refresh_now()

    @property
    def last_success_at(self) -> float | None:
        return self._last_success_at

    def close(self) -> None:
        self._http.close()
        self._limiter.close()

    def __enter__(self) -> ConstantContactClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def _get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = self._call("GET", path, params=params)
        try:
            return response.json()
        except ValueError:
            raise ConstantContactError(
                f"Constant Contact answered GET {path} with a body that is not JSON.") from None

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              body: Mapping[str, Any] | None = None) -> httpx.Response:
        retrying = Retrying(
            stop=stop_before_delay(self._max_retry_seconds),
            wait=_BACKOFF,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(method, path, params, body)
        except _Retryable as exc:
            raise exc.final from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, method: str, path: str, params: Mapping[str, str] | None,
                 body: Mapping[str, Any] | None) -> httpx.Response:
        token = self._tokens.access_token()
        response = self._send(method, path, params, body, token)
        if response.status_code == 401:
            token = self._tokens.access_token_after_rejection(token)
            response = self._send(method, path, params, body, token)
            if response.status_code == 401:
                raise ReauthorizationRequired(
                    f"Constant Contact rejected a freshly refreshed access token (HTTP 401). {CC_AUTH_HINT}")
        return self._checked(response, method, path)

    def _send(self, method: str, path: str, params: Mapping[str, str] | None,
              body: Mapping[str, Any] | None, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode("utf-8")
        # After fetching the token, so a slow refresh cannot bunch requests up.
        self._limiter.acquire(read=method == "GET")
        try:
            response = self._http.request(method, self._api_url + path, params=params, content=content,
                                          headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made, so nothing reached Constant Contact: safe to repeat, even a POST.
            raise _Retryable(self._unreachable(exc), f"{method} {path}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            self._seen(method, path, None)  # it went out and may have counted against the quota
            if method == "GET":
                raise _Retryable(self._unreachable(exc), f"{method} {path}: {type(exc).__name__}") from exc
            # The request went out; Constant Contact may have queued the activity. Repeating it could
            # create a second activity the bot never hears of, so the caller must reconcile instead.
            raise OutcomeUnknown(
                f"The {_request_name(path)} was sent to Constant Contact ({self._host}) but no answer came back "
                f"({type(exc).__name__}). {_reconcile_hint(path)}") from exc
        self._seen(method, path, response)
        return response

    def _seen(self, method: str, path: str, response: httpx.Response | None) -> None:
        if self._on_call is None:
            return
        status = response.status_code if response is not None else None
        key = None
        if status == 429 and response is not None:
            keys = _error_details(response)[0]
            key = "quota_exceeded" if "quota_exceeded" in keys else ("throttled" if "throttled" in keys else None)
        try:
            self._on_call(CallSeen(method, _endpoint(path), status, key))
        except Exception:  # noqa: BLE001 - counting must never fail a call
            logger.warning("could not record a Constant Contact call", exc_info=True)

    def _unreachable(self, exc: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"Could not reach Constant Contact at {self._host} ({type(exc).__name__}) within "
            f"{self._max_retry_seconds:g} s of retrying. Check the network and CC_API_URL, then try again.",
            self._host)

    def _checked(self, response: httpx.Response, method: str, path: str) -> httpx.Response:
        status = response.status_code
        if 200 <= status < 300:
            self._last_success_at = self._clock()
            return response
        keys, messages = _error_details(response)
        detail = "; ".join(messages) or f"HTTP {status}"
        if status == 429:
            raise self._too_many(keys, detail, method, path)
        if status >= 500 and method == "POST":
            # A 5xx on the create may follow a commit (a gateway failing after the activity was
            # queued); repeating it could queue a second delete. The runner reconciles instead.
            raise OutcomeUnknown(
                f"Constant Contact ({self._host}) answered HTTP {status} to the {_request_name(path)}. "
                f"{_reconcile_hint(path)}")
        if status >= 500:
            raise _Retryable(ServiceUnavailable(
                f"Constant Contact ({self._host}) kept answering HTTP {status} for "
                f"{self._max_retry_seconds:g} s. Try again later.", self._host), f"{method} {path}: HTTP {status}")
        raise _client_error(status, detail, messages, path)

    def _too_many(self, keys: tuple[str, ...], detail: str, method: str, path: str) -> Exception:
        if "quota_exceeded" in keys:
            logger.warning("Constant Contact daily quota exceeded")
            return QuotaExceeded(_next_utc_midnight(self._clock()))
        if "throttled" in keys or method == "GET":
            # Per-second throttle (another process sharing the API key?); no Retry-After is sent.
            logger.info("Constant Contact throttled %s %s (HTTP 429)", method, path)
            return _Retryable(ServiceUnavailable(
                f"Constant Contact kept throttling requests (HTTP 429) for {self._max_retry_seconds:g} s. "
                "Another program may share this API key; try again later.", self._host),
                f"{method} {path}: throttled")
        # The error_key of the 1,000-queued-activities 429 is undocumented: any other 429 on a create.
        return TooManyQueuedActivities(
            f"Constant Contact refused to queue another activity ({detail}): the account already has "
            "1,000 queued activities. Wait for some to finish, then try again.")


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    reason = exc.reason if isinstance(exc, _Retryable) else "error"
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.info("Constant Contact %s; retrying in %.2f s (attempt %d)", reason, wait, state.attempt_number + 1)


_ACTIVITY_TYPES = frozenset({"contacts_tags_delete", "contacts_taggings_add"})
# Each POST that may have taken effect although no readable answer came back: what to call it, and
# what to check before sending it again.
_POSTS: dict[str, tuple[str, str]] = {
    "/activities/contacts_tags_delete": (
        "tag-delete request",
        "The activity may or may not exist: check recent activities and whether the tags still exist "
        "before sending it again."),
    "/contact_tags": (
        "tag-create request",
        "The tag may or may not exist: creating it again is safe (an existing name answers 409)."),
    "/activities/contacts_taggings_add": (
        "tagging request",
        "The activity may or may not exist: check recent activities and the contacts' tags before "
        "sending it again."),
}


def _request_name(path: str) -> str:
    return _POSTS[path][0] if path in _POSTS else f"request to {path}"


def _reconcile_hint(path: str) -> str:
    return _POSTS[path][1] if path in _POSTS else "Check what it did before sending it again."


def _unreadable(response: httpx.Response, path: str) -> OutcomeUnknown:
    """A POST answered 2xx with a body that cannot be read: it took effect, but what it made is unknown."""
    return OutcomeUnknown(f"Constant Contact accepted the {_request_name(path)} (HTTP {response.status_code}) but "
                          f"its answer could not be read. {_reconcile_hint(path)}")


def _endpoint(path: str) -> str:
    """The path without its ids, so that calls can be counted by endpoint."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "contact_tags":
        return "/contact_tags/{tag_id}"
    if len(parts) == 2 and parts[0] == "activities" and parts[1] not in _ACTIVITY_TYPES:
        return "/activities/{activity_id}"
    return "/" + "/".join(parts)


def _client_error(status: int, detail: str, messages: Sequence[str], path: str) -> ConstantContactError:
    if status == 409:
        return Conflict(f"Constant Contact rejected the request (HTTP 409): {detail}", messages)
    if status in (400, 409, 415, 422):
        return BadRequest(f"Constant Contact rejected the request (HTTP {status}): {detail}", messages)
    if status == 403:
        return PermissionDenied(
            f"Constant Contact refused access (HTTP 403: {detail}). The authorising user needs the "
            "contacts:write privilege (Account Owner or Account Manager role), the authorisation needs the "
            "contact_data scope, and the application must be active.")
    if status == 404:
        return NotFound(f"Constant Contact found nothing at {path} (HTTP 404).")
    return ConstantContactError(f"Constant Contact answered HTTP {status}: {detail}")


def _error_details(response: httpx.Response) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(error keys, messages) from an error body: an array of errors, one object, or not JSON."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())[:200]
        return (), ((text,) if text else ())
    keys: list[str] = []
    messages: list[str] = []
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, Mapping):
            key = item.get("error_key") or item.get("error")
            message = item.get("error_message") or item.get("error_description") or item.get("message")
            keys += [str(key)] if key else []
            messages += [str(message or key)] if (message or key) else []
        elif item is not None:
            messages.append(str(item))
    return tuple(keys), tuple(messages)


def _next_utc_midnight(now: float) -> datetime:
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=1)


def _valid_tag_ids(tag_ids: Sequence[str]) -> list[str]:
    return _valid_ids(tag_ids, MAX_TAG_IDS, "tag ids", "one activity deletes")


def _valid_ids(ids: Sequence[str], most: int, what: str, where: str) -> list[str]:
    if isinstance(ids, str):
        raise ValueError(f"{what} must be a list, not one string")
    unique = list(dict.fromkeys(ids))
    if not unique:
        raise ValueError(f"at least one of the {what} is needed")
    if len(unique) > most:
        raise ValueError(f"{where} at most {most} {what}; got {len(unique)}")
    if not all(isinstance(i, str) and i.strip() for i in unique):
        raise ValueError(f"every one of the {what} must be a non-empty string")
    return unique


_ACTIVE_PERMISSIONS = frozenset({"explicit", "implicit"})


def _contact_tagging(item: Any, asked: Sequence[str]) -> ContactTagging:
    """A contact of GET /contacts: its status (the spec's ContactResource has no status field: a deleted
    contact has `deleted_at`; any other shows it in email_address.permission_to_send, where explicit or
    implicit mean active) and which of the asked tags its taggings hold."""
    if not isinstance(item, Mapping) or not item.get("contact_id"):
        raise ConstantContactError("Constant Contact sent a contact without a contact_id.")
    email = item.get("email_address")
    permission = str(email.get("permission_to_send") or "").strip().lower() if isinstance(email, Mapping) else ""
    if item.get("deleted_at"):
        status = "deleted"
    elif permission in _ACTIVE_PERMISSIONS:
        status = "active"
    else:
        status = permission or "not_set"
    raw = item.get("taggings")
    carried = {str(t).strip().lower() for t in raw} if isinstance(raw, list) else set()
    tags = tuple(t for t in asked if t in carried)
    if not tags and len(asked) == 1:
        tags = (asked[0],)  # the filter named one tag only, so the contact carries it
    return ContactTagging(str(item["contact_id"]), status, tags)


def _segment(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an id must be a non-empty string")
    return quote(value, safe="")


def _items(body: Any, key: str) -> list[Any]:
    items = body.get(key) if isinstance(body, Mapping) else None
    return items if isinstance(items, list) else []


def _next_cursor(body: Any) -> str | None:
    """The cursor of `_links.next.href`, which may not even be a /v3 path."""
    links = body.get("_links") if isinstance(body, Mapping) else None
    link = links.get("next") if isinstance(links, Mapping) else None
    href = link.get("href") if isinstance(link, Mapping) else None
    if not href:
        return None
    cursors = parse_qs(urlsplit(str(href)).query).get("cursor")
    if not cursors or not cursors[0]:
        raise ConstantContactError("Constant Contact sent a next-page link without a cursor; listing stopped.")
    return cursors[0]


def _tag(item: Any) -> Tag:
    if not isinstance(item, Mapping) or not item.get("tag_id"):
        raise ConstantContactError("Constant Contact sent a tag without a tag_id.")
    return Tag(str(item["tag_id"]), str(item.get("name") or ""), _optional_int(item.get("contacts_count")),
               _optional_time(item.get("created_at")), _optional_str(item.get("tag_source")))


def _optional_time(value: Any) -> datetime | None:
    """An ISO-8601 date-time as Constant Contact writes it ("2024-01-31T10:00:00.000Z"), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_activity(body: Any) -> Activity:
    """An Activity from any of the three activity schemas, tolerating their quirks."""
    if not isinstance(body, Mapping) or not body.get("activity_id"):
        raise ConstantContactError("Constant Contact sent an activity without an activity_id.")
    state = str(body.get("state") or "unknown").strip().lower()
    state = _STATE_ALIASES.get(state, state)
    status = body.get("status")
    counts = status if isinstance(status, Mapping) else {}  # `{}` in the creation response
    return Activity(
        activity_id=str(body["activity_id"]),
        state=state,
        percent_done=_percent(body.get("percent_done"), state),
        items_total=_optional_int(counts.get("items_total_count")),
        items_completed=_optional_int(counts.get("items_completed_count")),
        errors=_activity_errors(body.get("activity_errors")),
        created_at=_optional_str(body.get("created_at")),
        started_at=_optional_str(body.get("started_at")),
        completed_at=_optional_str(body.get("completed_at")),
    )


def _percent(value: Any, state: str) -> int:
    number = _optional_int(value)
    if number is None:
        return 100 if state == "completed" else 0
    return min(100, max(0, number))


def _activity_errors(value: Any) -> tuple[str, ...]:
    # Strings in ActivityTagging/Activity, {"message": ...} objects in ActivityGeneric.
    entries = value if isinstance(value, list) else ([] if value is None else [value])
    return tuple(_error_text(entry) for entry in entries if entry not in (None, "", {}))


def _error_text(entry: Any) -> str:
    if isinstance(entry, Mapping):
        text = entry.get("message") or entry.get("error_message")
        return str(text) if text else json.dumps(entry, sort_keys=True)
    return str(entry)


def _optional_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _optional_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
