"""The snapshot taken before each deletion: complete before the delete POST, in the thread as CSV,
and the same from `deletetags-bot snapshot N --csv` and the database."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest

from bot.sandbox.world import World
from tests.e2e.helpers import (
    FAST_POLLS,
    add_tags,
    finished,
    preview_for,
    refreshed,
    request_to_card,
    three_tags_on_373_contacts,
)

DELETE_PATH = "/activities/contacts_tags_delete"


@pytest.fixture
def world_env() -> dict[str, str]:
    return dict(FAST_POLLS)


def thread(world: World, card) -> list:  # noqa: ANN001
    world.flush_slack()
    return world.slack.thread(card.channel, card.ts)[1:]


def cli_csv(world: World, request_id: int) -> str:
    env = {**os.environ, "DELETETAGS_DB": world.env["DELETETAGS_DB"]}
    done = subprocess.run([sys.executable, "-m", "bot", "snapshot", str(request_id), "--csv"], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_a_deletion_is_snapshotted_first_and_the_csv_the_cli_and_the_database_agree(world: World) -> None:
    ids, carriers = three_tags_on_373_contacts(world, one_deleted=True)
    request_id, card = request_to_card(world, " ".join(ids) + " reason: spring clean-up")
    assert "Snapshot first" in str(refreshed(world, card).blocks)
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, request_id) == "completed"

    posts = thread(world, card)
    texts = [m.text for m in posts]
    snapshot_at = next(i for i, t in enumerate(texts) if "snapshot recorded" in t)
    submitted_at = next(i for i, t in enumerate(texts) if t.startswith(":rocket:"))
    assert snapshot_at < submitted_at
    assert "3 tags, 373 contacts" in texts[snapshot_at]

    recorded: dict[str, set[str]] = {}
    for row in world.store.snapshot_taggings(request_id):
        recorded.setdefault(row.tag_id, set()).add(row.contact_id)
    assert recorded == carriers  # exactly the contacts that carried each tag, the deleted one included
    statuses = {row.contact_status for row in world.store.snapshot_taggings(request_id)}
    assert {"active", "unsubscribed", "deleted"} <= statuses

    shared = next(m for m in posts if m.files)
    in_thread = world.slack.file_content(shared.files[0]["id"]).decode()
    assert in_thread == cli_csv(world, request_id)
    rows = list(csv.DictReader(io.StringIO(in_thread)))
    assert len(rows) == sum(len(c) for c in carriers.values())
    assert {r["old_tag_id"] for r in rows} == set(ids)
    assert not any(world.cc.tag_exists(t) for t in ids)


def test_a_request_over_the_snapshot_limit_says_so_and_is_deleted_without_one(world: World) -> None:
    world.bot.services.snapshots.max_contacts = 100
    (tag,) = add_tags(world, ("Huge import", 250))
    world.driver.slash_command(world.people.requester, world.channel, f"{tag} reason: too big to keep")
    preview = preview_for(world, world.people.requester)
    assert "No snapshot" in str(preview.blocks) and "more than `SNAPSHOT_MAX_CONTACTS`" in str(preview.blocks)
    world.driver.click(world.people.requester, preview, "Request approval")
    request = world.store.requests()[0]
    card = world.driver.wait_for(lambda: next((m for m in world.slack.messages(world.channel)
                                               if f"#{request.id} " in m.text), None), what="card")
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, request.id) == "completed"
    assert world.store.snapshots(request.id) == []
    assert not [m for m in thread(world, card) if m.files or "snapshot recorded" in m.text]


def test_a_snapshot_that_cannot_be_recorded_stops_its_batch_before_the_delete_post(world: World) -> None:
    ids, _ = three_tags_on_373_contacts(world, one_deleted=True)
    request_id, card = request_to_card(world, " ".join(ids) + " reason: spring clean-up")
    world.cc.faults.refused_paths = ("/v3/contacts",)  # the listing a snapshot needs is refused; tags are not
    world.driver.click(world.people.approver, card, "Approve")
    assert finished(world, request_id) == "failed"
    assert not [r for r in list(world.cc.request_log) if r.method == "POST" and r.path.endswith(DELETE_PATH)]
    assert all(world.cc.tag_exists(t) for t in ids)
    assert world.store.snapshot(request_id, 0).state == "recording"
    summary = world.driver.wait_for(lambda: next((m.text for m in thread(world, card) if "is finished" in m.text), None),
                                    what="the summary")
    assert "*0 of 3 tags deleted*" in summary and "no snapshot could be recorded" in summary


def test_the_card_shows_a_long_snapshot_as_its_own_phase(world: World) -> None:
    (tag,) = add_tags(world, ("Big list", 0))
    world.cc.add_contacts(tag, 3_000)
    request_id, card = request_to_card(world, f"{tag} reason: spring clean-up")
    world.cc.faults.latency_seconds = 0.5  # six slow pages of 500 contacts
    world.driver.click(world.people.approver, card, "Approve")
    phase = world.driver.wait_for(
        lambda: next((t for t in [str(refreshed(world, card).blocks)] if "recording the snapshot" in t), None),
        what="the snapshot phase on the card", timeout=15)
    assert "of ~3,000 taggings" in phase
    world.cc.faults.latency_seconds = 0
    assert finished(world, request_id) == "completed"
    assert "recording the snapshot" not in str(refreshed(world, card).blocks)
