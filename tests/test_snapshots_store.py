"""Snapshots in SQLite: recorded in parts, complete only when committed, started again after a crash,
purged after their retention, and shown as CSV and as a table."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest

from bot.sandbox.world import ShiftableClock
from bot.core.snapshot_report import SnapshotPlan, milestone_text, snapshot_csv, snapshot_table
from bot.core.lifecycle import RequestState
from bot.store import NewTag, Store

T1, T2 = "0b9c1e2a-5f3d-4c1b-9a7e-1234567890ab", "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "bot.db", clock=ShiftableClock())
    yield s
    s.close()


def request_with_tags(store: Store) -> int:
    return store.create_request(requester_id="U1", team_id="T1", origin_channel="C1", source="text", reason="r",
                                required_approvals=1, tags=[NewTag(T1, "=HYPERLINK(evil)", 2), NewTag(T2, "Spring", 1)])


def test_a_snapshot_is_complete_only_when_committed_and_counts_contacts_once(store: Store) -> None:
    request_id = request_with_tags(store)
    store.start_snapshot(request_id, 0)
    store.add_snapshot_taggings(request_id, 0, [(T1, "c1", "active"), (T1, "c2", "unsubscribed")])
    assert store.snapshot(request_id, 0).state == "recording"
    store.add_snapshot_taggings(request_id, 0, [(T2, "c1", "active")])
    done = store.complete_snapshot(request_id, 0)
    assert (done.state, done.contacts, done.taggings) == ("complete", 2, 3)
    assert [e.detail for e in store.events(request_id=request_id, kind_prefix="snapshot.")] == [
        {"batch": 0, "contacts": 2, "taggings": 3}]


def test_a_recording_interrupted_by_a_crash_starts_again_from_nothing(store: Store) -> None:
    request_id = request_with_tags(store)
    store.start_snapshot(request_id, 0)
    store.add_snapshot_taggings(request_id, 0, [(T1, "c1", "active"), (T1, "stale", "active")])
    store.start_snapshot(request_id, 0)  # after the restart
    store.add_snapshot_taggings(request_id, 0, [(T1, "c1", "active")])
    assert store.complete_snapshot(request_id, 0).taggings == 1
    assert [t.contact_id for t in store.snapshot_taggings(request_id)] == ["c1"]


def test_snapshots_older_than_the_retention_are_purged_and_audited(store: Store) -> None:
    request_id = request_with_tags(store)
    store.start_snapshot(request_id, 0)
    store.add_snapshot_taggings(request_id, 0, [(T1, "c1", "active")])
    store.complete_snapshot(request_id, 0)
    clock = store.clock
    assert store.purge_snapshots(clock() - timedelta(days=90)) == []
    clock.advance(days=91)
    assert store.purge_snapshots(clock() - timedelta(days=90)) == [request_id]
    assert list(store.snapshot_taggings(request_id)) == [] and store.snapshot(request_id, 0).state == "purged"
    assert store.events(request_id=request_id, kind_prefix="snapshot.purged")


def test_csv_and_table_show_the_same_taggings_and_the_csv_is_formula_safe(store: Store) -> None:
    request_id = request_with_tags(store)
    store.start_snapshot(request_id, 0)
    store.add_snapshot_taggings(request_id, 0, [(T1, "c2", "unsubscribed"), (T1, "c1", "active"), (T2, "c1", "active")])
    store.complete_snapshot(request_id, 0)
    rows = list(store.snapshot_taggings(request_id))
    parsed = list(csv.reader(io.StringIO(snapshot_csv(rows))))
    assert parsed[0] == ["tag_name", "old_tag_id", "contact_id", "contact_status"]
    assert parsed[1:] == [["'=HYPERLINK(evil)", T1, "c1", "active"], ["'=HYPERLINK(evil)", T1, "c2", "unsubscribed"],
                          ["Spring", T2, "c1", "active"]]
    lines = snapshot_table(rows).splitlines()
    assert lines[1].split() == ["=HYPERLINK(evil)", T1, "2", "active", "1,", "unsubscribed", "1"]
    assert lines[2].split() == ["Spring", T2, "1", "active", "1"]
    assert len(lines) == 3


def test_the_plan_says_why_there_is_no_snapshot() -> None:
    assert "Snapshot first" in SnapshotPlan(True, 373, 500_000, 90).line()
    assert "kept 90 days" in SnapshotPlan(True, 373, 500_000, 90).line()
    too_many = SnapshotPlan(True, 1_200_000, 500_000, 90)
    assert not too_many.will_snapshot and "1.2 million contacts, more than `SNAPSHOT_MAX_CONTACTS`" in too_many.line()
    assert "turned off" in SnapshotPlan(False, 3, 500_000, 90).line()
    assert milestone_text(0, 1, 3, 373, 380) == (
        ":camera_with_flash: snapshot recorded before deleting: 3 tags, 373 contacts (380 taggings).")


def test_a_snapshot_a_restore_is_reading_is_kept_until_that_restore_ends(store: Store) -> None:
    request_id = request_with_tags(store)
    store.start_snapshot(request_id, 0)
    store.add_snapshot_taggings(request_id, 0, [(T1, f"c{i:03}", "active") for i in range(7)])
    store.complete_snapshot(request_id, 0)
    restore_id = store.create_request(requester_id="U1", team_id="T1", origin_channel="C1", source="restore",
                                      reason="undo", required_approvals=1, tags=[NewTag(T1, "Spring", 7, "snapshot")],
                                      restores_request=request_id)
    store.create_restore_batches(restore_id, [(T1, 0, 5), (T1, 5, 2)])
    assert [(b.tag_id, b.first_contact, b.contact_count) for b in store.batches(restore_id)] == [(T1, 0, 5), (T1, 5, 2)]
    assert store.snapshot_contacts(request_id, T1, 5, 2) == ["c005", "c006"]
    assert store.snapshot_counts(request_id) == {T1: (7, 0)}
    store.clock.advance(days=91)
    assert store.purge_snapshots(store.clock() - timedelta(days=90)) == []  # the restore is a draft
    store.transition(restore_id, RequestState.CANCELLED, actor="U1", kind="request.cancelled")
    assert store.purge_snapshots(store.clock() - timedelta(days=90)) == [request_id]
