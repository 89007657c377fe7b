"""The client's contacts and tagging methods (the foundation of Undo): against the simulator over
loopback HTTP, and against httpx.MockTransport for what the simulator does not do."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.constant_contact import (
    BadRequest,
    CallSeen,
    Conflict,
    ConstantContactClient,
    ConstantContactError,
    ContactTagging,
    MemoryTokenStore,
    OutcomeUnknown,
    StoredTokens,
)
from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.world import ManualClock
from tests.manual_simulator import ACTIVITY_SECONDS, clock, sim  # noqa: F401 - fixtures

API = "https://api.test/v3"


# ---------------------------------------------------------------- against the simulator


@pytest.fixture
def calls() -> list[CallSeen]:
    return []


@pytest.fixture
def client(sim: ConstantContactSimulator, calls: list[CallSeen], clock: ManualClock) -> Iterator[ConstantContactClient]:
    with ConstantContactClient(api_url=sim.base_url, auth_url=sim.auth_url, client_id=sim.client_id,
                               client_secret=sim.client_secret, token_store=MemoryTokenStore(),
                               initial_refresh_token=sim.issue_refresh_token(), requests_per_second=1_000,
                               max_retry_seconds=2.0, on_call=calls.append, clock=clock) as made:
        yield made


def test_contacts_tagged_pages_through_every_status(sim: ConstantContactSimulator, client: ConstantContactClient,
                                                    calls: list[CallSeen]) -> None:
    big = sim.add_tag("Everyone 2021", 1_001)
    small = sim.add_tag("Small")
    unsubscribed = sim.add_contacts(small, 1, status="unsubscribed")
    deleted = sim.add_contacts(small, 1)
    sim.delete_contact(deleted[0])
    both = sorted(sim.contacts_with_tag(big))[:1]
    sim.tag_contacts([small], both)
    used = sim.quota_used_today()

    pages = list(client.contacts_tagged([big.upper(), small]))

    assert [len(page) for page in pages] == [500, 500, 3]
    found = {c.contact_id: c for page in pages for c in page}
    assert set(found) == sim.contacts_with_tag(big) | sim.contacts_with_tag(small)
    assert found[deleted[0]] == ContactTagging(deleted[0], "deleted", (small,))
    assert found[unsubscribed[0]].status == "unsubscribed"
    assert found[both[0]].tag_ids == (big, small) and found[both[0]].status == "active"
    listed = [(c.method, c.endpoint, c.status) for c in calls if c.endpoint == "/contacts"]
    assert listed == [("GET", "/contacts", 200)] * 3
    assert sim.quota_used_today() == used + 3
    sent = [r for r in sim.request_log if r.path == "/v3/contacts"]
    assert all(r.query["status"] == "all" and r.query["include"] == "taggings" and r.query["limit"] == "500"
               for r in sent)
    assert "cursor" not in sent[0].query and all("cursor" in r.query for r in sent[1:])


def test_contacts_tagged_of_a_tag_nobody_carries_yields_nothing(sim: ConstantContactSimulator,
                                                                client: ConstantContactClient) -> None:
    assert list(client.contacts_tagged([sim.add_tag("Empty")], page_size=10)) == []


@pytest.mark.parametrize(("tag_ids", "page_size"), [
    ([str(uuid.uuid4()) for _ in range(51)], 500), ([], 500), ("one-string", 500), ([str(uuid.uuid4())], 0),
    ([str(uuid.uuid4())], 501), ([""], 500),
])
def test_contacts_tagged_refuses_before_any_request(tag_ids: Any, page_size: int, sim: ConstantContactSimulator,
                                                    client: ConstantContactClient) -> None:
    with pytest.raises(ValueError):
        client.contacts_tagged(tag_ids, page_size=page_size)
    assert not [r for r in sim.request_log if r.path.startswith("/v3")]


def test_create_tag_and_the_name_already_taken(sim: ConstantContactSimulator, client: ConstantContactClient,
                                               calls: list[CallSeen]) -> None:
    tag, created = client.create_tag("Spring Promo 2024", tag_source="deletetags-bot")
    assert created and tag.name == "Spring Promo 2024" and tag.tag_source == "deletetags-bot"
    assert sim.tag_exists(tag.tag_id)
    again, created_again = client.create_tag("SPRING promo 2024")
    assert (again.tag_id, created_again) == (tag.tag_id, False)
    assert [(c.method, c.endpoint, c.status) for c in calls] == [
        ("POST", "/contact_tags", 201), ("POST", "/contact_tags", 409), ("GET", "/contact_tags", 200)]
    with pytest.raises(ValueError):
        client.create_tag("<b>")
    with pytest.raises(ValueError):
        client.create_tag("x" * 256)


def test_undo_round_trip_snapshot_delete_recreate_retag(sim: ConstantContactSimulator, client: ConstantContactClient,
                                                        clock: ManualClock, calls: list[CallSeen]) -> None:
    tag = sim.add_tag("Webinar 2022", 600)
    gone = sorted(sim.contacts_with_tag(tag))[0]
    sim.delete_contact(gone)
    snapshot = [c for page in client.contacts_tagged([tag]) for c in page]
    assert len(snapshot) == 600 and {c.status for c in snapshot} == {"active", "deleted"}

    client.create_tags_delete([tag])
    clock.advance(ACTIVITY_SECONDS + 1)
    assert not sim.tag_exists(tag) and sim.contact(gone)["taggings"] == []

    restored, created = client.create_tag("Webinar 2022")
    assert created
    live = [c.contact_id for c in snapshot if c.status != "deleted"]
    activities = [client.create_taggings_add([restored.tag_id], live[:500]),
                  client.create_taggings_add([restored.tag_id], live[500:] + [gone])]
    assert [a.state for a in activities] == ["initialized"] * 2
    clock.advance(ACTIVITY_SECONDS + 1)
    done = [client.get_activity(a.activity_id) for a in activities]
    assert [a.state for a in done] == ["completed"] * 2
    assert (done[1].items_total, done[1].items_completed) == (100, 99)
    assert done[1].errors == (f"Contact {gone} is deleted and cannot be tagged",)
    assert sim.contacts_with_tag(restored.tag_id) == set(live)
    posts = [c.endpoint for c in calls if c.method == "POST"]
    assert posts.count("/activities/contacts_taggings_add") == 2, "labelled as its own endpoint"


@pytest.mark.parametrize(("tag_count", "contact_count"), [(51, 1), (1, 501), (0, 1), (1, 0)])
def test_create_taggings_add_refuses_too_many_or_none(tag_count: int, contact_count: int,
                                                      sim: ConstantContactSimulator,
                                                      client: ConstantContactClient) -> None:
    with pytest.raises(ValueError):
        client.create_taggings_add([str(uuid.uuid4()) for _ in range(tag_count)],
                                   [str(uuid.uuid4()) for _ in range(contact_count)])
    assert sim.activities() == []


# ---------------------------------------------------------------- against httpx.MockTransport


def mock_client(api: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request],
                calls: list[CallSeen] | None = None) -> ConstantContactClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return api(request)

    token = "header.eyJleHAiOjk5OTk5OTk5OTl9.signature"
    store = MemoryTokenStore(StoredTokens("refresh-0", token, time.time() + 86_400))
    return ConstantContactClient(api_url=API, auth_url="https://auth.test/oauth2/default/v1", client_id="id",
                                 client_secret="secret", token_store=store, requests_per_second=1_000,
                                 max_retry_seconds=1.0, transport=httpx.MockTransport(handler),
                                 on_call=(calls.append if calls is not None else None))


TAG = "6f1d1c2e-0000-4000-8000-00000000000a"
OTHER = "6f1d1c2e-0000-4000-8000-00000000000b"


def contact(n: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contact_id": f"00000000-0000-4000-8000-{n:012d}",
                            "email_address": {"address": f"c{n}@example.com", "permission_to_send": "implicit"},
                            "taggings": [TAG]}
    body.update(fields)
    return body


def test_next_links_of_any_shape_are_followed_by_their_cursor() -> None:
    pages = {
        None: {"contacts": [contact(1)], "_links": {"next": {
            "href": "/contacts-service/v3/accounts/1234/contacts?cursor=c2&limit=1"}}},
        "c2": {"contacts": [contact(2)], "_links": {"next": {"href": "https://api.cc.email/v3/contacts?cursor=c3"}}},
        "c3": {"contacts": [contact(3), contact(2)], "_links": {"next": {"href": "/v3/contacts?cursor=c4"}}},
        "c4": {"contacts": []},
    }
    seen: list[httpx.Request] = []
    with mock_client(lambda r: httpx.Response(200, json=pages[r.url.params.get("cursor")]), seen) as client:
        got = [[c.contact_id[-1] for c in page] for page in client.contacts_tagged([TAG], page_size=1)]
    assert got == [["1"], ["2"], ["3"]], "a contact repeated across pages comes once; empty pages are skipped"
    assert [str(r.url).split("?")[0] for r in seen] == [f"{API}/contacts"] * 4
    for request, cursor in zip(seen, [None, "c2", "c3", "c4"]):
        assert dict(request.url.params) == ({"cursor": cursor} if cursor else {}) | {
            "tags": TAG, "status": "all", "include": "taggings", "limit": "1"}


def test_a_repeated_cursor_stops_the_listing() -> None:
    body = {"contacts": [contact(1)], "_links": {"next": {"href": "/v3/contacts?cursor=same"}}}
    with mock_client(lambda r: httpx.Response(200, json=body), []) as client:
        with pytest.raises(ConstantContactError, match="same page cursor"):
            list(client.contacts_tagged([TAG]))


def test_statuses_and_taggings_as_constant_contact_writes_them() -> None:
    contacts = [
        contact(1, email_address={"address": "a@x", "permission_to_send": "explicit"}),
        contact(2, deleted_at="2024-07-08",
                email_address={"address": "b@x", "permission_to_send": "unsubscribed", "opt_out_source": "Account"}),
        contact(3, email_address={"address": "c@x", "permission_to_send": "TEMP_HOLD"}),
        contact(4, email_address={"address": "d@x", "permission_to_send": "pending_confirmation"}),
        contact(5, email_address={"address": "e@x", "permission_to_send": "unsubscribed"}),
        {"contact_id": "00000000-0000-4000-8000-000000000006", "taggings": [OTHER.upper(), TAG.upper()]},
        contact(7, taggings=[OTHER]),
    ]
    with mock_client(lambda r: httpx.Response(200, json={"contacts": contacts}), []) as client:
        (page,) = client.contacts_tagged([OTHER.upper(), TAG])
    assert [c.status for c in page] == ["active", "deleted", "temp_hold", "pending_confirmation", "unsubscribed",
                                        "not_set", "active"]
    assert [c.tag_ids for c in page] == [(TAG,)] * 5 + [(OTHER, TAG), (OTHER,)]
    with mock_client(lambda r: httpx.Response(200, json={"contacts": [{"contact_id": "x"}]}), []) as client:
        ((only,),) = client.contacts_tagged([TAG])
    assert only.tag_ids == (TAG,), "with one tag asked, the filter itself says the contact carries it"


def test_contacts_listing_get_is_retried_on_5xx() -> None:
    answers = iter([httpx.Response(503, json=[{"error_key": "x", "error_message": "busy"}]),
                    httpx.Response(200, json={"contacts": [contact(1)]})])
    seen: list[httpx.Request] = []
    with mock_client(lambda r: next(answers), seen) as client:
        assert len(list(client.contacts_tagged([TAG]))) == 1
    assert len(seen) == 2


@pytest.mark.parametrize("call", ["create_tag", "create_taggings_add"])
@pytest.mark.parametrize("failure", ["503", "read timeout", "unreadable 201"])
def test_posts_are_never_sent_twice(call: str, failure: str) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if failure == "read timeout":
            raise httpx.ReadTimeout("lost", request=request)
        if failure == "503":
            return httpx.Response(503, json=[{"error_key": "service_unavailable", "error_message": "down"}])
        return httpx.Response(201, text="<html>ok</html>")

    seen: list[httpx.Request] = []
    with mock_client(api, seen) as client, pytest.raises(OutcomeUnknown) as raised:
        if call == "create_tag":
            client.create_tag("New tag")
        else:
            client.create_taggings_add([TAG], ["00000000-0000-4000-8000-000000000001"])
    assert len(seen) == 1
    assert "tag-delete" not in str(raised.value)


def test_create_taggings_add_sends_the_documented_body() -> None:
    seen: list[httpx.Request] = []
    calls: list[CallSeen] = []
    created = {"activity_id": str(uuid.uuid4()), "state": "initialized", "percent_done": 1, "activity_errors": [],
               "status": {}, "_links": {"self": {"href": "/v3/activities/x"}}}
    with mock_client(lambda r: httpx.Response(201, json=created), seen, calls) as client:
        activity = client.create_taggings_add([TAG, TAG, OTHER], ["c1", "c2", "c1"])
    assert activity.activity_id == created["activity_id"] and activity.state == "initialized"
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", f"{API}/activities/contacts_taggings_add")
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"source": {"contact_ids": ["c1", "c2"]}, "tag_ids": [TAG, OTHER]}
    assert calls == [CallSeen("POST", "/activities/contacts_taggings_add", 201)]


def test_a_409_whose_name_cannot_be_found_is_an_error_not_a_guess() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(409, json=[{"error_key": "contacts.api.conflict", "error_message": "taken"}])
        return httpx.Response(200, json={"tags": [{"tag_id": TAG, "name": "Something else"}]})

    with mock_client(api, []) as client, pytest.raises(ConstantContactError, match="no tag of that name"):
        client.create_tag("Taken")


def test_conflict_is_still_a_bad_request() -> None:
    assert issubclass(Conflict, BadRequest)
