"""The Constant Contact simulator, driven over real HTTP on loopback with httpx."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.sandbox.constant_contact import ConstantContactSimulator, serve_forever
from bot.sandbox.world import ManualClock

REPO_ROOT = Path(__file__).resolve().parents[2]
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
INVALID_GRANT = {"error": "invalid_grant", "error_description": "The refresh token is invalid or expired."}


def make_sim(**options: Any) -> ConstantContactSimulator:
    settings: dict[str, Any] = {"requests_per_second": 10_000, "activity_seconds": 0.3}
    settings.update(options)
    sim = ConstantContactSimulator(**settings)
    sim.token_requests_per_second = 10_000
    sim.device_interval_seconds = 0
    return sim


@pytest.fixture
def sim() -> Iterator[ConstantContactSimulator]:
    with make_sim() as simulator:
        yield simulator
    assert simulator.internal_errors == []


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def timed_sim(clock: ManualClock) -> Iterator[ConstantContactSimulator]:
    with make_sim(clock=clock, activity_seconds=10.0, access_token_seconds=30 * 86_400) as simulator:
        yield simulator
    assert simulator.internal_errors == []


def refresh(sim: ConstantContactSimulator, refresh_token: str,
            auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.post(sim.auth_url + "/token", auth=auth or (sim.client_id, sim.client_secret),
                      data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def access_token(sim: ConstantContactSimulator) -> str:
    response = refresh(sim, sim.issue_refresh_token())
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def api(sim: ConstantContactSimulator, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or access_token(sim)}"}
    return httpx.Client(base_url=sim.base_url, headers=headers, timeout=5)


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def delete_tags(client: httpx.Client, tag_ids: list[str]) -> httpx.Response:
    return client.post("/activities/contacts_tags_delete", json={"tag_ids": tag_ids})


# ---------------------------------------------------------------- OAuth: refresh tokens


def test_refresh_returns_a_jwt_access_token_and_a_new_refresh_token(sim: ConstantContactSimulator) -> None:
    first = sim.issue_refresh_token()
    body = refresh(sim, first).json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86_400
    assert body["scope"] == "contact_data offline_access"
    assert body["refresh_token"] != first
    claims = jwt_claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == 86_400
    assert abs(claims["iat"] - sim.now()) < 5
    assert "contact_data" in claims["scp"] and claims["sub"]
    assert len(body["access_token"].split(".")) == 3


def test_token_endpoint_rejects_a_wrong_client(sim: ConstantContactSimulator) -> None:
    token = sim.issue_refresh_token()
    for auth in [(sim.client_id, "wrong-secret"), ("someone-else", sim.client_secret)]:
        response = refresh(sim, token, auth=auth)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    no_auth = httpx.post(sim.auth_url + "/token", data={"grant_type": "refresh_token", "refresh_token": token})
    assert no_auth.status_code == 401
    assert refresh(sim, token).status_code == 200, "failed client auth must not burn the token"


def test_refresh_tokens_rotate_and_earlier_ones_die(sim: ConstantContactSimulator) -> None:
    first = sim.issue_refresh_token()
    second = refresh(sim, first).json()["refresh_token"]
    reused = refresh(sim, first)
    assert reused.status_code == 400 and reused.json() == INVALID_GRANT
    third = refresh(sim, second).json()["refresh_token"]
    assert refresh(sim, second).json() == INVALID_GRANT
    assert refresh(sim, first).json() == INVALID_GRANT
    assert refresh(sim, third).status_code == 200
    assert refresh(sim, "never-issued").json() == INVALID_GRANT


def test_revoked_refresh_tokens_give_invalid_grant(sim: ConstantContactSimulator) -> None:
    token = sim.issue_refresh_token()
    sim.revoke_refresh_tokens()
    response = refresh(sim, token)
    assert (response.status_code, response.json()) == (400, INVALID_GRANT)


def test_token_endpoint_allows_one_request_per_second() -> None:
    with ConstantContactSimulator() as strict:
        token = strict.issue_refresh_token()
        assert refresh(strict, token).status_code == 200
        limited = refresh(strict, token)
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert [r.status for r in strict.token_requests()] == [200, 429]


def test_unsupported_grant_and_wrong_content_type(sim: ConstantContactSimulator) -> None:
    auth = (sim.client_id, sim.client_secret)
    unsupported = httpx.post(sim.auth_url + "/token", auth=auth, data={"grant_type": "password"})
    assert unsupported.json()["error"] == "unsupported_grant_type"
    as_json = httpx.post(sim.auth_url + "/token", auth=auth, json={"grant_type": "refresh_token"})
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")


# ---------------------------------------------------------------- OAuth: device flow


def start_device(sim: ConstantContactSimulator, scope: str = "contact_data offline_access") -> dict[str, Any]:
    response = httpx.post(sim.auth_url + "/device/authorize", data={"client_id": sim.client_id, "scope": scope})
    assert response.status_code == 200, response.text
    return response.json()


def poll_device(sim: ConstantContactSimulator, device_code: str) -> httpx.Response:
    return httpx.post(sim.auth_url + "/token", data={
        "grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": sim.client_id})


def test_device_flow_is_pending_until_approved(sim: ConstantContactSimulator) -> None:
    started = start_device(sim)
    assert set(started) >= {"device_code", "user_code", "verification_uri",
                            "verification_uri_complete", "expires_in", "interval"}
    assert started["user_code"] in started["verification_uri_complete"]
    pending = poll_device(sim, started["device_code"])
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    sim.approve_device(started["user_code"])
    granted = poll_device(sim, started["device_code"])
    assert granted.status_code == 200
    assert "refresh_token" in granted.json()
    assert refresh(sim, granted.json()["refresh_token"]).status_code == 200
    assert poll_device(sim, started["device_code"]).json()["error"] == "invalid_grant"


def test_device_flow_without_offline_access_gives_no_refresh_token(sim: ConstantContactSimulator) -> None:
    sim.auto_approve_device_after = 2
    started = start_device(sim, scope="contact_data")
    statuses = [poll_device(sim, started["device_code"]).status_code for _ in range(3)]
    assert statuses == [400, 400, 200]
    body = poll_device(sim, start_device(sim, scope="contact_data")["device_code"])
    assert body.status_code == 400, "auto-approval counts polls per device code"
    sim.auto_approve_device_after = 0
    granted = poll_device(sim, start_device(sim, scope="contact_data")["device_code"]).json()
    assert granted["scope"] == "contact_data" and "refresh_token" not in granted


def test_device_flow_asks_fast_pollers_to_slow_down(sim: ConstantContactSimulator) -> None:
    sim.device_interval_seconds = 5
    code = start_device(sim)["device_code"]
    assert poll_device(sim, code).json()["error"] == "authorization_pending"
    assert poll_device(sim, code).json()["error"] == "slow_down"


def test_device_flow_denied_and_verification_page(sim: ConstantContactSimulator) -> None:
    denied = start_device(sim)
    sim.deny_device(denied["user_code"])
    assert poll_device(sim, denied["device_code"]).json()["error"] == "access_denied"
    approved = start_device(sim)
    page = httpx.get(approved["verification_uri_complete"])
    assert page.status_code == 200 and "approved" in page.text
    assert poll_device(sim, approved["device_code"]).status_code == 200
    with pytest.raises(KeyError):
        sim.approve_device("NOSUCHCODE")


# ---------------------------------------------------------------- OAuth: authorization code + PKCE


def authorize(sim: ConstantContactSimulator, verifier: str, redirect_uri: str) -> dict[str, str]:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    response = httpx.get(sim.auth_url + "/authorize", params={
        "client_id": sim.client_id, "redirect_uri": redirect_uri, "response_type": "code",
        "scope": "contact_data offline_access", "state": "xyz-state",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def exchange(sim: ConstantContactSimulator, code: str, verifier: str, redirect_uri: str) -> httpx.Response:
    return httpx.post(sim.auth_url + "/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": verifier, "client_id": sim.client_id})


def test_pkce_code_exchange_checks_verifier_redirect_and_single_use(sim: ConstantContactSimulator) -> None:
    verifier, redirect_uri = "v" * 64, "http://127.0.0.1:9/callback"
    params = authorize(sim, verifier, redirect_uri)
    assert params["state"] == "xyz-state"
    wrong_verifier = exchange(sim, params["code"], "w" * 64, redirect_uri)
    assert (wrong_verifier.status_code, wrong_verifier.json()["error"]) == (400, "invalid_grant")
    wrong_redirect = exchange(sim, params["code"], verifier, "http://127.0.0.1:9/other")
    assert wrong_redirect.json()["error"] == "invalid_grant"
    granted = exchange(sim, params["code"], verifier, redirect_uri)
    assert granted.status_code == 200 and "refresh_token" in granted.json()
    assert exchange(sim, params["code"], verifier, redirect_uri).json()["error"] == "invalid_grant"


def test_authorization_code_lives_five_minutes(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    verifier, redirect_uri = "k" * 50, "http://127.0.0.1:9/cb"
    code = authorize(timed_sim, verifier, redirect_uri)["code"]
    clock.advance(301)
    assert exchange(timed_sim, code, verifier, redirect_uri).json()["error"] == "invalid_grant"


# ---------------------------------------------------------------- API authentication


def test_api_requires_a_valid_unexpired_token(sim: ConstantContactSimulator) -> None:
    unauthorized = {"error_key": "unauthorized", "error_message": "Unauthorized"}
    bare = httpx.get(sim.base_url + "/contact_tags")
    assert (bare.status_code, bare.json()) == (401, unauthorized)
    with api(sim, token="not.a.token") as client:
        assert client.get("/contact_tags").status_code == 401
    with api(sim) as client:
        assert client.get("/contact_tags").status_code == 200
        sim.expire_access_tokens()
        expired = client.get("/contact_tags")
        assert (expired.status_code, expired.json()) == (401, unauthorized)


def test_access_tokens_expire_on_the_simulated_clock(clock: ManualClock) -> None:
    with make_sim(clock=clock, access_token_seconds=60) as short_lived, api(short_lived) as client:
        assert client.get("/contact_tags").status_code == 200
        clock.advance(61)
        assert client.get("/contact_tags").status_code == 401


# ---------------------------------------------------------------- tags


def test_tag_listing_pages_with_a_foreign_next_link(sim: ConstantContactSimulator) -> None:
    created = [sim.add_tag(f"Tag {n}", contacts_count=n) for n in range(7)]
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 3, "include_count": "true"}
    with api(sim) as client:
        for _ in range(5):
            body = client.get("/contact_tags", params=params).json()
            seen.extend(body["tags"])
            if "_links" not in body:
                break
            href = body["_links"]["next"]["href"]
            assert href.startswith("/contacts-service/v3/accounts/1234/contact_tags?")
            params = {"limit": 3, "cursor": parse_qs(urlsplit(href).query)["cursor"][0]}
        without_count = client.get("/contact_tags").json()["tags"]
    assert [tag["tag_id"] for tag in seen] == created
    assert [tag["contacts_count"] for tag in seen[:3]] == [0, 1, 2]
    assert "contacts_count" not in seen[3], "cursor pages keep only the parameters sent"
    assert all("contacts_count" not in tag for tag in without_count)


def test_tag_listing_rejects_bad_limits_and_cursors(sim: ConstantContactSimulator) -> None:
    with api(sim) as client:
        for query in [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"cursor": "%%%"},
                      {"include_count": "maybe"}]:
            response = client.get("/contact_tags", params=query)
            assert response.status_code == 400, query
            assert response.json()[0]["error_key"] == "contacts.api.validation.error"
        assert len(client.get("/contact_tags", params={"limit": 500}).json()["tags"]) == 0


def test_create_get_and_rename_a_tag(sim: ConstantContactSimulator) -> None:
    with api(sim) as client:
        created = client.post("/contact_tags", json={"name": "Gold card member", "tag_source": "ESTY"})
        assert created.status_code == 201
        tag = created.json()
        assert tag["name"] == "Gold card member" and tag["tag_source"] == "ESTY"
        fetched = client.get(f"/contact_tags/{tag['tag_id']}", params={"include_count": "true"}).json()
        assert fetched["contacts_count"] == 0 and fetched["tag_id"] == tag["tag_id"]
        renamed = client.put(f"/contact_tags/{tag['tag_id']}", json={"name": "Platinum"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Platinum"
    assert sim.tag_exists(tag["tag_id"])


def test_tag_creation_enforces_name_rules(sim: ConstantContactSimulator) -> None:
    sim.add_tag("Spring Promo 2024")
    with api(sim) as client:
        duplicate = client.post("/contact_tags", json={"name": "SPRING promo 2024"})
        assert duplicate.status_code == 409 and isinstance(duplicate.json(), list)
        for name in ["", "x" * 256, "<b>bold</b>", 42]:
            assert client.post("/contact_tags", json={"name": name}).status_code == 400, name
        assert client.post("/contact_tags", json={"name": "y" * 255}).status_code == 201
        as_text = client.post("/contact_tags", content=b'{"name": "Text"}', headers={"Content-Type": "text/plain"})
        assert as_text.status_code == 415
    assert "Text" not in [tag["name"] for tag in sim.tags()]


def test_unknown_tag_and_unknown_path_give_array_errors(sim: ConstantContactSimulator) -> None:
    with api(sim) as client:
        missing = client.get(f"/contact_tags/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert missing.json()[0]["error_key"] == "contacts.api.not_found"
        assert client.delete(f"/contact_tags/{uuid.uuid4()}").status_code == 404
        assert client.get("/contact_tags/not-a-uuid").status_code == 400
        nowhere = client.get("/no/such/thing")
        assert nowhere.status_code == 404 and nowhere.json()[0]["error_key"] == "contacts.api.not_found"
        assert client.patch("/contact_tags").status_code == 405


def test_deleting_one_tag_is_an_activity(sim: ConstantContactSimulator) -> None:
    tag_id = sim.add_tag("Old newsletter", contacts_count=12)
    with api(sim) as client:
        accepted = client.delete(f"/contact_tags/{tag_id}")
        assert accepted.status_code == 202
        body = accepted.json()
        assert body["state"] == "initialized" and body["activity_errors"] == []
        href = body["_links"]["self"]["href"]
        done = wait_for(lambda: client.get(href.removeprefix("/v3")).json()["state"] == "completed")
    assert done and not sim.tag_exists(tag_id)


# ---------------------------------------------------------------- bulk tag delete activities


def test_tags_delete_answers_like_the_documented_example(sim: ConstantContactSimulator) -> None:
    tag_id = sim.add_tag("Summer Sale 2023")
    with api(sim) as client:
        response = delete_tags(client, [tag_id])
    assert response.status_code == 201
    body = response.json()
    assert uuid.UUID(body["activity_id"])
    assert {k: body[k] for k in ("state", "percent_done", "activity_errors", "status")} == {
        "state": "initialized", "percent_done": 1, "activity_errors": [], "status": {}}
    assert body["_links"] == {"self": {"href": f"/v3/activities/{body['activity_id']}"}}
    assert sim.activities()[0]["tag_ids"] == [tag_id]


def test_tags_delete_validates_its_request(sim: ConstantContactSimulator) -> None:
    with api(sim) as client:
        as_text = client.post("/activities/contacts_tags_delete", content=b'{"tag_ids": []}',
                              headers={"Content-Type": "text/plain"})
        assert as_text.status_code == 415
        too_many = delete_tags(client, [str(uuid.uuid4()) for _ in range(501)])
        assert too_many.status_code == 400
        assert too_many.json()[0]["error_key"] == "contacts.api.validation.error"
        assert delete_tags(client, ["not-a-uuid"]).status_code == 400
        assert delete_tags(client, []).status_code == 400
        malformed = client.post("/activities/contacts_tags_delete", content=b"{oops",
                                headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400
        assert delete_tags(client, [str(uuid.uuid4()) for _ in range(500)]).status_code == 201
    assert len(sim.activities()) == 1


def test_too_many_queued_activities_gives_429(sim: ConstantContactSimulator) -> None:
    sim.max_queued_activities = 2
    sim.faults.stuck = True
    with api(sim) as client:
        assert [delete_tags(client, [str(uuid.uuid4())]).status_code for _ in range(2)] == [201, 201]
        refused = delete_tags(client, [str(uuid.uuid4())])
    assert refused.status_code == 429
    assert refused.json()[0]["error_key"] == "activities.api.too_many_queued"
    assert len(sim.activities()) == 2


def test_activity_progresses_in_real_time_and_really_deletes(sim: ConstantContactSimulator) -> None:
    sim.next_activity_seconds = [0.5]
    tag_ids = [sim.add_tag(f"Promo {n}") for n in range(20)]
    keep = sim.add_tag("Keep me")
    with api(sim) as client:
        href = delete_tags(client, tag_ids).json()["_links"]["self"]["href"].removeprefix("/v3")
        snapshots: list[dict[str, Any]] = []

        def finished() -> bool:
            snapshots.append(client.get(href).json())
            return snapshots[-1]["state"] == "completed"

        wait_for(finished)
    states = [s["state"] for s in snapshots]
    assert states == sorted(states, key=["initialized", "processing", "completed"].index)
    assert "processing" in states
    percents = [s["percent_done"] for s in snapshots]
    assert percents == sorted(percents) and percents[-1] == 100
    processing = [s for s in snapshots if s["state"] == "processing"]
    assert all(1 <= s["percent_done"] <= 99 and "started_at" in s for s in processing)
    final = snapshots[-1]
    assert final["status"] == {"items_total_count": 20, "items_completed_count": 20}
    assert final["activity_errors"] == [] and "completed_at" in final
    assert sim.tag_ids() == {keep}


def test_activity_timeline_on_a_manual_clock(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    tag_ids = [timed_sim.add_tag(f"Webinar {n}") for n in range(10)]
    with api(timed_sim) as client:
        href = delete_tags(client, tag_ids).json()["_links"]["self"]["href"].removeprefix("/v3")
        assert client.get(href).json()["state"] == "initialized"
        clock.advance(1.0 + 0.9 * 10 * 0.5)
        halfway = client.get(href).json()
        assert (halfway["state"], halfway["percent_done"]) == ("processing", 50)
        assert halfway["status"] == {"items_total_count": 10, "items_completed_count": 5}
        assert timed_sim.tag_ids() == set(tag_ids), "tags disappear only when the activity ends"
        clock.advance(5.0)
        assert timed_sim.tag_ids() == set(), "deletion happens at the end even if nobody polls"
        assert client.get(href).json()["state"] == "completed"


def test_unknown_tag_ids_are_reported_in_activity_errors(sim: ConstantContactSimulator) -> None:
    real, ghost = sim.add_tag("Real tag"), str(uuid.uuid4())
    with api(sim) as client:
        href = delete_tags(client, [real, ghost]).json()["_links"]["self"]["href"].removeprefix("/v3")
        final = wait_for(lambda: (body := client.get(href).json())["state"] == "completed" and body)
    assert final["activity_errors"] == [f"Tag {ghost} not found"]
    assert final["status"] == {"items_total_count": 2, "items_completed_count": 1}
    assert not sim.tag_exists(real)


def test_activity_list_filters_by_state_and_pages(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    timed_sim.next_activity_seconds = [1.0, 1.0, 20.0]
    with api(timed_sim) as client:
        ids = [delete_tags(client, [str(uuid.uuid4())]).json()["activity_id"] for _ in range(3)]
        clock.advance(2.0)
        everything = client.get("/activities").json()["activities"]
        assert [a["activity_id"] for a in everything] == ids[::-1]
        completed = client.get("/activities", params={"state": "completed"}).json()["activities"]
        assert {a["activity_id"] for a in completed} == set(ids[:2])
        processing = client.get("/activities", params={"state": "processing"}).json()["activities"]
        assert [a["activity_id"] for a in processing] == [ids[2]]
        first = client.get("/activities", params={"limit": 2}).json()
        cursor = parse_qs(urlsplit(first["_links"]["next"]["href"]).query)["cursor"][0]
        second = client.get("/activities", params={"limit": 2, "cursor": cursor}).json()
        assert [a["activity_id"] for a in first["activities"] + second["activities"]] == ids[::-1]
        assert "_links" not in second
        assert client.get("/activities", params={"state": "initialized"}).status_code == 400


def test_forgotten_and_old_activities_are_gone(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    with api(timed_sim) as client:
        first = delete_tags(client, [str(uuid.uuid4())]).json()["activity_id"]
        second = delete_tags(client, [str(uuid.uuid4())]).json()["activity_id"]
        timed_sim.forget_activity(first)
        gone = client.get(f"/activities/{first}")
        assert gone.status_code == 404 and gone.json()[0]["error_key"] == "contacts.api.not_found"
        assert client.get(f"/activities/{second}").status_code == 200
        clock.advance(10 * 86_400 + 1)
        assert client.get(f"/activities/{second}").status_code == 404
        assert client.get("/activities").json()["activities"] == []
        assert client.get(f"/activities/{uuid.uuid4()}").status_code == 404


# ---------------------------------------------------------------- privileges


def test_privileges_and_missing_write_privilege(sim: ConstantContactSimulator) -> None:
    with api(sim) as client:
        privileges = client.get("/account/user/privileges").json()
        assert {"privilege_id": 11, "privilege_name": "contacts:write"} in privileges
        sim.privileges.remove("contacts:write")
        assert "contacts:write" not in [p["privilege_name"] for p in client.get("/account/user/privileges").json()]
        forbidden = delete_tags(client, [str(uuid.uuid4())])
        assert forbidden.status_code == 403 and isinstance(forbidden.json(), list)
        assert client.get("/contact_tags").status_code == 200, "reading needs only contacts:read"
    assert sim.activities() == []


# ---------------------------------------------------------------- rate limits and quota


def test_per_second_throttle_has_the_documented_body_and_no_retry_after() -> None:
    with ConstantContactSimulator(requests_per_second=4) as strict:
        strict.token_requests_per_second = 100
        with api(strict) as client:
            responses = [client.get("/contact_tags") for _ in range(6)]
            assert [r.status_code for r in responses] == [200, 200, 200, 200, 429, 429]
            assert responses[-1].json() == {"error_key": "throttled", "error_message": "Too Many Requests"}
            assert "retry-after" not in responses[-1].headers
            wait_for(lambda: client.get("/contact_tags").status_code == 200, timeout=3)


def test_throttle_burst_fault(sim: ConstantContactSimulator) -> None:
    sim.faults.throttle_burst = 2
    with api(sim) as client:
        statuses = [client.get("/contact_tags").status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert sim.faults.throttle_burst == 0


def test_daily_quota(clock: ManualClock) -> None:
    quota_body = {"error_key": "quota_exceeded", "error_message": "Limit Exceeded"}
    with make_sim(daily_quota=3, clock=clock, access_token_seconds=9e9) as small, api(small) as client:
        statuses = [client.get("/contact_tags").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert client.get("/contact_tags").json() == quota_body
        clock.advance(86_400)
        assert client.get("/contact_tags").status_code == 200, "the quota resets at 00:00 UTC"
        small.exhaust_quota()
        exhausted = client.get("/contact_tags")
        assert (exhausted.status_code, exhausted.json()) == (429, quota_body)
        assert "retry-after" not in exhausted.headers


# ---------------------------------------------------------------- request log


def test_request_log_records_api_and_token_calls(sim: ConstantContactSimulator) -> None:
    before = time.monotonic()
    with api(sim) as client:
        client.get("/contact_tags", params={"limit": 5})
        delete_tags(client, [str(uuid.uuid4())])
    log = list(sim.request_log)
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/oauth2/default/v1/token", 200), ("GET", "/v3/contact_tags", 200),
        ("POST", "/v3/activities/contacts_tags_delete", 201)]
    assert log[1].query == {"limit": "5"} and log[1].json is None
    assert log[2].json["tag_ids"] and log[2].response["state"] == "initialized"
    assert log[2].headers["Authorization"].startswith("Bearer ")
    assert all(before <= r.at <= time.monotonic() for r in log)
    assert [r.form["grant_type"] for r in sim.token_requests()] == ["refresh_token"]


# ---------------------------------------------------------------- faults


def test_error_rate_answers_500_or_503_without_side_effects(sim: ConstantContactSimulator) -> None:
    with api(sim) as client:
        sim.faults.error_rate = 1.0
        responses = [client.post("/contact_tags", json={"name": f"T{n}"}) for n in range(6)]
        sim.faults.error_rate = 0.0
        assert client.get("/contact_tags").status_code == 200
    assert {r.status_code for r in responses} <= {500, 503}
    assert all(isinstance(r.json(), list) for r in responses)
    assert sim.tags() == []


def test_latency_fault_delays_api_answers(sim: ConstantContactSimulator) -> None:
    with api(sim) as client:
        sim.faults.latency_seconds = 0.2
        started = time.monotonic()
        assert client.get("/contact_tags").status_code == 200
        assert time.monotonic() - started >= 0.2


def test_stuck_activities_never_leave_processing(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    timed_sim.faults.stuck = True
    tag_id = timed_sim.add_tag("Stuck")
    with api(timed_sim) as client:
        href = delete_tags(client, [tag_id]).json()["_links"]["self"]["href"].removeprefix("/v3")
        clock.advance(3_600)
        body = client.get(href).json()
        clock.advance(3_600)
        assert client.get(href).json() == body
    assert body["state"] == "processing" and "completed_at" not in body
    assert timed_sim.tag_exists(tag_id)


def test_failed_activities_delete_only_part(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    timed_sim.faults.fail_activities = True
    tag_ids = [timed_sim.add_tag(f"F{n}") for n in range(4)]
    with api(timed_sim) as client:
        href = delete_tags(client, tag_ids).json()["_links"]["self"]["href"].removeprefix("/v3")
        clock.advance(11)
        body = client.get(href).json()
    assert body["state"] == "failed"
    assert body["activity_errors"] and all(isinstance(e, str) for e in body["activity_errors"])
    assert body["status"]["items_completed_count"] == 2
    assert timed_sim.tag_ids() == set(tag_ids[2:])


def test_timed_out_activities(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    timed_sim.faults.timeout_activities = True
    tag_ids = [timed_sim.add_tag(f"T{n}") for n in range(3)]
    with api(timed_sim) as client:
        href = delete_tags(client, tag_ids).json()["_links"]["self"]["href"].removeprefix("/v3")
        clock.advance(11)
        body = client.get(href).json()
    assert body["state"] == "timed_out" and body["activity_errors"]
    assert timed_sim.tag_ids() == set(tag_ids[1:])


def test_fail_after_commit_applies_the_change_but_answers_503(sim: ConstantContactSimulator) -> None:
    sim.faults.fail_after_commit = 1
    tag_id = sim.add_tag("Ambiguous")
    with api(sim) as client:
        lost = delete_tags(client, [tag_id])
        assert lost.status_code == 503
    assert len(sim.activities()) == 1
    wait_for(lambda: not sim.tag_exists(tag_id))


def test_next_activity_seconds_spread_durations(timed_sim: ConstantContactSimulator, clock: ManualClock) -> None:
    timed_sim.next_activity_seconds = [1.0, 30.0]
    with api(timed_sim) as client:
        quick = delete_tags(client, [str(uuid.uuid4())]).json()["activity_id"]
        slow = delete_tags(client, [str(uuid.uuid4())]).json()["activity_id"]
        default = delete_tags(client, [str(uuid.uuid4())]).json()["activity_id"]
        clock.advance(12)
        states = [client.get(f"/activities/{a}").json()["state"] for a in (quick, slow, default)]
    assert states == ["completed", "processing", "completed"]


def test_time_scale_accelerates_activities() -> None:
    with make_sim(time_scale=100.0, activity_seconds=20.0) as fast, api(fast) as client:
        tag_id = fast.add_tag("Fast")
        activity_id = delete_tags(client, [tag_id]).json()["activity_id"]
        started = time.monotonic()
        wait_for(lambda: client.get(f"/activities/{activity_id}").json()["state"] == "completed", timeout=2)
        assert time.monotonic() - started < 1.0, "20 simulated seconds should pass in about 0.2 s"
        assert fast.activities()[0]["id"] == activity_id and not fast.tag_exists(tag_id)


def test_concurrent_requests_are_safe(sim: ConstantContactSimulator) -> None:
    token = access_token(sim)

    def create(start: int) -> None:
        with api(sim, token) as client:
            for n in range(start, start + 10):
                assert client.post("/contact_tags", json={"name": f"Tag {n}"}).status_code == 201

    threads = [threading.Thread(target=create, args=(n * 10,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(sim.tag_ids()) == 60


def test_seeded_example_tags_are_realistic() -> None:
    seeded = ConstantContactSimulator(tag_count=30, seed=7)
    names = [tag["name"] for tag in seeded.tags()]
    assert len(names) == len({name.casefold() for name in names}) == 30
    assert all(any(ch.isdigit() for ch in name) for name in names)
    assert [tag["name"] for tag in ConstantContactSimulator(tag_count=30, seed=7).tags()] == names


# ---------------------------------------------------------------- CLI entry point


def test_serve_forever_prints_what_a_client_needs_and_stops() -> None:
    lines: list[str] = []
    stop = threading.Event()
    runner = threading.Thread(target=serve_forever, args=(0, 5, 0.3, 0.0, 0.0, False, False),
                              kwargs={"echo": lines.append, "stop": stop}, daemon=True)
    runner.start()
    wait_for(lambda: any(line.startswith("CC_REFRESH_TOKEN=") for line in lines))
    printed = dict(line.split("=", 1) for line in lines if line.startswith("CC_"))
    token = httpx.post(printed["CC_AUTH_URL"] + "/token", data={
        "grant_type": "refresh_token", "refresh_token": printed["CC_REFRESH_TOKEN"]},
        auth=(printed["CC_CLIENT_ID"], printed["CC_CLIENT_SECRET"])).json()["access_token"]
    tags = httpx.get(printed["CC_API_URL"] + "/contact_tags", headers={"Authorization": f"Bearer {token}"})
    assert len(tags.json()["tags"]) == 5
    stop.set()
    runner.join(timeout=5)
    assert not runner.is_alive() and lines[-1] == "Constant Contact sandbox stopped."
    with pytest.raises(httpx.ConnectError):
        httpx.get(printed["CC_API_URL"] + "/contact_tags")


def test_serve_forever_stops_cleanly_on_sigterm() -> None:
    code = "from bot.sandbox.constant_contact import serve_forever; serve_forever(0, 3, 0.3, 0, 0, False, False)"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        api_url = next(line for line in process.stdout if line.startswith("CC_API_URL=")).strip()
        assert httpx.get(api_url.split("=", 1)[1] + "/contact_tags").status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert "Constant Contact sandbox stopped." in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
