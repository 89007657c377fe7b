"""Recording a batch's snapshot before its delete POST, and keeping snapshots only as long as promised.

The runner asks `ensure(batch)` right before each delete POST; only a snapshot that is complete and
committed lets the POST go. A recording interrupted by a crash is started again from scratch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.core.snapshot_report import SnapshotPlan
from bot.store import Batch, Request, Snapshot, Store

log = logging.getLogger(__name__)

TAGS_PER_LISTING = 50  # Constant Contact's limit on the `tags` filter of GET /contacts
# The pages of one listing follow a cursor, one after the other; listings of different groups of tags
# do not, so a few run at once and keep the client's 4/s busy while each waits for its answer.
LISTINGS_AT_ONCE = 3


def groups(tag_ids: Sequence[str], size: int = TAGS_PER_LISTING) -> Iterator[list[str]]:
    for start in range(0, len(tag_ids), size):
        yield list(tag_ids[start:start + size])


class Snapshots:
    def __init__(self, store: Store, cc: Callable[[], Any], settings: Settings,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.cc = cc
        self.enabled = settings.snapshots
        self.max_contacts = settings.snapshot_max_contacts
        self.retention = timedelta(days=settings.snapshot_retention_days)
        self.clock = clock
        # Called with the request id after each page recorded (the runtime refreshes the card, whose
        # progress shows a snapshot being recorded as its own phase).
        self.on_page: Callable[[int], None] = lambda request_id: None

    def plan(self, total_contacts: int) -> SnapshotPlan:
        return SnapshotPlan(self.enabled, total_contacts, self.max_contacts, self.retention.days)

    def wanted(self, request: Request) -> bool:
        return self.plan(request.total_contacts).will_snapshot

    def ensure(self, batch: Batch) -> Snapshot | None:
        """The batch's complete snapshot, recording it now if need be; None when the request is not
        snapshotted. Raises what the Constant Contact client raises: then nothing may be deleted yet."""
        request = self.store.get_request(batch.request_id)
        if request is None or not self.wanted(request):
            return None
        done = self.store.snapshot(batch.request_id, batch.batch_no)
        if done is not None and done.state == "complete":
            return done
        return self._record(batch)

    def _record(self, batch: Batch) -> Snapshot:
        tag_ids = self.store.batch_tag_ids(batch.request_id, batch.batch_no)
        self.store.start_snapshot(batch.request_id, batch.batch_no)
        listings = list(groups(tag_ids))
        failed = threading.Event()  # one listing failed: the others stop at their next page
        pool = ThreadPoolExecutor(max_workers=min(LISTINGS_AT_ONCE, len(listings)) or 1, thread_name_prefix="snapshot")
        try:
            for done in as_completed([pool.submit(self._list, batch, group, failed) for group in listings]):
                done.result()  # the first failure is raised: the snapshot stays incomplete
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # listings not begun never begin
        snapshot = self.store.complete_snapshot(batch.request_id, batch.batch_no)
        log.info("snapshot recorded", extra={"request_id": str(batch.request_id), "outcome": "snapshot"})
        return snapshot

    def _list(self, batch: Batch, tag_ids: list[str], failed: threading.Event) -> None:
        if failed.is_set():
            return
        try:
            for page in self.cc().contacts_tagged(tag_ids):  # each contact's tag_ids: only the asked ones
                if failed.is_set():
                    return
                rows = [(tag_id, c.contact_id, c.status) for c in page for tag_id in c.tag_ids]
                self.store.add_snapshot_taggings(batch.request_id, batch.batch_no, rows)
                self.on_page(batch.request_id)
        except BaseException:
            failed.set()
            raise

    def purge_expired(self) -> list[int]:
        """Run daily: snapshots older than SNAPSHOT_RETENTION_DAYS are dropped (and audited)."""
        purged = self.store.purge_snapshots(self.clock() - self.retention)
        if purged:
            log.info("snapshots purged", extra={"outcome": f"{len(purged)} purged"})
        return purged
