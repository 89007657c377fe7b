"""Unit tests of the Constant Contact client against httpx.MockTransport (narrow cases)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from bot.constant_contact import (
    MAX_OVERTAKES,
    AuthorizationFailed,
    BadRequest,
    ConstantContactClient,
    ConstantContactError,
    DeviceCode,
    MemoryTokenStore,
    NotFound,
    OAuthFlows,
    OutcomeUnknown,
    PermissionDenied,
    QuotaExceeded,
    ReauthorizationRequired,
    ServiceUnavailable,
    StoredTokens,
    TooManyQueuedActivities,
    parse_activity,
)

API = "https://api.test/v3"
AUTH = "https://auth.test/oauth2/default/v1"
CLIENT_SECRET = "client-secret-value-7"
Handler = Callable[[httpx.Request], httpx.Response]


def make_jwt(exp: float, iat: float | None = None, serial: int = 0) -> str:
    def segment(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims: dict[str, object] = {"exp": int(exp), "sub": "user", "jti": f"access-{serial}"}
    if iat is not None:
        claims["iat"] = int(iat)
    return f"{segment({'alg': 'RS256'})}.{segment(claims)}.signature{serial}"


def api_json(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body)


class FakeConstantContact:
    """Token endpoint with rotating refresh tokens plus an API answered by `api`."""

    def __init__(self, api: Handler, valid_refresh: str = "refresh-0") -> None:
        self.api = api
        self.api_requests: list[httpx.Request] = []
        self.token_requests: list[httpx.Request] = []
        self.valid_refresh = {valid_refresh}
        self.issued_access: list[str] = []
        self.issued_refresh: list[str] = []
        self._lock = threading.Lock()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if request.url.host == "auth.test":
                self.token_requests.append(request)
                return self._token(request)
            self.api_requests.append(request)
        return self.api(request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("refresh_token") not in self.valid_refresh:
            return api_json(400, {"error": "invalid_grant", "error_description": "The refresh token is invalid or expired."})
        serial = len(self.issued_access) + 1
        access, refresh = make_jwt(time.time() + 86400, time.time(), serial), f"refresh-{serial}"
        self.valid_refresh = {refresh}
        self.issued_access.append(access)
        self.issued_refresh.append(refresh)
        return api_json(200, {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                              "expires_in": 86400, "scope": "contact_data offline_access"})


def make_client(fake: FakeConstantContact, store: MemoryTokenStore | None = None, **options: object) -> ConstantContactClient:
    settings: dict[str, object] = {"requests_per_second": 50.0, "max_retry_seconds": 2.0}
    settings.update(options)
    return ConstantContactClient(
        api_url=API, auth_url=AUTH, client_id="client-id", client_secret=CLIENT_SECRET,
        token_store=store if store is not None else MemoryTokenStore(), initial_refresh_token="refresh-0",
        transport=fake.transport(), **settings,  # type: ignore[arg-type]
    )


def valid_store(access: str = "") -> MemoryTokenStore:
    token = access or make_jwt(time.time() + 86400, time.time(), 99)
    return MemoryTokenStore(StoredTokens("refresh-0", token, time.time() + 86400))


def tag(n: int) -> dict[str, object]:
    return {"tag_id": f"00000000-0000-0000-0000-{n:012d}", "name": f"tag {n}", "contacts_count": n}


# -- paging and parsing --------------------------------------------------------------------------

def test_list_tags_follows_a_next_link_that_is_not_a_v3_path() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if "cursor" not in request.url.params:
            return api_json(200, {"tags": [tag(1), tag(2)], "_links": {"next": {
                "href": "/contacts-service/v3/accounts/1234/contact_tags?cursor=bGltaXQ9Mg%3D%3D&limit=2"}}})
        return api_json(200, {"tags": [tag(3)], "tags_count": 3})

    fake = FakeConstantContact(api)
    with make_client(fake, valid_store()) as client:
        tags = client.list_tags()

    assert [t.name for t in tags] == ["tag 1", "tag 2", "tag 3"]
    assert tags[2].contacts_count == 3
    second = fake.api_requests[1].url
    assert str(second).startswith(f"{API}/contact_tags?")
    assert dict(second.params) == {"cursor": "bGltaXQ9Mg==", "limit": "500", "include_count": "true"}
    assert len(fake.api_requests) == 2


def test_activity_quirks_are_normalised() -> None:
    created = parse_activity({"activity_id": "a1", "state": "initialized", "percent_done": 1,
                              "activity_errors": [], "status": {}, "_links": {"self": {"href": "/v3/activities/a1"}}})
    assert (created.state, created.percent_done, created.items_total, created.items_completed) == ("initialized", 1, None, None)
    assert created.errors == () and not created.is_terminal

    generic = parse_activity({"activity_id": "a2", "state": "time_out", "percent_done": 140,
                              "activity_errors": [{"message": "Tag not found"}, "plain text"],
                              "status": {"items_total_count": 5, "items_completed_count": 3}})
    assert generic.state == "timed_out" and generic.is_terminal
    assert generic.percent_done == 100
    assert generic.errors == ("Tag not found", "plain text")
    assert (generic.items_total, generic.items_completed) == (5, 3)

    bare = parse_activity({"activity_id": "a3", "state": "completed"})
    assert (bare.percent_done, bare.errors, bare.created_at) == (100, (), None)


def test_get_activity_404_is_not_found_and_get_tag_404_is_none() -> None:
    fake = FakeConstantContact(lambda r: api_json(404, [{"error_key": "contacts.api.not_found",
                                                          "error_message": "resource not found"}]))
    with make_client(fake, valid_store()) as client:
        with pytest.raises(NotFound):
            client.get_activity("gone")
        assert client.get_tag("gone") is None
    assert len(fake.api_requests) == 2


# -- OAuth ---------------------------------------------------------------------------------------

def test_401_triggers_one_refresh_and_one_retry() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {fake.issued_access[-1] if fake.issued_access else ''}":
            return api_json(200, [{"privilege_id": 1, "privilege_name": "contacts:write"}])
        return api_json(401, {"error_key": "unauthorized", "error_message": "Unauthorized"})

    fake = FakeConstantContact(api)
    store = valid_store()
    with make_client(fake, store) as client:
        assert client.user_privileges() == ["contacts:write"]
        assert client.last_success_at is not None

    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 2
    saved = store.load_tokens()
    assert saved is not None and (saved.refresh_token, saved.access_token) == ("refresh-1", fake.issued_access[0])


def test_token_request_is_form_encoded_with_basic_client_auth() -> None:
    fake = FakeConstantContact(lambda r: api_json(200, []))
    with make_client(fake) as client:
        client.user_privileges()
    request = fake.token_requests[0]
    assert request.url == f"{AUTH}/token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(f"client-id:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert parse_qs(request.content.decode()) == {"grant_type": ["refresh_token"], "refresh_token": ["refresh-0"]}


def test_rotated_refresh_token_is_saved_before_the_new_access_token_is_used() -> None:
    store = MemoryTokenStore()
    seen_in_store: list[StoredTokens | None] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen_in_store.append(store.load_tokens())
        return api_json(200, [])

    fake = FakeConstantContact(api)
    with make_client(fake, store) as client:
        client.user_privileges()

    assert seen_in_store[0] is not None
    assert seen_in_store[0].refresh_token == "refresh-1"
    assert seen_in_store[0].access_token == fake.issued_access[0]
    assert fake.api_requests[0].headers["Authorization"] == f"Bearer {fake.issued_access[0]}"


def test_stored_refresh_token_wins_over_the_initial_one() -> None:
    fake = FakeConstantContact(lambda r: api_json(200, []), valid_refresh="refresh-from-db")
    with make_client(fake, MemoryTokenStore(StoredTokens("refresh-from-db"))) as client:
        client.user_privileges()
    assert parse_qs(fake.token_requests[0].content.decode())["refresh_token"] == ["refresh-from-db"]


def test_token_close_to_expiry_is_refreshed_ahead_of_time() -> None:
    now = time.time()
    soon = make_jwt(now + 120, now - 86280, 50)  # a 24 h token with 2 minutes left
    fake = FakeConstantContact(lambda r: api_json(200, []))
    with make_client(fake, MemoryTokenStore(StoredTokens("refresh-0", soon, now + 120))) as client:
        client.user_privileges()
    assert len(fake.token_requests) == 1
    assert fake.api_requests[0].headers["Authorization"] == f"Bearer {fake.issued_access[0]}"


def test_concurrent_callers_share_one_refresh() -> None:
    fake = FakeConstantContact(lambda r: (time.sleep(0.01), api_json(200, []))[1])
    with make_client(fake, MemoryTokenStore(), requests_per_second=200.0) as client:
        threads = [threading.Thread(target=client.user_privileges) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(fake.token_requests) == 1
    assert len(fake.api_requests) == 8


def test_invalid_grant_requires_reauthorization_without_leaking_tokens() -> None:
    fake = FakeConstantContact(lambda r: api_json(200, []), valid_refresh="something-else")
    with make_client(fake) as client:
        with pytest.raises(ReauthorizationRequired) as caught:
            client.user_privileges()
        with pytest.raises(ReauthorizationRequired):
            client.user_privileges()  # the dead token is not sent again
    text = str(caught.value)
    assert "deletetags-bot cc-auth" in text
    assert "refresh-0" not in text and CLIENT_SECRET not in text
    assert len(fake.token_requests) == 1 and not fake.api_requests


def test_no_refresh_token_at_all_requires_reauthorization() -> None:
    fake = FakeConstantContact(lambda r: api_json(200, []))
    client = ConstantContactClient(api_url=API, auth_url=AUTH, client_id="c", client_secret=None,
                                   token_store=MemoryTokenStore(), transport=fake.transport())
    with client, pytest.raises(ReauthorizationRequired, match="cc-auth"):
        client.list_tags()
    assert not fake.token_requests


# -- rate limits and retries ---------------------------------------------------------------------

def test_quota_exceeded_is_not_retried() -> None:
    fake = FakeConstantContact(lambda r: api_json(429, {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}))
    noon = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()
    with make_client(fake, valid_store(), clock=lambda: noon) as client:
        with pytest.raises(QuotaExceeded) as caught:
            client.list_tags()
    assert len(fake.api_requests) == 1
    assert caught.value.resets_at == datetime(2026, 3, 5, tzinfo=UTC)
    assert "00:00 UTC" in str(caught.value)


def test_throttled_is_retried() -> None:
    answers = iter([api_json(429, {"error_key": "throttled", "error_message": "Too Many Requests"}),
                    api_json(200, {"tags": [tag(1)]})])
    fake = FakeConstantContact(lambda r: next(answers))
    with make_client(fake, valid_store()) as client:
        assert [t.tag_id for t in client.list_tags()] == [tag(1)["tag_id"]]
    assert len(fake.api_requests) == 2


def test_get_5xx_is_retried_then_service_unavailable() -> None:
    fake = FakeConstantContact(lambda r: httpx.Response(503, text="<html>Service Unavailable</html>"))
    with make_client(fake, valid_store(), max_retry_seconds=1.0) as client:
        with pytest.raises(ServiceUnavailable) as caught:
            client.get_activity("a1")
    assert len(fake.api_requests) >= 2
    assert "api.test" in str(caught.value) and caught.value.host == "api.test"


def test_post_read_timeout_is_outcome_unknown_after_exactly_one_post() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    fake = FakeConstantContact(api)
    with make_client(fake, valid_store()) as client:
        with pytest.raises(OutcomeUnknown, match="may or may not exist"):
            client.create_tags_delete(["t1", "t2"])
    assert [r.method for r in fake.api_requests] == ["POST"]


def test_post_5xx_is_outcome_unknown_after_exactly_one_post() -> None:
    fake = FakeConstantContact(lambda r: httpx.Response(503, json=[{"error_key": "x", "error_message": "busy"}]))
    with make_client(fake, valid_store()) as client:
        with pytest.raises(OutcomeUnknown, match="HTTP 503"):
            client.create_tags_delete(["t1"])
    assert [r.method for r in fake.api_requests] == ["POST"]


def test_post_is_retried_when_the_connection_was_never_made() -> None:
    attempts = iter([httpx.ConnectError("refused"), None])

    def api(request: httpx.Request) -> httpx.Response:
        failure = next(attempts)
        if failure:
            raise failure
        return api_json(201, {"activity_id": "a1", "state": "initialized", "percent_done": 1, "status": {}})

    fake = FakeConstantContact(api)
    with make_client(fake, valid_store()) as client:
        assert client.create_tags_delete(["t1"]).activity_id == "a1"
    assert len(fake.api_requests) == 2


def test_post_sends_json_and_the_required_headers() -> None:
    fake = FakeConstantContact(lambda r: api_json(201, {"activity_id": "a1", "state": "initialized", "status": {}}))
    with make_client(fake, valid_store()) as client:
        activity = client.create_tags_delete(["t1", "t2", "t1"])
    request = fake.api_requests[0]
    assert request.url == f"{API}/activities/contacts_tags_delete"
    assert json.loads(request.content) == {"tag_ids": ["t1", "t2"]}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == "deletetags-bot/0.1"
    assert (activity.items_total, activity.percent_done) == (None, 0)


def test_post_429_that_is_not_throttling_means_too_many_queued_activities() -> None:
    fake = FakeConstantContact(lambda r: api_json(429, [{"error_key": "activity.queue.full", "error_message": "Too many"}]))
    with make_client(fake, valid_store()) as client:
        with pytest.raises(TooManyQueuedActivities):
            client.create_tags_delete(["t1"])
    assert len(fake.api_requests) == 1


@pytest.mark.parametrize("count", [0, 501])
def test_wrong_number_of_tag_ids_is_refused_before_any_request(count: int) -> None:
    fake = FakeConstantContact(lambda r: api_json(201, {}))
    with make_client(fake, valid_store()) as client:
        with pytest.raises(ValueError):
            client.create_tags_delete([f"id-{n}" for n in range(count)])
    assert not fake.api_requests and not fake.token_requests


@pytest.mark.parametrize(("status", "body", "error", "text"), [
    (400, [{"error_key": "contacts.api.validation.error", "error_message": "tag_ids must be uuids"}],
     BadRequest, "tag_ids must be uuids"),
    (400, "plain <b>oops</b>", BadRequest, "oops"),
    (403, {"error_key": "forbidden", "error_message": "Forbidden"}, PermissionDenied, "contacts:write"),
])
def test_error_bodies_of_every_shape(status: int, body: object, error: type[Exception], text: str) -> None:
    response = httpx.Response(status, text=body) if isinstance(body, str) else api_json(status, body)
    fake = FakeConstantContact(lambda r: response)
    with make_client(fake, valid_store()) as client:
        with pytest.raises(error, match=text):
            client.create_tags_delete(["t1"])
    assert len(fake.api_requests) == 1


def test_rate_limit_is_shared_fairly_by_threads() -> None:
    """With a backlog every thread gets its turn in each window (pyrate-limiter alone lets one hog it)."""
    fake = FakeConstantContact(lambda r: api_json(200, []))
    arrivals: list[tuple[float, str]] = []
    issued, lock, barrier = [0], threading.Lock(), threading.Barrier(4)

    def call(name: str) -> None:
        barrier.wait()
        while True:
            with lock:
                if issued[0] == 24:
                    return
                issued[0] += 1
            client.user_privileges()
            arrivals.append((time.monotonic(), name))

    with make_client(fake, valid_store(), requests_per_second=8.0) as client:
        threads = [threading.Thread(target=call, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    times = sorted(t for t, _ in arrivals)
    assert len(times) == 24
    assert all(times[i + 8] - times[i] >= 1.0 for i in range(len(times) - 8))
    per_window: dict[int, Counter[str]] = defaultdict(Counter)
    for at, name in arrivals:
        per_window[round((at - times[0]) / 1.06)][name] += 1
    for window in (1, 2):  # the first window is a burst that one thread may take alone
        assert len(per_window[window]) == 4 and max(per_window[window].values()) <= 3, per_window


def test_reads_overtake_queued_deletes_but_never_starve_them() -> None:
    """A status poll goes before queued tag-delete POSTs, and a waiting POST is passed over at most
    MAX_OVERTAKES times in a row."""
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return api_json(201, {"activity_id": "a1", "state": "initialized", "status": {}})
        return api_json(200, [])

    fake = FakeConstantContact(answer)
    writers, readers = threading.Barrier(8), threading.Barrier(8)

    def delete() -> None:
        writers.wait()
        client.create_tags_delete(["t1"])

    def read() -> None:
        readers.wait()
        client.user_privileges()

    with make_client(fake, valid_store(), requests_per_second=8.0) as client:  # 4 per 0.525 s
        # The order is the gate's, recorded while each request holds it: once through, requests race to
        # the wire, so the order they reach the server in depends on the machine's load.
        gate, granted = client._limiter._gate, []
        through_gate = gate.turn

        @contextmanager
        def recorded(read: bool) -> Iterator[None]:
            with through_gate(read):
                granted.append("R" if read else "W")
                yield

        gate.turn = recorded
        threads = [threading.Thread(target=delete) for _ in range(8)]
        for thread in threads:
            thread.start()
        # The first 4 POSTs went at once; the 5th holds the gate until the next window, 3 queue behind it.
        deadline = time.monotonic() + 10
        while len(gate._waiting[False]) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        threads += [threading.Thread(target=read) for _ in range(8)]
        for thread in threads[8:]:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert len(fake.api_requests) == 16
    order = "".join(granted)
    assert MAX_OVERTAKES == 3
    assert order == "WWWWW" + "RRRW" + "RRRW" + "RRW", order  # the 5th POST held the gate when the reads came


# -- secrets stay out of logs --------------------------------------------------------------------

def test_logs_and_errors_never_contain_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeConstantContact(lambda r: httpx.Response(500, json=[{"error_key": "x", "error_message": "boom"}]))
    errors: list[str] = []
    with make_client(fake, max_retry_seconds=0.5) as client:
        try:
            client.list_tags()
        except ServiceUnavailable as exc:
            errors.append(str(exc))
    fake.valid_refresh = set()
    with make_client(fake, MemoryTokenStore(StoredTokens(fake.issued_refresh[-1]))) as client:
        try:
            client.refresh_now()
        except ReauthorizationRequired as exc:
            errors.append(repr(exc))
    secrets = [CLIENT_SECRET, "refresh-0", *fake.issued_access, *fake.issued_refresh]
    text = "\n".join([*errors, caplog.text, *(repr(r.args) for r in caplog.records)])
    assert len(errors) == 2 and "refresh" in caplog.text.lower()
    assert not [s for s in secrets if s in text]


def test_stored_tokens_repr_hides_tokens() -> None:
    assert "secret-r" not in repr(StoredTokens("secret-r", "secret-a", 1.0))


# -- interactive OAuth flows ---------------------------------------------------------------------

def test_device_flow_polls_until_approved() -> None:
    answers = iter(["authorization_pending", "slow_down", None])
    seen: list[dict[str, list[str]]] = []

    def auth(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        seen.append(form)
        if request.url.path.endswith("/device/authorize"):
            return api_json(200, {"device_code": "dev-code", "user_code": "ABCD-EFGH", "interval": 5,
                                  "verification_uri": "https://auth.test/activate", "expires_in": 600,
                                  "verification_uri_complete": "https://auth.test/activate?user_code=ABCD-EFGH"})
        error = next(answers)
        if error:
            return api_json(400, {"error": error})
        return api_json(200, {"access_token": make_jwt(time.time() + 86400), "refresh_token": "r-new"})

    store, sleeps = MemoryTokenStore(), []
    with OAuthFlows(auth_url=AUTH, client_id="cid", client_secret=None, token_store=store,
                    transport=httpx.MockTransport(auth), sleep=sleeps.append) as flows:
        device = flows.start_device_flow()
        assert device.user_code == "ABCD-EFGH" and "dev-code" not in repr(device)
        tokens = flows.wait_for_device_tokens(device)
    assert seen[0] == {"client_id": ["cid"], "scope": ["contact_data offline_access"]}
    assert seen[1]["grant_type"] == ["urn:ietf:params:oauth:grant-type:device_code"]
    assert sleeps == [5, 5, 10]
    assert store.load_tokens() == tokens and tokens.refresh_token == "r-new"


@pytest.mark.parametrize(("error", "text"), [("access_denied", "denied"), ("expired_token", "expired")])
def test_device_flow_failures(error: str, text: str) -> None:
    transport = httpx.MockTransport(lambda r: api_json(400, {"error": error}))
    with OAuthFlows(auth_url=AUTH, client_id="cid", client_secret=None, token_store=MemoryTokenStore(),
                    transport=transport, sleep=lambda s: None) as flows:
        with pytest.raises(AuthorizationFailed, match=text):
            flows.wait_for_device_tokens(DeviceCode("d", "U", "https://x", None, 1, 60))


def test_pkce_authorization_and_code_exchange() -> None:
    seen: list[dict[str, list[str]]] = []

    def auth(request: httpx.Request) -> httpx.Response:
        seen.append(parse_qs(request.content.decode()))
        return api_json(200, {"access_token": make_jwt(time.time() + 86400), "refresh_token": "r-pkce"})

    store = MemoryTokenStore()
    with OAuthFlows(auth_url=AUTH, client_id="cid", client_secret=CLIENT_SECRET, token_store=store,
                    transport=httpx.MockTransport(auth)) as flows:
        pkce = flows.authorization_request("https://bot.example/callback")
        query = httpx.URL(pkce.url).params
        challenge = base64.urlsafe_b64encode(hashlib.sha256(pkce.code_verifier.encode()).digest()).rstrip(b"=").decode()
        assert pkce.url.startswith(f"{AUTH}/authorize?")
        assert (query["code_challenge"], query["code_challenge_method"], query["state"]) == (challenge, "S256", pkce.state)
        with pytest.raises(AuthorizationFailed):
            flows.exchange_code(pkce, "code-1", "forged-state")
        tokens = flows.exchange_code(pkce, "code-1", pkce.state)
    assert len(seen) == 1 and seen[0]["code_verifier"] == [pkce.code_verifier]
    assert seen[0]["grant_type"] == ["authorization_code"]
    assert store.load_tokens() == tokens


class FailingOnceStore(MemoryTokenStore):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def save_tokens(self, tokens: StoredTokens) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        super().save_tokens(tokens)


def test_a_rotated_token_the_store_refused_is_used_for_the_next_refresh() -> None:
    fake = FakeConstantContact(lambda r: api_json(200, []))
    store = FailingOnceStore()
    with make_client(fake, store) as client:
        with pytest.raises(ConstantContactError, match="Could not save"):
            client.user_privileges()
        assert not fake.api_requests  # the unsaved access token was not used
        client.user_privileges()
    forms = [parse_qs(r.content.decode())["refresh_token"] for r in fake.token_requests]
    assert forms == [["refresh-0"], ["refresh-1"]]
    assert store.load_tokens().refresh_token == "refresh-2"
