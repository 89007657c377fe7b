"""The Constant Contact calls of a restore batch: the tag made once, then its contacts tagged again.

A restore batch tags up to 500 contacts of one old tag. Before its POST the tag to tag them with
must exist: it is created under the old name once, and a name that is taken (409) means that tag is
used. A crash between the creation and its record is harmless for the same reason: the resumed
batch asks again, gets 409, and finds the tag it made. Tagging a contact that already carries the
tag changes nothing, so a batch whose POST may have landed is simply sent again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bot.constant_contact import Activity
from bot.store import Batch, Request, Store


class RestoreWork:
    def __init__(self, store: Store, cc: Callable[[], Any]) -> None:
        self.store = store
        self.cc = cc
        # Batches of one tag may be submitted by several threads after a restart: one makes the tag.
        self._making = threading.Lock()

    def target_tag(self, request: Request, batch: Batch) -> str:
        """The id of the tag this batch's contacts are tagged with, made on first need."""
        assert batch.tag_id is not None
        with self._making:
            return self._target_tag(request, batch.tag_id)

    def _target_tag(self, request: Request, old_tag_id: str) -> str:
        row = self.store.request_tag(request.id, old_tag_id)
        assert row is not None
        if row.restored_tag_id:
            return row.restored_tag_id
        asked_before = bool(row.tag_create_sent)
        self.store.mark_tag_create_sent(request.id, row.tag_id)
        tag, created = self.cc().create_tag(row.name)
        taken_at_preview = row.tag_id in (request.unresolved.get("into_existing") or {})
        # A 409 after our own earlier attempt (a crash, or a lost answer) is the tag we made.
        into = "new" if created or (asked_before and not taken_at_preview) else "existing"
        tag_id = tag.tag_id.strip().lower()
        self.store.set_restored_tag(request.id, row.tag_id, tag_id, into)
        return tag_id

    def contact_ids(self, restores_request: int, batch: Batch) -> list[str]:
        """The batch's contacts; ValueError when the snapshot no longer holds them all (purged)."""
        assert batch.tag_id is not None
        contacts = self.store.snapshot_contacts(restores_request, batch.tag_id, batch.first_contact or 0,
                                                batch.contact_count or 0)
        if len(contacts) != (batch.contact_count or 0):
            raise ValueError(f"the snapshot of request #{restores_request} no longer holds these contacts "
                             "(it was purged), so they were not tagged")
        return contacts

    def post(self, batch: Batch) -> Activity:
        """Queue the tagging of this batch's contacts (its tag was made by `target_tag`)."""
        assert batch.tag_id is not None
        request = self.store.get_request(batch.request_id)
        row = self.store.request_tag(batch.request_id, batch.tag_id)
        assert request is not None and request.restores_request is not None
        assert row is not None and row.restored_tag_id is not None
        return self.cc().create_taggings_add([row.restored_tag_id], self.contact_ids(request.restores_request, batch))
