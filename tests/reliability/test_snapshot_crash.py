"""`deletetags-bot run` killed with SIGKILL while it records a snapshot, and just after: no delete POST
ever goes out before its batch's snapshot is committed, the restarted bot records it again from
nothing, deletes once, and the thread ends with one summary and one CSV."""

from __future__ import annotations

import csv
import io
import time

import pytest

from tests.reliability.test_crash_matrix import Rig, rig  # noqa: F401 - the fixture

DELETE_PATH = "/activities/contacts_tags_delete"


def delete_posts(rig: Rig) -> int:
    return sum(1 for r in list(rig.cc.request_log) if r.method == "POST" and r.path.endswith(DELETE_PATH))


def snapshot_state(rig: Rig, request_id: int) -> str | None:
    rows = rig.query("SELECT state FROM snapshots WHERE request_id = ?", request_id)
    return rows[0][0] if rows else None


@pytest.mark.parametrize("kill_when", ["recording", "complete"])
def test_a_kill_around_the_snapshot_never_lets_a_delete_post_go_first(rig: Rig, kill_when: str) -> None:
    tags = [rig.cc.add_tag(f"Snapshot crash {i}", 0) for i in range(3)]
    for tag_id, contacts in zip(tags, (700, 900, 400), strict=True):  # 2,000 contacts: pages take a while
        rig.cc.add_contacts(tag_id, contacts)
    carriers = {t: set(rig.cc.contacts_with_tag(t)) for t in tags}
    request_id, card = rig.to_card(tags)
    rig.cc.faults.latency_seconds = 0.3  # each page of the listing answers slowly
    assert rig.driver.click("U0ALEX", card, "Approve").status == 200

    rig.driver.wait_for(lambda: snapshot_state(rig, request_id) == kill_when, timeout=30,
                        what=f"the snapshot {kill_when}")
    if kill_when == "recording":
        assert delete_posts(rig) == 0  # a snapshot not yet committed: nothing may have been deleted
    rig.bot.kill()
    rig.cc.faults.latency_seconds = 0
    assert delete_posts(rig) <= (0 if kill_when == "recording" else 1)
    rig.restart()

    rig.wait("SELECT 1 FROM requests WHERE id = ? AND state = 'completed'", "the request completed", 60, request_id)
    assert delete_posts(rig) == 1
    assert not any(rig.cc.tag_exists(t) for t in tags)
    recorded: dict[str, set[str]] = {}
    for tag_id, contact_id in rig.query("SELECT tag_id, contact_id FROM snapshot_taggings WHERE request_id = ?",
                                        request_id):
        recorded.setdefault(tag_id, set()).add(contact_id)
    assert recorded == carriers
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        replies = rig.slack.thread(card.channel, card.ts)[1:]
        files = [m for m in replies if m.files]
        if files and any("is finished" in m.text for m in replies):
            break
        time.sleep(0.2)
    assert sum("is finished" in m.text for m in replies) == 1
    assert len(files) == 1
    rows = list(csv.DictReader(io.StringIO(rig.slack.file_content(files[0].files[0]["id"]).decode())))
    assert len(rows) == 2_000
