"""The Constant Contact client against the running simulator (real HTTP on loopback)."""

from __future__ import annotations

import base64
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from spec import request_body_definition, validate_against_spec

from bot.constant_contact import (
    Activity,
    ConstantContactClient,
    MemoryTokenStore,
    OAuthFlows,
    OutcomeUnknown,
    QuotaExceeded,
    ReauthorizationRequired,
    ServiceUnavailable,
)
from bot.sandbox.constant_contact import ConstantContactSimulator

ClientFactory = Callable[..., ConstantContactClient]


@pytest.fixture
def sim() -> Iterator[ConstantContactSimulator]:
    with ConstantContactSimulator(tag_count=20, activity_seconds=0.5) as simulator:
        yield simulator


@pytest.fixture
def make_client(sim: ConstantContactSimulator) -> Iterator[ClientFactory]:
    clients: list[ConstantContactClient] = []

    def factory(**options: Any) -> ConstantContactClient:
        settings: dict[str, Any] = {
            "api_url": sim.base_url, "auth_url": sim.auth_url, "client_id": sim.client_id,
            "client_secret": sim.client_secret, "token_store": MemoryTokenStore(),
            "initial_refresh_token": sim.issue_refresh_token(), "max_retry_seconds": 5.0,
        }
        settings.update(options)
        client = ConstantContactClient(**settings)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def api_arrivals(sim: ConstantContactSimulator) -> list[float]:
    return sorted(r.at for r in list(sim.request_log) if r.path.startswith("/v3"))


def run_in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def wait_until_terminal(client: ConstantContactClient, activity_id: str, timeout: float = 15.0) -> Activity:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        activity = client.get_activity(activity_id)
        if activity.is_terminal:
            return activity
        time.sleep(0.1)
    raise AssertionError(f"activity {activity_id} did not finish within {timeout} s")


def test_concurrent_calls_never_exceed_four_per_second(sim: ConstantContactSimulator, make_client: ClientFactory) -> None:
    client = make_client()
    tag_id = client.list_tags()[0].tag_id
    calls: list[Callable[[], object]] = [client.list_tags, client.user_privileges, lambda: client.get_tag(tag_id),
                                         client.list_activities, lambda: client.list_tags(include_count=False)]

    errors = run_in_threads(8, lambda n: [calls[(n + i) % len(calls)]() for i in range(5)])

    assert errors == []
    arrivals = api_arrivals(sim)
    assert len(arrivals) == 41
    assert [r.status for r in sim.request_log if r.status == 429] == []
    crowded = [(i, arrivals[i + 4] - arrivals[i]) for i in range(len(arrivals) - 4) if arrivals[i + 4] - arrivals[i] < 1.0]
    assert crowded == [], "five API requests arrived within one second"
    rate = (len(arrivals) - 5) / (arrivals[-1] - arrivals[4])
    assert rate >= 0.9 * 4, f"only {rate:.2f} requests/s with a backlog"


def test_expired_access_token_is_refreshed_once_for_eight_threads(
        sim: ConstantContactSimulator, make_client: ClientFactory) -> None:
    store = MemoryTokenStore()
    client = make_client(token_store=store)
    client.user_privileges()
    sim.expire_access_tokens()

    errors = run_in_threads(8, lambda n: client.user_privileges())

    assert errors == []
    token_requests = sim.token_requests()
    assert len(token_requests) == 2  # the first call's refresh, then exactly one for the expiry
    rotated = token_requests[-1].response["refresh_token"]
    assert token_requests[-1].status == 200
    assert store.load_tokens().refresh_token == rotated
    assert rotated != token_requests[0].response["refresh_token"]
    client.refresh_now()  # the stored (rotated) token is the live one
    assert sim.token_requests()[-1].status == 200
    assert sim.token_requests()[-1].form["refresh_token"] == rotated


