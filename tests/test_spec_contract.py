"""Contract: what the Constant Contact simulator answers validates against the official Swagger spec.

Definition names come from the spec's own paths (``response_definition``) wherever the spec names one.
Client-request checks can reuse ``spec.validate_against_spec`` (tests/spec.py) and ``request_body_definition``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Callable, Iterator

import httpx
import jsonschema
import pytest

from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.world import ManualClock
from spec import (
    SHARED_SPEC_PATH, SPEC_PATH, load_spec, request_body_definition, response_definition, validate_against_spec,
)

from bot.constant_contact import ConstantContactClient, MemoryTokenStore

ACTIVITY_SECONDS = 10.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[ConstantContactSimulator]:
    simulator = ConstantContactSimulator(requests_per_second=10_000, activity_seconds=ACTIVITY_SECONDS,
                                         access_token_seconds=30 * 86_400, clock=clock, tag_count=3)
    simulator.token_requests_per_second = 10_000
    with simulator:
        yield simulator
    assert simulator.internal_errors == []


@pytest.fixture
def client(sim: ConstantContactSimulator) -> Iterator[httpx.Client]:
    token = httpx.post(sim.auth_url + "/token", auth=(sim.client_id, sim.client_secret), data={
        "grant_type": "refresh_token", "refresh_token": sim.issue_refresh_token()}).json()["access_token"]
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as http:
        yield http


def assert_valid(definition: str, response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    validate_against_spec(definition, body)
    return body


def create_activity(client: httpx.Client, tag_ids: list[str]) -> str:
    return client.post("/activities/contacts_tags_delete", json={"tag_ids": tag_ids}).json()["activity_id"]


# ---------------------------------------------------------------- success bodies


def test_tag_bodies(client: httpx.Client) -> None:
    created = assert_valid(response_definition("/contact_tags", "post", 201),
                           client.post("/contact_tags", json={"name": "Gold", "tag_source": "ESTY"}), 201)
    path = f"/contact_tags/{created['tag_id']}"
    one = response_definition("/contact_tags/{tag_id}", "get", 200)
    assert one == "Tag"
    assert_valid(one, client.get(path, params={"include_count": "true"}), 200)
    assert_valid(response_definition("/contact_tags/{tag_id}", "put", 200),
                 client.put(path, json={"name": "Platinum"}), 200)


def test_tag_list_bodies(client: httpx.Client) -> None:
    definition = response_definition("/contact_tags", "get", 200)
    assert definition == "Tags"
    paged = assert_valid(definition, client.get("/contact_tags", params={"limit": 2, "include_count": "true"}), 200)
    assert "next" in paged["_links"]
    last = assert_valid(definition, client.get("/contact_tags", params={"limit": 500}), 200)
    assert "_links" not in last


def test_tags_delete_body(client: httpx.Client, sim: ConstantContactSimulator) -> None:
    definition = response_definition("/activities/contacts_tags_delete", "post", 201)
    assert definition == "ActivityTagging"
    body = {"tag_ids": sorted(sim.tag_ids())}
    validate_against_spec(request_body_definition("/activities/contacts_tags_delete", "post"), body)
    assert_valid(definition, client.post("/activities/contacts_tags_delete", json=body), 201)


def test_single_tag_delete_body(client: httpx.Client, sim: ConstantContactSimulator) -> None:
    definition = response_definition("/contact_tags/{tag_id}", "delete", 202)
    assert definition == "ActivityGeneric"
    tag_id = next(iter(sim.tag_ids()))
    assert_valid(definition, client.delete(f"/contact_tags/{tag_id}"), 202)


ACTIVITY_SCENARIOS: dict[str, tuple[str, float]] = {
    # expected state: (fault to switch on, simulated seconds to wait)
    "initialized": ("", 0.0),
    "processing": ("", ACTIVITY_SECONDS / 2),
    "completed": ("", ACTIVITY_SECONDS + 1),
    "failed": ("fail_activities", ACTIVITY_SECONDS + 1),
    "timed_out": ("timeout_activities", ACTIVITY_SECONDS + 1),
}


@pytest.mark.parametrize("state", list(ACTIVITY_SCENARIOS))
def test_activity_body_in_every_state(state: str, client: httpx.Client, sim: ConstantContactSimulator,
                                      clock: ManualClock) -> None:
    fault, wait = ACTIVITY_SCENARIOS[state]
    if fault:
        setattr(sim.faults, fault, True)
    activity_id = create_activity(client, sorted(sim.tag_ids()) + [str(uuid.uuid4())])
    clock.advance(wait)
    definition = response_definition("/activities/{activity_id}", "get", 200)
    assert definition == "Activity"
    body = assert_valid(definition, client.get(f"/activities/{activity_id}"), 200)
    assert body["state"] == state


def test_activity_list_body(client: httpx.Client, sim: ConstantContactSimulator, clock: ManualClock) -> None:
    for _ in range(3):
        create_activity(client, [str(uuid.uuid4())])
        clock.advance(ACTIVITY_SECONDS / 3)
    definition = response_definition("/activities", "get", 200)
    assert definition == "Activities"
    paged = assert_valid(definition, client.get("/activities", params={"limit": 2}), 200)
    assert len(paged["activities"]) == 2 and "next" in paged["_links"]
    assert_valid(definition, client.get("/activities", params={"state": "completed"}), 200)


def test_privileges_body(client: httpx.Client) -> None:
    definition = response_definition("/account/user/privileges", "get", 200)
    assert definition == "UserPrivilegesResource"
    body = assert_valid(definition, client.get("/account/user/privileges"), 200)
    assert {"privilege_id", "privilege_name"} <= set(body[0])


# ---------------------------------------------------------------- error bodies


def _queued_429(client: httpx.Client, sim: ConstantContactSimulator) -> httpx.Response:
    sim.max_queued_activities = 0
    return client.post("/activities/contacts_tags_delete", json={"tag_ids": [str(uuid.uuid4())]})


def _server_error(client: httpx.Client, sim: ConstantContactSimulator) -> httpx.Response:
    sim.faults.error_rate = 1.0
    return client.get("/contact_tags")


def _forbidden(client: httpx.Client, sim: ConstantContactSimulator) -> httpx.Response:
    sim.privileges.remove("contacts:write")
    return client.post("/contact_tags", json={"name": "Nope"})


ARRAY_ERRORS: dict[str, tuple[int, Callable[[httpx.Client, ConstantContactSimulator], httpx.Response]]] = {
    "bad limit": (400, lambda c, s: c.get("/contact_tags", params={"limit": 0})),
    "too many ids": (400, lambda c, s: c.post("/activities/contacts_tags_delete",
                                              json={"tag_ids": [str(uuid.uuid4()) for _ in range(501)]})),
    "missing privilege": (403, _forbidden),
    "unknown tag": (404, lambda c, s: c.get(f"/contact_tags/{uuid.uuid4()}")),
    "unknown activity": (404, lambda c, s: c.get(f"/activities/{uuid.uuid4()}")),
    "unknown path": (404, lambda c, s: c.get("/nothing/here")),
    "wrong method": (405, lambda c, s: c.patch("/contact_tags")),
    "duplicate name": (409, lambda c, s: c.post("/contact_tags", json={"name": s.tags()[0]["name"]})),
    "wrong content type": (415, lambda c, s: c.post("/contact_tags", content=b"{}",
                                                    headers={"Content-Type": "text/plain"})),
    "queued activities": (429, _queued_429),
    "server error": (500, _server_error),
}


@pytest.mark.parametrize("case", list(ARRAY_ERRORS))
def test_array_form_error_bodies(case: str, client: httpx.Client, sim: ConstantContactSimulator) -> None:
    status, provoke = ARRAY_ERRORS[case]
    response = provoke(client, sim)
    if case == "server error":
        status = response.status_code if response.status_code in (500, 503) else status
    body = assert_valid("APIErrorSchema", response, status)
    assert body and {"error_key", "error_message"} <= set(body[0])


def test_single_object_error_bodies(sim: ConstantContactSimulator, client: httpx.Client) -> None:
    unauthorized = httpx.get(sim.base_url + "/contact_tags")
    assert assert_valid("AuthorizationErrorSchema", unauthorized, 401) == {
        "error_key": "unauthorized", "error_message": "Unauthorized"}
    # The spec defines only the 401 object; the documented rate-limit bodies have the same shape.
    sim.faults.throttle_burst = 1
    assert assert_valid("AuthorizationErrorSchema", client.get("/contact_tags"), 429)["error_key"] == "throttled"
    sim.exhaust_quota()
    assert assert_valid("AuthorizationErrorSchema", client.get("/contact_tags"), 429)["error_key"] == "quota_exceeded"


# ---------------------------------------------------------------- the validator itself


WRONG_PAYLOADS: list[tuple[str, object]] = [
    ("Tag", {"tag_id": "123", "name": "not a uuid id"}),
    ("Tag", {"tag_id": str(uuid.uuid4()), "created_at": "25/04/2019 11:08"}),
    ("Tag", {"name": 7}),
    ("Tags", {"tags": {"tag_id": str(uuid.uuid4())}}),
    ("Tags", {"tags": [{"contacts_count": "12"}]}),
    ("Tags", {"_links": {"next": {"href": 5}}}),
    ("ActivityTagging", {"state": "initialized"}),
    ("ActivityTagging", {"activity_id": "a", "state": "failed", "activity_errors": [{"message": "x"}]}),
    ("ActivityGeneric", {"activity_id": "a", "state": "failed", "activity_errors": ["x"]}),
    ("Activity", {"activity_id": "not-a-uuid", "state": "completed"}),
    ("Activity", {"percent_done": 99.5}),
    ("Activities", {"activities": [{"status": {"items_total_count": "all"}}]}),
    ("APIErrorSchema", {"error_key": "unauthorized", "error_message": "Unauthorized"}),
    ("AuthorizationErrorSchema", [{"error_key": "unauthorized"}]),
    ("UserPrivilegesResource", {"privilege_name": "contacts:write"}),
    ("TagIdList500Limit", {"tag_ids": [str(uuid.uuid4()) for _ in range(501)]}),
    ("TagIdList500Limit", {"tag_ids": ["not-a-uuid"]}),
    ("Contacts", {"contacts": [{"contact_id": "not-a-uuid"}]}),
    ("Contacts", {"contacts": [{"taggings": [str(uuid.uuid4()) for _ in range(51)]}]}),
    ("Contacts", {"contacts": [{"email_address": {"permission_to_send": "implicit"}}]}),
    ("Contacts", {"contacts_count": "3"}),
    ("TagAddRemoveContacts", {"tag_ids": [str(uuid.uuid4())]}),
    ("TagAddRemoveContacts", {"source": {"contact_ids": [str(uuid.uuid4()) for _ in range(501)]},
                              "tag_ids": [str(uuid.uuid4())]}),
    ("TagAddRemoveContacts", {"source": {"contact_ids": [str(uuid.uuid4())]},
                              "tag_ids": [str(uuid.uuid4()) for _ in range(51)]}),
    ("TagPost", {"tag_source": "x"}),
]


@pytest.mark.parametrize(("definition", "payload"), WRONG_PAYLOADS)
def test_validator_rejects_wrong_payloads(definition: str, payload: object) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate_against_spec(definition, payload)


def test_validator_refuses_unknown_definitions() -> None:
    with pytest.raises(KeyError):
        validate_against_spec("NoSuchDefinition", {})


REQUEST_BODIES: list[tuple[object, bool]] = [
    ({"tag_ids": [str(uuid.uuid4())]}, True),
    ({"tag_ids": [str(uuid.uuid4()) for _ in range(500)]}, True),
    ({"tag_ids": [str(uuid.uuid4()) for _ in range(501)]}, False),
    ({"tag_ids": ["0000-not-a-uuid"]}, False),
    ({"tag_ids": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}, False),
    ({"tag_ids": [42]}, False),
    ({}, False),
]


@pytest.mark.parametrize(("body", "valid"), REQUEST_BODIES)
def test_simulator_accepts_exactly_the_spec_valid_delete_bodies(body: object, valid: bool,
                                                                client: httpx.Client) -> None:
    definition = request_body_definition("/activities/contacts_tags_delete", "post")
    try:
        validate_against_spec(definition, body)
        spec_says = True
    except jsonschema.ValidationError:
        spec_says = False
    answer = client.post("/activities/contacts_tags_delete", json=body)
    assert spec_says is valid
    assert answer.status_code == (201 if valid else 400)


def test_in_repo_spec_is_the_shared_reference_copy() -> None:
    if not SHARED_SPEC_PATH.exists():
        pytest.skip("the shared reference folder is not next to the repository")
    assert SPEC_PATH.read_bytes() == SHARED_SPEC_PATH.read_bytes()


# ---------------------------------------------------------------- contacts and taggings (Undo)


def seed_contacts(sim: ConstantContactSimulator) -> str:
    tag = sim.add_tag("Contract contacts")
    for status in ("active", "unsubscribed", "temp_hold", "pending_confirmation", "not_set"):
        sim.add_contacts(tag, 1, status=status)
    sim.delete_contact(sim.add_contacts(tag, 1)[0])
    sim.tag_contacts([sim.add_tag("Second")], sorted(sim.contacts_with_tag(tag))[:2])
    return tag


def test_contacts_list_bodies(client: httpx.Client, sim: ConstantContactSimulator) -> None:
    tag = seed_contacts(sim)
    definition = response_definition("/contacts", "get", 200)
    assert definition == "Contacts"
    params = {"tags": tag, "status": "all", "include": "taggings", "limit": 4, "include_count": "true"}
    first = assert_valid(definition, client.get("/contacts", params=params), 200)
    assert len(first["contacts"]) == 4 and first["contacts_count"] == 6 and "next" in first["_links"]
    rest = assert_valid(definition, client.get(first["_links"]["next"]["href"].removeprefix("/v3")), 200)
    assert "_links" not in rest and any("deleted_at" in c for c in rest["contacts"])
    include = next(p for p in load_spec()["paths"]["/contacts"]["get"]["parameters"] if p["name"] == "include")
    every_include = ",".join(include["enum"])
    assert_valid(definition, client.get("/contacts", params={"include": every_include}), 200)


def test_taggings_add_bodies_in_every_state(client: httpx.Client, sim: ConstantContactSimulator,
                                            clock: ManualClock) -> None:
    tag = seed_contacts(sim)
    target = sim.add_tag("Target")
    body = {"source": {"contact_ids": sorted(sim.contacts_with_tag(tag)) + [str(uuid.uuid4())]}, "tag_ids": [target]}
    validate_against_spec(request_body_definition("/activities/contacts_taggings_add", "post"), body)
    definition = response_definition("/activities/contacts_taggings_add", "post", 201)
    assert definition == "ActivityTagging"
    created = assert_valid(definition, client.post("/activities/contacts_taggings_add", json=body), 201)
    activity_id = created["activity_id"]
    states = []
    for wait in (0.0, ACTIVITY_SECONDS / 2, ACTIVITY_SECONDS):
        clock.advance(wait)
        states.append(assert_valid("Activity", client.get(f"/activities/{activity_id}"), 200))
    assert [s["state"] for s in states] == ["initialized", "processing", "completed"]
    assert len(states[-1]["activity_errors"]) == 2, "the deleted and the unknown contact"


TAGGING_BODIES: list[tuple[object, bool]] = [
    # (a body, with "T" standing for a known tag and "C" for a contact; whether the spec allows it)
    ({"source": {"contact_ids": ["C"]}, "tag_ids": ["T"]}, True),
    ({"source": {"contact_ids": ["C", "C", "C"]}, "tag_ids": ["T", "T"]}, True),
    ({"source": {"contact_ids": ["C"]}, "tag_ids": ["T"], "extra": 1}, True),
    ({"source": {"contact_ids": ["C"] * 500}, "tag_ids": ["T"] * 50}, True),
    ({"source": {"contact_ids": ["C"] * 501}, "tag_ids": ["T"]}, False),
    ({"source": {"contact_ids": ["C"]}, "tag_ids": ["T"] * 51}, False),
    ({"source": {"contact_ids": ["C"]}}, False),
    ({"tag_ids": ["T"]}, False),
    ({"source": {"contact_ids": "C"}, "tag_ids": ["T"]}, False),
    ({"source": {"contact_ids": ["nope"]}, "tag_ids": ["T"]}, False),
    ({"source": {"contact_ids": ["C"]}, "tag_ids": ["nope"]}, False),
    ({"source": {"contact_ids": ["C"]}, "tag_ids": [42]}, False),
    ({"source": {"contact_ids": ["C"]}, "tag_ids": "T"}, False),
]


def _filled(template: object, names: dict[str, str]) -> object:
    if isinstance(template, dict):
        return {key: _filled(value, names) for key, value in template.items()}
    if isinstance(template, list):
        return [_filled(value, names) for value in template]
    return names.get(template, template) if isinstance(template, str) else template


@pytest.mark.parametrize(("template", "valid"), TAGGING_BODIES)
def test_simulator_accepts_exactly_the_spec_valid_contact_tagging_bodies(
        template: object, valid: bool, client: httpx.Client, sim: ConstantContactSimulator) -> None:
    """Bodies with the contact_ids source (the one the simulator models; it answers 400 to the others)."""
    body = _filled(template, {"T": sim.add_tag("Known"), "C": sim.add_contacts(None, 1)[0]})
    try:
        validate_against_spec(request_body_definition("/activities/contacts_taggings_add", "post"), body)
        spec_says = True
    except jsonschema.ValidationError:
        spec_says = False
    answer = client.post("/activities/contacts_taggings_add", json=body)
    assert spec_says is valid
    assert answer.status_code == (201 if valid else 400), answer.text


def validate_query(path: str, method: str, query: dict[str, str]) -> None:
    """The query parameters of one request, checked against the operation's declared parameters.

    ``cursor`` is allowed although the spec declares it only for /contact_tags: paging takes it from
    the next link. ``tags`` uses ``maximum: 50`` and ``format: uuid`` for a comma-separated list."""
    declared = {p["name"]: p for p in load_spec()["paths"][path][method]["parameters"] if p.get("in") == "query"}
    uuid_re = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
    for name, value in query.items():
        if name == "cursor":
            continue
        assert name in declared, f"{name} is not a query parameter of {method.upper()} {path}"
        param = declared[name]
        values = value.split(",") if param.get("format") in ("csv", "uuid") else [value]
        if "enum" in param:
            assert all(v in param["enum"] for v in values), f"{name}={value}"
        if param.get("format") == "uuid":
            assert len(values) <= param.get("maximum", 1) and all(uuid_re.match(v) for v in values), name
        if param["type"] == "integer":
            assert value.isdigit() and param.get("minimum", 0) <= int(value) <= param.get("maximum", 10**9), name
        if param["type"] == "boolean":
            assert value in ("true", "false"), name


def test_query_validator_catches_wrong_queries() -> None:
    for query in ({"status": "gone"}, {"tags": ",".join(str(uuid.uuid4()) for _ in range(51))},
                  {"tags": "ABC"}, {"limit": "501"}, {"include": "taggings,everything"}, {"colour": "red"}):
        with pytest.raises(AssertionError):
            validate_query("/contacts", "get", query)


def test_client_requests_validate_against_the_spec(sim: ConstantContactSimulator, clock: ManualClock) -> None:
    tag = seed_contacts(sim)
    with ConstantContactClient(api_url=sim.base_url, auth_url=sim.auth_url, client_id=sim.client_id,
                               client_secret=sim.client_secret, token_store=MemoryTokenStore(),
                               initial_refresh_token=sim.issue_refresh_token(), requests_per_second=1_000,
                               clock=clock) as cc:
        tagged = [c.contact_id for page in cc.contacts_tagged([tag, str(uuid.uuid4())], page_size=4) for c in page]
        created, _ = cc.create_tag("Restored", tag_source="deletetags-bot")
        cc.create_tag("restored")
        cc.create_taggings_add([created.tag_id], tagged)
    sent = [r for r in sim.request_log if r.path.startswith("/v3")]
    listings = [r for r in sent if r.path == "/v3/contacts"]
    assert len(listings) == 2
    for request in listings:
        validate_query("/contacts", "get", request.query)
    posts = {r.path: r.json for r in sent if r.method == "POST"}
    validate_against_spec(request_body_definition("/contact_tags", "post"), posts["/v3/contact_tags"])
    validate_against_spec(request_body_definition("/activities/contacts_taggings_add", "post"),
                          posts["/v3/activities/contacts_taggings_add"])
