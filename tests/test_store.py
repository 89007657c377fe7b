import stat
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database, Migrations

from bot import store as store_module
from bot.core.lifecycle import BatchState, RequestState
from bot.sandbox.world import ShiftableClock
from bot.store import Credentials, NewTag, Store

MIGRATIONS = ["0001_initial", "0002_changes_since_approval", "0003_quota_ledger", "0004_request_rule", "0005_snapshots", "0006_restores"]

TAGS = [NewTag("0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a01", "Spring Promo", 120),
        NewTag("1c8d6e9f-3b0a-4e49-8d62-8a2a2c4f1b12", "Old List", 7, "name")]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "bot.db")
    yield s
    s.close()


def new_request(store: Store, requester: str = "U0REQ") -> int:
    return store.create_request(requester_id=requester, team_id="T1", origin_channel="C1", source="text",
                                reason="cleanup", required_approvals=1, tags=TAGS)


def test_database_file_is_private_and_migrated(tmp_path: Path) -> None:
    store = Store(tmp_path / "private.db")
    mode = stat.S_IMODE((tmp_path / "private.db").stat().st_mode)
    assert mode == 0o600
    assert store.applied_migrations() == MIGRATIONS
    assert store.pending_migrations() == []
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()
    # Reopening applies nothing twice.
    again = Store(tmp_path / "private.db")
    assert again.applied_migrations() == MIGRATIONS
    again.close()


def test_a_database_from_before_the_approval_check_is_upgraded_in_place(tmp_path: Path) -> None:
    first_only = Migrations("deletetags")
    first_only(name="0001_initial")(store_module._initial)
    old = Database(tmp_path / "old.db")
    first_only.apply(old)
    old["requests"].insert({"id": 7, "state": "running", "requester_id": "U1", "created_at": "2026-01-01T00:00:00+00:00",
                            "updated_at": "2026-01-01T00:00:00+00:00"})
    old.close()
    upgraded = Store(tmp_path / "old.db")
    assert upgraded.applied_migrations() == MIGRATIONS
    assert upgraded.get_request(7).changes_since_approval == ()
    upgraded.close()


def test_create_request_records_tags_and_audit_event(store: Store) -> None:
    request_id = new_request(store)
    request = store.get_request(request_id)
    assert request.state == "draft" and request.tag_count == 2 and request.total_contacts == 127
    assert [t.name for t in store.request_tags(request_id)] == ["Spring Promo", "Old List"]
    assert [e.kind for e in store.events(request_id)] == ["request.created"]


def test_transition_is_compare_and_set(store: Store) -> None:
    request_id = new_request(store)
    assert store.transition(request_id, RequestState.AWAITING_APPROVAL, actor="U0REQ", kind="request.confirmed")
    # From awaiting_approval, a second confirm loses: nothing changes, no event.
    assert not store.transition(request_id, RequestState.AWAITING_APPROVAL, actor="U0REQ", kind="request.confirmed")
    # Draft cannot jump to running.
    assert not store.transition(request_id, RequestState.RUNNING, actor="x", kind="bad")
    assert [e.kind for e in store.events(request_id)] == ["request.created", "request.confirmed"]


def test_twenty_threads_racing_one_transition_have_one_winner(store: Store) -> None:
    request_id = new_request(store)
    store.transition(request_id, RequestState.AWAITING_APPROVAL, actor="U0REQ", kind="request.confirmed")
    barrier = threading.Barrier(20)
    wins: list[bool] = []

    def race(i: int) -> None:
        barrier.wait()
        wins.append(store.transition(request_id, RequestState.APPROVED, actor=f"U{i}", kind="request.approved"))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and len(wins) == 20
    assert len(store.events(request_id, kind_prefix="request.approved")) == 1
    assert store.get_request(request_id).state == "approved"


def test_audit_log_is_append_only(store: Store) -> None:
    request_id = new_request(store)
    with pytest.raises(Exception, match="append-only"):
        store.db.execute("UPDATE events SET kind = 'forged' WHERE request_id = ?", [request_id])
    with pytest.raises(Exception, match="append-only"):
        store.db.execute("DELETE FROM events")
    assert [e.kind for e in store.events(request_id)] == ["request.created"]


def test_approvals_are_unique_per_user_and_only_while_awaiting(store: Store) -> None:
    request_id = new_request(store)
    assert store.add_approval(request_id, "U1") == (False, ())  # still a draft
    store.transition(request_id, RequestState.AWAITING_APPROVAL, actor="U0REQ", kind="request.confirmed")
    assert store.add_approval(request_id, "U1") == (True, ("U1",))
    assert store.add_approval(request_id, "U1") == (False, ("U1",))
    added, users = store.add_approval(request_id, "U2")
    assert added and set(users) == {"U1", "U2"}