def test_no_secret_reaches_logs_or_errors(
        sim: ConstantContactSimulator, make_client: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: httpx, httpcore, pyrate_limiter, ours
    client = make_client(max_retry_seconds=1.0)
    client.list_tags()
    texts: list[str] = []
    sim.faults.error_rate = 1.0
    with pytest.raises(ServiceUnavailable) as storm:
        client.user_privileges()
    texts += [str(storm.value), repr(storm.value)]
    sim.faults.error_rate = 0.0
    sim.expire_access_tokens()
    client.user_privileges()  # 401, refresh, retry
    sim.revoke_refresh_tokens()
    with pytest.raises(ReauthorizationRequired) as revoked:
        client.refresh_now()
    texts += [str(revoked.value), repr(revoked.value)]

    secrets = collect_secrets(sim)
    assert len(secrets) >= 6
    logged = "\n".join([caplog.text, *(r.getMessage() for r in caplog.records), *texts])
    assert "refreshed" in logged and "HTTP 50" in logged
    fragments = secrets | {s[:12] for s in secrets if len(s) >= 24} | {s[-12:] for s in secrets if len(s) >= 24}
    assert [f for f in fragments if f in logged] == []


def collect_secrets(sim: ConstantContactSimulator) -> set[str]:
    """Every token value that crossed the wire, the client secret and the Basic credentials."""
    secrets = {sim.client_secret, base64.b64encode(f"{sim.client_id}:{sim.client_secret}".encode()).decode()}
    for record in list(sim.request_log):
        authorization = next((v for k, v in record.headers.items() if k.lower() == "authorization"), "")
        secrets.add(authorization.partition(" ")[2])
        secrets.add((record.form or {}).get("refresh_token", ""))
        response = record.response if isinstance(record.response, dict) else {}
        secrets |= {str(response.get(key, "")) for key in ("access_token", "refresh_token", "id_token")}
    secrets.discard("")
    return secrets


def test_tags_listed_across_pages_then_deleted(make_client: ClientFactory) -> None:
    with ConstantContactSimulator(tag_count=1200, activity_seconds=0.5) as big:
        client = make_client(api_url=big.base_url, auth_url=big.auth_url,
                             initial_refresh_token=big.issue_refresh_token())
        tags = client.list_tags()
        pages = [r for r in big.request_log if r.path == "/v3/contact_tags"]
        assert len(tags) == 1200 and len({t.tag_id for t in tags}) == 1200
        assert {t.tag_id for t in tags} == big.tag_ids()
        assert len(pages) == 3 and all("cursor" in r.query for r in pages[1:])
        assert all(t.contacts_count is not None for t in tags)

        doomed = [t.tag_id for t in tags[:3]]
        created = client.create_tags_delete(doomed)
        assert created.state == "initialized" and created.items_total is None
        finished = wait_until_terminal(client, created.activity_id)

        assert finished.state == "completed" and finished.percent_done == 100
        assert finished.items_completed == finished.items_total
        assert not any(big.tag_exists(tag_id) for tag_id in doomed)
        assert client.get_tag(doomed[0]) is None
        assert len(client.list_tags()) == 1197


def test_tags_delete_request_bodies_match_the_spec(make_client: ClientFactory) -> None:
    with ConstantContactSimulator(tag_count=501, activity_seconds=0.2) as big:
        client = make_client(api_url=big.base_url, auth_url=big.auth_url,
                             initial_refresh_token=big.issue_refresh_token())
        ids = [t.tag_id for t in client.list_tags(include_count=False)]
        client.create_tags_delete(ids[:500])
        client.create_tags_delete(ids[500:])
        posts = [r for r in big.request_log if r.method == "POST" and r.path.startswith("/v3/")]

    definition = request_body_definition("/activities/contacts_tags_delete", "post")
    assert definition == "TagIdList500Limit"
    assert [len(r.json["tag_ids"]) for r in posts] == [500, 1]
    for record in posts:
        assert record.path == "/v3/activities/contacts_tags_delete" and record.status == 201
        assert record.headers.get("Content-Type") == "application/json"
        validate_against_spec(definition, record.json)


def test_throttled_requests_are_retried(sim: ConstantContactSimulator, make_client: ClientFactory) -> None:
    client = make_client()
    client.user_privileges()
    sim.faults.throttle_burst = 2
    assert len(client.list_tags()) == 20
    assert [r.status for r in sim.request_log if r.path == "/v3/contact_tags"] == [429, 429, 200]


def test_exhausted_quota_is_reported_without_retrying(sim: ConstantContactSimulator, make_client: ClientFactory) -> None:
    client = make_client()
    client.user_privileges()
    sim.exhaust_quota()
    with pytest.raises(QuotaExceeded, match="00:00 UTC"):
        client.list_tags()
    assert [r.status for r in sim.request_log if r.path.startswith("/v3")] == [200, 429]


def test_create_that_times_out_is_not_sent_twice(sim: ConstantContactSimulator, make_client: ClientFactory) -> None:
    client = make_client(timeout=0.3)
    tag_ids = [t.tag_id for t in client.list_tags()[:2]]
    sim.faults.latency_seconds = 0.8
    with pytest.raises(OutcomeUnknown):
        client.create_tags_delete(tag_ids)
    posts: list[str] = []
    deadline = time.monotonic() + 5
    while not posts and time.monotonic() < deadline:
        time.sleep(0.05)
        posts = [r.method for r in list(sim.request_log) if r.path == "/v3/activities/contacts_tags_delete"]
    assert posts == ["POST"]
    assert len(sim.activities()) == 1  # it did reach Constant Contact: a retry would have made two


def test_device_flow_against_the_simulator(sim: ConstantContactSimulator, make_client: ClientFactory) -> None:
    sim.device_interval_seconds = 1
    store = MemoryTokenStore()
    with OAuthFlows(auth_url=sim.auth_url, client_id=sim.client_id, client_secret=sim.client_secret,
                    token_store=store) as flows:
        device = flows.start_device_flow()
        assert device.verification_uri_complete
        with urllib.request.urlopen(device.verification_uri_complete, timeout=5) as page:  # the person approves
            assert page.status == 200
        tokens = flows.wait_for_device_tokens(device)
    assert store.load_tokens() == tokens
    client = make_client(token_store=store, initial_refresh_token=None)
    assert "contacts:write" in client.user_privileges()
    client.refresh_now()


def test_pkce_flow_against_the_simulator(sim: ConstantContactSimulator, make_client: ClientFactory) -> None:
    store = MemoryTokenStore()
    with OAuthFlows(auth_url=sim.auth_url, client_id=sim.client_id, client_secret=sim.client_secret,
                    token_store=store) as flows:
        request = flows.authorization_request("http://127.0.0.1:9/callback")
        redirect = httpx.get(request.url, follow_redirects=False, timeout=5)
        query = {k: v[0] for k, v in parse_qs(urlsplit(redirect.headers["Location"]).query).items()}
        flows.exchange_code(request, query["code"], query["state"])
    client = make_client(token_store=store, initial_refresh_token=None)
    assert len(client.list_tags()) == 20
