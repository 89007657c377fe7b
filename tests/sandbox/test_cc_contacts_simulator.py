"""The simulator's contacts: GET /v3/contacts, taggings, and the contacts_taggings_add activity (loopback HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.world import ManualClock
from tests.manual_simulator import ACTIVITY_SECONDS, clock, sim  # noqa: F401 - fixtures



@pytest.fixture
def client(sim: ConstantContactSimulator) -> Iterator[httpx.Client]:
    token = httpx.post(sim.auth_url + "/token", auth=(sim.client_id, sim.client_secret), data={
        "grant_type": "refresh_token", "refresh_token": sim.issue_refresh_token()}).json()["access_token"]
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as http:
        yield http


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [contact["contact_id"] for contact in response.json()["contacts"]]


def add_taggings(client: httpx.Client, tag_ids: list[str], contact_ids: list[str]) -> httpx.Response:
    return client.post("/activities/contacts_taggings_add",
                       json={"source": {"contact_ids": contact_ids}, "tag_ids": tag_ids})


def finished(client: httpx.Client, clock: ManualClock, activity_id: str) -> dict[str, Any]:
    clock.advance(ACTIVITY_SECONDS + 1)
    body = client.get(f"/activities/{activity_id}").json()
    return body


# ---------------------------------------------------------------- listing


def test_status_filter_and_how_a_status_shows(sim: ConstantContactSimulator, client: httpx.Client) -> None:
    tag = sim.add_tag("Members")
    other = sim.add_tag("Other")
    active = sim.add_contacts(tag, 2)
    unsubscribed = sim.add_contacts(tag, 1, status="unsubscribed")
    held = sim.add_contacts(tag, 1, status="temp_hold")
    gone = sim.add_contacts(tag, 1)
    sim.delete_contact(gone[0])
    sim.add_contacts(other, 3)  # carries only the other tag: never listed
    live = active + unsubscribed + held

    assert ids(client.get("/contacts", params={"tags": tag})) == live, "deleted ones are left out by default"
    assert ids(client.get("/contacts", params={"tags": tag, "status": "all"})) == live + gone
    assert ids(client.get("/contacts", params={"tags": tag, "status": "deleted"})) == gone
    assert ids(client.get("/contacts", params={"tags": tag, "status": "active,unsubscribed"})) == active + unsubscribed

    everyone = client.get("/contacts", params={"tags": tag, "status": "all", "include": "taggings"}).json()
    by_id = {c["contact_id"]: c for c in everyone["contacts"]}
    assert by_id[active[0]]["email_address"]["permission_to_send"] == "implicit"
    assert "deleted_at" not in by_id[active[0]]
    assert by_id[held[0]]["email_address"]["permission_to_send"] == "temp_hold"
    deleted = by_id[gone[0]]
    assert deleted["deleted_at"] and deleted["email_address"]["opt_out_source"] == "Account"
    assert all(c["taggings"] == [tag] for c in everyone["contacts"]), "a deleted contact keeps its taggings"
    plain = client.get("/contacts", params={"tags": tag}).json()["contacts"]
    assert all("taggings" not in c for c in plain), "taggings only with include=taggings"
    assert sim.contact(gone[0])["status"] == "deleted"


def test_a_contact_with_two_asked_tags_is_listed_once(sim: ConstantContactSimulator, client: httpx.Client) -> None:
    first, second = sim.add_tag("First"), sim.add_tag("Second")
    both = sim.add_contacts(first, 1)
    sim.tag_contacts([second], both)
    only_second = sim.add_contacts(second, 1)
    body = client.get("/contacts", params={"tags": f"{first},{second}", "include": "taggings"}).json()
    assert [(c["contact_id"], c["taggings"]) for c in body["contacts"]] == [
        (both[0], [first, second]), (only_second[0], [second])]


@pytest.mark.parametrize(("params", "why"), [
    ({"tags": ",".join(str(uuid.uuid4()) for _ in range(51))}, "more than 50 tags"),
    ({"tags": "not-a-uuid"}, "a tag id that is not a uuid"),
    ({"status": "gone"}, "an unknown status"),
    ({"include": "taggings,secrets"}, "an unknown include"),
    ({"limit": "501"}, "a page over 500"),
    ({"cursor": "%%%"}, "a cursor that is not ours"),
])
def test_listing_refuses_bad_parameters(params: dict[str, str], why: str, client: httpx.Client) -> None:
    response = client.get("/contacts", params=params)
    assert response.status_code == 400, why
    assert response.json()[0]["error_key"] == "contacts.api.validation.error"


def test_cursor_paging_across_pages_of_500(sim: ConstantContactSimulator, client: httpx.Client) -> None:
    tag = sim.add_tag("Everyone 2020", 1_203)  # anonymous contacts, made real by the first listing
    sim.add_contacts(sim.add_tag("Bystanders"), 600)
    sim.add_contacts(tag, 1, status="deleted")
    params = {"tags": tag, "status": "all", "include": "taggings", "limit": "500"}
    first = client.get("/contacts", params=params | {"include_count": "true"}).json()
    assert len(first["contacts"]) == 500 and first["contacts_count"] == 1_204
    href = first["_links"]["next"]["href"]
    assert href.startswith("/v3/contacts?cursor=") and set(parse_qs(urlsplit(href).query)) == {"cursor"}
    # The next link alone is enough (the cursor carries the filters) ...
    second = client.get(href.removeprefix("/v3")).json()
    # ... and so is the cursor sent along with the same filters.
    cursor = parse_qs(urlsplit(second["_links"]["next"]["href"]).query)["cursor"][0]
    third = client.get("/contacts", params=params | {"cursor": cursor}).json()
    assert (len(second["contacts"]), len(third["contacts"])) == (500, 204)
    assert "_links" not in third
    pages = [first, second, third]
    assert all(c["taggings"] == [tag] for page in pages for c in page["contacts"]), "filters kept across pages"
    seen = [c["contact_id"] for page in pages for c in page["contacts"]]
    assert len(set(seen)) == 1_204 and set(seen) == sim.contacts_with_tag(tag)
    assert len(client.get("/contacts", params={"tags": tag}).json()["contacts"]) == 50, "the default page is 50"


def test_add_tag_counts_stay_what_they_were_and_follow_real_taggings(sim: ConstantContactSimulator,
                                                                     client: httpx.Client) -> None:
    tag = sim.add_tag("Promo", 7)
    count = lambda: sim.tags()[0]["contacts_count"]  # noqa: E731
    assert count() == 7
    members = sorted(sim.contacts_with_tag(tag))
    assert len(members) == 7 and count() == 7
    sim.delete_contact(members[0])
    assert count() == 6, "deleted contacts do not count"
    sim.add_contacts(tag, 2)
    assert count() == 8
    sim.change_tag(tag, contacts_count=3)
    assert count() == 3 and len(ids(client.get("/contacts", params={"tags": tag}))) == 3
    sim.change_tag(tag, contacts_count=10)
    assert count() == 10 and len(ids(client.get("/contacts", params={"tags": tag}))) == 10


def test_tags_with_counts_make_no_contacts_until_something_looks_at_them() -> None:
    lazy = ConstantContactSimulator()
    tags = [lazy.add_tag(f"Tag {n}", 1_000) for n in range(1_000)]  # a million contacts, were they made eagerly
    assert lazy.tags()[-1]["contacts_count"] == 1_000
    assert not lazy._account.contacts
    assert len(lazy.contacts_with_tag(tags[0])) == 1_000 == len(lazy._account.contacts)


# ---------------------------------------------------------------- tag deletion removes taggings


def test_deleting_a_tag_removes_it_from_every_contact(sim: ConstantContactSimulator, client: httpx.Client,
                                                      clock: ManualClock) -> None:
    doomed, kept = sim.add_tag("Doomed"), sim.add_tag("Kept")
    contacts = sim.add_contacts(doomed, 3)
    sim.tag_contacts([kept], contacts[:2])
    sim.delete_contact(contacts[2])
    activity = client.post("/activities/contacts_tags_delete", json={"tag_ids": [doomed]}).json()
    clock.advance(1.0)
    assert sim.contacts_with_tag(doomed) == set(contacts), "nothing changes before the activity ends"
    assert finished(client, clock, activity["activity_id"])["state"] == "completed"
    assert [sim.contact(c)["taggings"] for c in contacts] == [[kept], [kept], []]
    assert ids(client.get("/contacts", params={"tags": doomed, "status": "all"})) == []
    single = sim.add_tag("Single")
    sim.tag_contacts([single], contacts[:1])
    client.delete(f"/contact_tags/{single}")
    finished(client, clock, client.get("/activities").json()["activities"][0]["activity_id"])
    assert sim.contact(contacts[0])["taggings"] == [kept]


# ---------------------------------------------------------------- contacts_taggings_add


def test_taggings_add_tags_the_contacts_when_the_activity_ends(sim: ConstantContactSimulator, client: httpx.Client,
                                                               clock: ManualClock) -> None:
    tag = client.post("/contact_tags", json={"name": "Restored", "tag_source": "deletetags-bot"}).json()["tag_id"]
    old = sim.add_tag("Old")
    live = sim.add_contacts(old, 2)
    gone = sim.add_contacts(old, 1)
    sim.delete_contact(gone[0])
    ghost = str(uuid.uuid4())
    used = sim.quota_used_today()
    created = add_taggings(client, [tag], live + gone + [ghost])
    assert created.status_code == 201, created.text
    assert sim.quota_used_today() == used + 1, "counted like every other call"
    body = created.json()
    assert (body["state"], body["percent_done"], body["status"]) == ("initialized", 1, {})
    assert sim.contacts_with_tag(tag) == set()
    final = finished(client, clock, body["activity_id"])
    assert final["state"] == "completed"
    assert final["status"] == {"items_total_count": 4, "items_completed_count": 2}
    assert final["activity_errors"] == [f"Contact {gone[0]} is deleted and cannot be tagged",
                                        f"Contact {ghost} not found"]
    assert sim.contacts_with_tag(tag) == set(live)
    assert ids(client.get("/contacts", params={"tags": tag, "status": "all"})) == live
    assert sim.activities()[-1]["tagged_contact_ids"] == live


def test_taggings_add_stops_at_50_tags_a_contact(sim: ConstantContactSimulator, client: httpx.Client,
                                                 clock: ManualClock) -> None:
    tags = [sim.add_tag(f"T{n}") for n in range(51)]
    full, roomy = sim.add_contacts(None, 2)
    sim.tag_contacts(tags[:50], [full])
    with pytest.raises(ValueError):
        sim.tag_contacts([tags[50]], [full])
    activity_id = add_taggings(client, [tags[50]], [full, roomy]).json()["activity_id"]
    final = finished(client, clock, activity_id)
    assert final["activity_errors"] == [f"Contact {full} already has 50 tags; tag {tags[50]} was not added"]
    assert final["status"]["items_completed_count"] == 1
    assert sim.contacts_with_tag(tags[50]) == {roomy}


@pytest.mark.parametrize(("body", "status"), [
    ({"source": {"contact_ids": ["C"]}, "tag_ids": ["T"] * 51}, 400),
    ({"source": {"contact_ids": ["C"] * 501}, "tag_ids": ["T"]}, 400),
    ({"source": {"contact_ids": ["C"]}, "tag_ids": []}, 400),
    ({"source": {"contact_ids": ["nope"]}, "tag_ids": ["T"]}, 400),
    ({"tag_ids": ["T"]}, 400),
    ({"source": {"contact_ids": ["C"], "list_ids": ["C"]}, "tag_ids": ["T"]}, 400),
    ({"source": {"list_ids": ["C"]}, "tag_ids": ["T"]}, 400),
    ({"source": {"contact_ids": ["C"]}, "tag_ids": ["UNKNOWN"]}, 404),
    ({"source": {"contact_ids": ["C"] * 500}, "tag_ids": ["T"] * 50}, 201),
])
def test_taggings_add_validates_its_request(body: dict[str, Any], status: int, sim: ConstantContactSimulator,
                                            client: httpx.Client) -> None:
    tag, contact = sim.add_tag("Known"), str(uuid.uuid4())
    names = {"T": tag, "C": contact, "UNKNOWN": str(uuid.uuid4())}
    filled = {key: ({k: [names.get(v, v) for v in vs] for k, vs in value.items()} if isinstance(value, dict)
                    else [names.get(v, v) for v in value]) for key, value in body.items()}
    response = client.post("/activities/contacts_taggings_add", json=filled)
    assert response.status_code == status, response.text
    assert len(sim.activities()) == (1 if status == 201 else 0)


def test_taggings_add_faults(sim: ConstantContactSimulator, client: httpx.Client, clock: ManualClock) -> None:
    tag = sim.add_tag("Faulty")
    contacts = sim.add_contacts(None, 4)
    sim.faults.fail_activities = True
    failed = finished(client, clock, add_taggings(client, [tag], contacts).json()["activity_id"])
    assert failed["state"] == "failed" and failed["activity_errors"]
    assert sim.contacts_with_tag(tag) == set(contacts[:2]), "a failed activity tags only part"
    sim.faults.fail_activities = False
    sim.faults.fail_after_commit = 1
    lost = add_taggings(client, [tag], contacts)
    assert lost.status_code == 503 and len(sim.activities()) == 2, "taken, but the answer is lost"
    sim.faults.error_rate = 1.0
    assert client.get("/contacts", params={"tags": tag}).status_code in (500, 503)
    assert add_taggings(client, [tag], contacts).status_code in (500, 503)
    assert len(sim.activities()) == 2
    sim.faults.error_rate = 0.0
    sim.max_queued_activities = 0
    assert add_taggings(client, [tag], contacts).status_code == 429
    sim.privileges.remove("contacts:write")
    assert add_taggings(client, [tag], contacts).status_code == 403


def test_create_tag_conflicts_case_insensitively(sim: ConstantContactSimulator, client: httpx.Client) -> None:
    assert client.post("/contact_tags", json={"name": "VIP 2024"}).status_code == 201
    conflict = client.post("/contact_tags", json={"name": "vip 2024", "tag_source": "x"})
    assert conflict.status_code == 409 and conflict.json()[0]["error_key"] == "contacts.api.conflict"
    assert [t["name"] for t in sim.tags()] == ["VIP 2024"]
