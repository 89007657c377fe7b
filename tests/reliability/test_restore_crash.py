"""`deletetags-bot run` killed with SIGKILL during a restore: when the tag was made but its answer lost,
and when a tagging activity had just gone out. The restarted bot makes no second tag, tags every
contact of the snapshot, and the thread ends with one summary."""

from __future__ import annotations


import pytest

from bot.sandbox.world import OPS_CHANNEL, PEOPLE
from tests.reliability.test_crash_matrix import Rig, rig  # noqa: F401 - the fixture

CREATE_TAG = "/v3/contact_tags"
TAGGINGS_ADD = "/activities/contacts_taggings_add"


def posts(rig: Rig, path_end: str, status: int | None = None) -> int:
    return sum(1 for r in list(rig.cc.request_log)
               if r.method == "POST" and r.path.endswith(path_end) and (status is None or r.status == status))


def deleted_request(rig: Rig) -> tuple[int, dict[str, set[str]]]:
    tags = [rig.cc.add_tag(f"Restore crash {i}", 0) for i in range(3)]
    for tag_id, contacts in zip(tags, (1_200, 30, 5), strict=True):
        rig.cc.add_contacts(tag_id, contacts)
    carriers = {t["name"]: rig.cc.contacts_with_tag(t["tag_id"]) for t in rig.cc.tags()}
    request_id, card = rig.to_card(tags)
    rig.driver.click(PEOPLE.approver, card, "Approve")
    rig.wait("SELECT 1 FROM requests WHERE id = ? AND state = 'completed'", "the deletion", 60, request_id)
    return request_id, carriers


def restore_card(rig: Rig, request_id: int):  # noqa: ANN201
    seen = len(rig.slack.ephemerals)
    rig.driver.slash_command(PEOPLE.requester, OPS_CHANNEL, f"restore {request_id} reason: crash test")
    preview = rig.driver.wait_for(lambda: next((e for e in rig.slack.ephemerals[seen:]
                                                if "Request approval" in str(e.blocks)), None), what="preview")
    rig.driver.click(PEOPLE.requester, preview, "Request approval")
    card = rig.driver.wait_for(lambda: next((m for m in rig.slack.messages(OPS_CHANNEL)
                                             if "Restore request #" in m.text), None), what="the restore card")
    return int(card.text.split("Restore request #", 1)[1].split(" ", 1)[0]), card


@pytest.mark.parametrize("kill_when", ["tag made, answer lost", "tagging sent"])
def test_a_kill_during_a_restore_makes_no_second_tag_and_tags_every_contact(rig: Rig, kill_when: str) -> None:
    request_id, carriers = deleted_request(rig)
    restore_id, card = restore_card(rig, request_id)
    if kill_when == "tag made, answer lost":
        rig.cc.faults.fail_after_commit = 1  # the first tag is made, and its answer is a 503
        rig.driver.click(PEOPLE.approver, card, "Approve")
        rig.driver.wait_for(lambda: posts(rig, CREATE_TAG, 503), timeout=20, what="the lost answer")
    else:
        rig.driver.click(PEOPLE.approver, card, "Approve")
        rig.driver.wait_for(lambda: posts(rig, TAGGINGS_ADD), timeout=20, what="a tagging activity")
    rig.bot.kill()
    rig.cc.faults.fail_after_commit = 0
    rig.restart()

    rig.wait("SELECT 1 FROM requests WHERE id = ? AND state = 'completed'", "the restore", 90, restore_id)
    now = {t["name"]: rig.cc.contacts_with_tag(t["tag_id"]) for t in rig.cc.tags()}
    assert now == carriers  # one tag per name, each on exactly the contacts it had
    into = rig.query("SELECT restored_into FROM request_tags WHERE request_id = ?", restore_id)
    assert {row[0] for row in into} == {"new"}  # the tag made before the kill is known as ours
    rig.driver.wait_for(lambda: any("is finished" in m.text for m in rig.slack.thread(card.channel, card.ts)),
                        timeout=20, what="the summary")
    replies = rig.slack.thread(card.channel, card.ts)[1:]
    assert sum("is finished" in m.text for m in replies) == 1
    assert "*3 of 3 tags restored*, 1,235 contacts tagged again" in next(m.text for m in replies if "is finished" in m.text)
