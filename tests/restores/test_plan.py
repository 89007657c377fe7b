"""What a restore does and did, decided without Constant Contact or SQLite."""

from __future__ import annotations

from dataclasses import dataclass

from bot.restores import plan
from bot.restores.command import RestoreCommand, parse_restore

OLD = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(1, 5)]
CONTACT = "c0ffee00-0000-4000-8000-00000000000{}"


@dataclass
class RequestTag:
    tag_id: str
    name: str
    batch_no: int | None
    outcome: str | None = "deleted"
    restored_tag_id: str | None = None
    restored_into: str | None = None


@dataclass
class AccountTag:
    tag_id: str
    name: str


@dataclass
class Batch:
    tag_id: str | None
    state: str
    contact_count: int | None
    errors: tuple[str, ...] = ()
    activity_id: str | None = "act"


def test_every_deleted_tag_is_chosen_with_its_recorded_contacts_and_a_taken_name_goes_into_that_tag() -> None:
    tags = [RequestTag(OLD[0], "Spring", 0), RequestTag(OLD[1], "Webinar", 0), RequestTag(OLD[2], "Kept", 1)]
    account = [AccountTag("NEW-ID", "WEBINAR"), AccountTag(OLD[2], "Kept")]
    choice = plan.choose(tags, {OLD[0]: (120, 3), OLD[1]: (7, 0)}, {0, 1}, account)
    assert [(t.name, t.contacts, t.deleted_then, t.existing_tag_id) for t in choice.tags] == [
        ("Spring", 120, 3, None), ("Webinar", 7, 0, "new-id")]
    assert [(s.name, s.why) for s in choice.skipped] == [("Kept", "it still exists: it was not deleted")]
    assert choice.contacts == 127 and choice.activity_count == 2


def test_only_the_tags_asked_for_and_what_matched_none_is_named() -> None:
    tags = [RequestTag(OLD[0], "Spring", 0), RequestTag(OLD[1], "Webinar", 1)]
    choice = plan.choose(tags, {}, {0}, [], wanted_ids=[OLD[3]], wanted_names=["spring", "Webinar"],
                         restored_before={})
    assert [t.name for t in choice.tags] == ["Spring"]
    assert [(s.name, s.why) for s in choice.skipped] == [("Webinar", "no snapshot was recorded before it was deleted")]
    assert choice.unmatched == (OLD[3],)
    again = plan.choose(tags, {}, {0, 1}, [], restored_before={OLD[0]: 7})
    assert [s.why for s in again.skipped] == ["restore #7 already restored it"]


def test_contacts_are_split_into_activities_of_500_and_an_empty_tag_still_gets_one_batch() -> None:
    assert plan.chunks([("a", 1_201), ("b", 0), ("c", 500)]) == [
        ("a", 0, 500), ("a", 500, 500), ("a", 1_000, 201), ("b", 0, 0), ("c", 0, 500)]


def test_deleted_contacts_are_expected_errors_and_anything_else_is_a_problem() -> None:
    errors = (f"Contact {CONTACT.format(1)} is deleted and cannot be tagged",
              f"contact {CONTACT.format(2).upper()} was DELETED", "Tag x not found")
    assert plan.deleted_contacts(errors) == {CONTACT.format(1), CONTACT.format(2)}
    assert plan.unexpected_errors(errors) == ["Tag x not found"]


def test_a_summary_counts_tagged_and_deleted_contacts_per_tag_and_names_what_went_wrong() -> None:
    tags = [RequestTag(OLD[0], "Spring", 0, restored_tag_id="n1", restored_into="new"),
            RequestTag(OLD[1], "Webinar", 2, restored_tag_id="n2", restored_into="existing"),
            RequestTag(OLD[2], "Lost", 3)]
    batches = [Batch(OLD[0], "completed", 500), Batch(OLD[0], "completed", 20,
                                                        (f"Contact {CONTACT.format(1)} is deleted",)),
               Batch(OLD[1], "failed", 9, ("Internal error",)),
               Batch(OLD[2], "failed", 3, ("the tag could not be recreated: 403",), activity_id=None)]
    summary = plan.summarise(tags, batches)
    spring, webinar, lost = summary.results
    assert (spring.tagged, spring.deleted, spring.problem) == (519, 1, None)
    assert webinar.problem == "activity ended failed: Internal error" and webinar.into == "existing"
    assert lost.problem == "not sent: the tag could not be recreated: 403"
    assert (summary.restored, summary.not_restored, summary.tagged, summary.activity_count) == (1, 2, 519, 3)
    assert summary.final_state == "completed_with_errors"
    assert summary.outcomes[OLD[0]] == ("restored", None)
    assert plan.summarise(tags[2:], batches[3:]).final_state == "failed"


def test_a_contact_refused_for_another_reason_costs_only_that_contact() -> None:
    tags = [RequestTag(OLD[0], "Spring", 0, restored_tag_id="n1", restored_into="new")]
    full = f"Contact {CONTACT.format(3)} already has 50 tags; tag n1 was not added"
    (result,) = plan.summarise(tags, [Batch(OLD[0], "completed", 500, (full,))]).results
    assert (result.tagged, result.deleted, result.problem) == (499, 0, f"1 contact not tagged: {full}")
    assert plan.untagged_contacts([full]) == {CONTACT.format(3): full} and plan.batch_errors([full]) == []


def test_why_a_tag_was_not_restored_is_kept_as_escaped_mrkdwn() -> None:
    tags = [RequestTag(OLD[0], "Spring", 0, restored_tag_id="n1", restored_into="new")]
    crafted = f"Contact {CONTACT.format(4)} not tagged: <!channel> <https://evil.example|click> *now*"
    (outcome, why), = plan.summarise(tags, [Batch(OLD[0], "completed", 2, (crafted,))]).outcomes.values()
    assert outcome == "not_restored"
    assert "&lt;!channel&gt;" in why and "<" not in why and "*" not in why


def test_the_restore_command_reads_a_request_number_then_names_ids_and_a_reason() -> None:
    assert parse_restore("#12") == RestoreCommand(12)
    assert parse_restore(f'12 "Spring Promo" {OLD[0].upper()} reason: oops') == RestoreCommand(
        12, (OLD[0],), ("Spring Promo",), "oops")
    assert "Which request?" in str(parse_restore(None))
    assert "is not a request number" in str(parse_restore("twelve"))
    assert "give tag names in quotes" in str(parse_restore("12 Spring"))
    assert "not used" in str(parse_restore('12 "Spring" 12ab-'))
