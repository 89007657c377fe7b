"""Snapshot listings of different tags run a few at once; when one fails, those not begun never begin.

A narrow unit test: the Constant Contact client is a fake here (the real one is exercised end to end in
tests/e2e/test_snapshots.py); the store is a real SQLite file."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import Settings
from bot.constant_contact import ContactTagging, PermissionDenied
from bot.snapshots import LISTINGS_AT_ONCE, Snapshots
from bot.store import NewTag, Store

TAGS = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(500)]  # ten listings of 50


class SlowThenRefused:
    """The listing of the first group is refused at once; the others answer a page slowly."""

    def __init__(self) -> None:
        self.listings_begun: list[str] = []
        self._lock = threading.Lock()

    def contacts_tagged(self, tag_ids: list[str]) -> Iterator[list[ContactTagging]]:
        with self._lock:
            self.listings_begun.append(tag_ids[0])
        if tag_ids[0] == TAGS[0]:
            raise PermissionDenied("This application may not use this endpoint.")
        time.sleep(0.3)
        yield [ContactTagging("c0ffee00-0000-4000-8000-000000000001", "active", (tag_ids[0],))]


def test_a_refused_listing_stops_the_snapshot_and_the_listings_not_begun(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.db")
    request_id = store.create_request(requester_id="U1", team_id="T1", origin_channel="C1", source="text",
                                      reason="r", required_approvals=1, tags=[NewTag(t, f"t{t}", 1) for t in TAGS])
    store.create_batches(request_id, [TAGS])
    cc = SlowThenRefused()
    snapshots = Snapshots(store, lambda: cc, Settings(), lambda: datetime.now(UTC))
    with pytest.raises(PermissionDenied):
        snapshots.ensure(store.batches(request_id)[0])
    assert len(cc.listings_begun) <= LISTINGS_AT_ONCE < 10
    assert store.snapshot(request_id, 0).state == "recording"  # never complete: nothing may be deleted
    store.close()