def test_batches_are_laid_out_once_and_transition_by_cas(store: Store) -> None:
    request_id = new_request(store)
    store.create_batches(request_id, [[TAGS[0].tag_id], [TAGS[1].tag_id]])
    store.create_batches(request_id, [[TAGS[0].tag_id, TAGS[1].tag_id]])
    batches = store.batches(request_id)
    assert [(b.batch_no, b.tag_count, b.state) for b in batches] == [(0, 1, "pending"), (1, 1, "pending")]
    assert store.batch_tag_ids(request_id, 1) == [TAGS[1].tag_id]
    first = batches[0]
    assert store.transition_batch(first.id, ["pending"], BatchState.SUBMITTING, kind="batch.submitting")
    assert not store.transition_batch(first.id, ["pending"], BatchState.SUBMITTING, kind="batch.submitting")
    assert store.transition_batch(first.id, ["submitting"], BatchState.INITIALIZED, activity_id="a-1",
                                  errors=["x"], kind="batch.submitted")
    again = store.batch(first.id)
    assert again.activity_id == "a-1" and again.errors == ("x",)
    assert [b.id for b in store.running_batches()] == [first.id]


def test_event_dedup_and_notices(store: Store) -> None:
    assert store.first_sighting("Ev1") and not store.first_sighting("Ev1")
    request_id = new_request(store)
    assert store.claim_notice(request_id, "summary") and not store.claim_notice(request_id, "summary")
    store.release_notice(request_id, "summary")
    assert store.claim_notice(request_id, "summary")
    store.notice_posted(request_id, "summary", "123.456")
    store.release_notice(request_id, "summary")  # a posted notice is never released
    assert store.notices(request_id) == {"summary": "posted"}


def seen_event_ids(store: Store) -> list[str]:
    return [row[0] for row in store.db.execute("SELECT event_id FROM seen_events ORDER BY event_id")]


def test_seen_events_older_than_a_day_are_pruned_and_recent_ones_still_deduplicate(tmp_path: Path) -> None:
    clock = ShiftableClock()
    store = Store(tmp_path / "seen.db", clock=clock)
    try:
        assert store.first_sighting("EvOLD")
        clock.advance(hours=23)
        assert store.first_sighting("EvRECENT")
        clock.advance(hours=2)  # EvOLD is 25 h old: Slack stopped retrying it long ago
        assert store.prune_seen_events() == 1
        assert seen_event_ids(store) == ["EvRECENT"]
        assert not store.first_sighting("EvRECENT")
    finally:
        store.close()


def test_first_sighting_prunes_now_and_then_without_being_asked(tmp_path: Path) -> None:
    clock = ShiftableClock()
    store = Store(tmp_path / "seen.db", clock=clock)
    try:
        old = [f"EvOLD{i}" for i in range(Store.SEEN_EVENTS_PRUNED_EVERY)]
        assert all(store.first_sighting(event_id) for event_id in old)
        clock.advance(hours=25)
        assert store.first_sighting("EvNEW")  # the 501st sighting prunes first
        assert seen_event_ids(store) == ["EvNEW"]
        assert not store.first_sighting("EvNEW")
    finally:
        store.close()


def test_credentials_round_trip(store: Store) -> None:
    assert store.load_credentials() is None
    store.save_credentials(Credentials("r1", "a1", 1.5))
    store.save_credentials(Credentials("r2", "a2", 2.5))
    assert store.load_credentials() == Credentials("r2", "a2", 2.5)


def test_events_filter_by_actor_and_date(store: Store) -> None:
    request_id = new_request(store, requester="U0AAA")
    store.add_event(request_id, "U0BBB", "note", {"x": 1})
    assert [e.kind for e in store.events(actor="U0BBB")] == ["note"]
    first = store.events()[0].at
    assert store.events(since=first) and not store.events(until=first)


def test_requests_are_counted_by_state(store: Store) -> None:
    new_request(store)
    second = new_request(store)
    store.transition(second, RequestState.AWAITING_APPROVAL, actor="U0REQ", kind="request.confirmed")
    assert store.count_requests(["draft"]) == 1
    assert store.count_requests(["draft", "awaiting_approval"]) == 2
    assert store.count_requests(["running"]) == 0
