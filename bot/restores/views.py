"""How a restore is shown: its preview, the card's opening lines and its summary. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.core.blocks import (
    ACTION_CANCEL,
    ACTION_CONFIRM,
    REASON_SHOWN,
    SECTION_LIMIT,
    Block,
    button,
    context,
    count,
    duration,
    escape,
    section,
)
from bot.core.mrkdwn import TEXT_LIMIT, fit_lines
from bot.restores.plan import PROBLEM_SHOWN, RestoreChoice, RestoreSummary, RestoreTag, TagResult

LISTED = 15
OUTCOME_LINES = {
    "completed": ":white_check_mark: Finished: every tag was restored.",
    "completed_with_errors": ":warning: Finished with errors: some tags were not restored (see the thread).",
    "failed": ":x: Failed: no tag was restored (see the thread).",
}
CANNOT_GIVE_BACK = ("A restore cannot give back the old tag ids (Constant Contact gives each tag a new one), "
                    "contacts deleted since the snapshot, or taggings added between the snapshot and the deletion.")


@dataclass(frozen=True)
class RestorePreview:
    request_id: int
    restores_request: int
    choice: RestoreChoice
    reason: str | None
    quota_line: str | None = None  # the Constant Contact calls it will take (bot.core.quota.estimate_line)


def _tag_line(tag: RestoreTag) -> str:
    into = (f" → into the existing tag `{escape(tag.existing_tag_id)}` (the name is taken now)"
            if tag.existing_tag_id else "")
    deleted = f" ({tag.deleted_then:,} of them deleted then)" if tag.deleted_then else ""
    return (f"• *{escape(tag.name)}* (was `{escape(tag.old_tag_id)}`) — "
            f"{count(tag.contacts, 'contact')} to tag again{deleted}{into}")


def _tag_lines(tags: Sequence[RestoreTag]) -> str:
    ordered = sorted(tags, key=lambda t: (-t.contacts, t.name.casefold()))
    lines = [_tag_line(t) for t in ordered[:LISTED]]
    return fit_lines(lines, SECTION_LIMIT, lambda left: f"…and {left:,} smaller", len(ordered) - len(lines))


def preview_blocks(view: RestorePreview) -> list[Block]:
    choice = view.choice
    existing = sum(1 for t in choice.tags if t.existing_tag_id)
    header = (f"*Preview of restore #{view.request_id}* (undoing request #{view.restores_request}): "
              f"{count(len(choice.tags), 'tag')} to recreate under {'its' if len(choice.tags) == 1 else 'their'} "
              f"old name{'s' if len(choice.tags) != 1 else ''}, tagging *{count(choice.contacts, 'contact')}* again "
              f"({count(choice.activity_count, 'Constant Contact activity')}).")
    out = [section(header), section(_tag_lines(choice.tags))]
    notes = []
    if existing:
        notes.append(f":link: {count(existing, 'name')} now belong{'s' if existing == 1 else ''} to an existing tag: "
                     "those contacts are tagged with that tag, and no second tag of the name is made.")
    deleted_then = sum(t.deleted_then for t in choice.tags)
    if deleted_then:
        notes.append(f":ghost: {count(deleted_then, 'contact')} were already deleted when the snapshot was taken.")
    notes.append("Contacts deleted since the snapshot cannot be tagged again: Constant Contact skips them, "
                 "and the summary counts them.")
    notes += [f":heavy_minus_sign: *{escape(s.name)}* `{escape(s.old_tag_id)}` is not restored: {s.why}."
              for s in choice.skipped[:10]]
    if choice.unmatched:
        shown = ", ".join(f"`{escape(u, 100)}`" for u in choice.unmatched[:10])
        notes.append(f":grey_question: Not a tag of request #{view.restores_request}: {shown}")
    out.append(section(fit_lines(notes, SECTION_LIMIT, lambda left: f"…and {left:,} more")))
    reason = f"Reason: {escape(view.reason, REASON_SHOWN)}" if view.reason else "You will be asked for a reason."
    out.append(context(f"{reason} Nothing changes until an approver approves. {CANNOT_GIVE_BACK}"))
    if view.quota_line:
        out.append(context(view.quota_line))
    value = str(view.request_id)
    out.append({"type": "actions", "block_id": f"preview:{view.request_id}", "elements": [
        button("Request approval", ACTION_CONFIRM, value, "primary"), button("Cancel", ACTION_CANCEL, value)]})
    return out


def preview_text(view: RestorePreview) -> str:
    return (f"Preview of restore #{view.request_id}: {count(len(view.choice.tags), 'tag')} of request "
            f"#{view.restores_request} to restore.")


def nothing_to_restore(restores_request: int, choice: RestoreChoice) -> str:
    lines = [f"Nothing to restore from request #{restores_request}."]
    lines += [f"• *{escape(s.name)}* `{escape(s.old_tag_id)}`: {s.why}." for s in choice.skipped[:10]]
    if choice.unmatched:
        lines.append("Not a tag of that request: " + ", ".join(f"`{escape(u, 100)}`" for u in choice.unmatched[:10]))
    return "\n".join(lines)


def card_intro(request_id: int, restores_request: int, requester_id: str, tags: int, contacts: int,
               activities: int) -> str:
    return (f"*Restore request #{request_id}* from <@{requester_id}>: undoes request #{restores_request}\n"
            f"{count(tags, 'tag')} to recreate, *{count(contacts, 'contact')}* to tag again "
            f"({count(activities, 'activity')}).")


def card_title(request_id: int, restores_request: int, requester_id: str) -> str:
    return f"Restore request #{request_id} (undoes #{restores_request}) from <@{requester_id}>"


def _result_line(result: TagResult) -> str:
    where = ("into the existing tag" if result.into == "existing" else "as a new tag")
    tag = f" {where} `{escape(result.tag_id)}`" if result.tag_id else ""
    deleted = f", {result.deleted:,} deleted" if result.deleted else ""
    problem = f" — :warning: {escape(result.problem, PROBLEM_SHOWN)}" if result.problem else ""
    return f"• *{escape(result.name)}*{tag}: {count(result.tagged, 'contact')} tagged again{deleted}{problem}"


def summary_text(requester_id: str, request_id: int, restores_request: int, summary: RestoreSummary,
                 approvers: Sequence[str], started: datetime | None, finished: datetime | None,
                 deleted_then: int = 0) -> str:
    """`deleted_then`: contacts already deleted when the snapshot was taken (sent all the same: one
    may have been brought back since)."""
    icon = {"completed": ":white_check_mark:", "completed_with_errors": ":warning:"}.get(summary.final_state, ":x:")
    total = len(summary.results)
    lines = [f"{icon} <@{requester_id}> restore #{request_id} (undoing request #{restores_request}) is finished: "
             f"*{summary.restored:,} of {total:,} tags restored*, {count(summary.tagged, 'contact')} tagged again "
             f"in {count(summary.activity_count, 'activity')} ({duration(started, finished)})."]
    if summary.deleted:
        then = min(deleted_then, summary.deleted)
        since = summary.deleted - then
        parts = ([f"{since:,} deleted since the snapshot"] if since else []) + (
            [f"{then:,} already deleted when it was taken"] if then else [])
        lines.append(f":ghost: {count(summary.deleted, 'contact')} could not be tagged because "
                     f"{'it is' if summary.deleted == 1 else 'they are'} deleted ({', '.join(parts)}).")
    approved = ["Approved by " + ", ".join(f"<@{a}>" for a in approvers) + "."] if approvers else []
    ordered = sorted(summary.results, key=lambda r: (r.problem is None, r.name.casefold()))
    room = TEXT_LIMIT - len("\n".join([*lines, *approved])) - 1
    lines.append(fit_lines([_result_line(r) for r in ordered[:LISTED]], room,
                           lambda left: f"…and {left:,} more", len(ordered) - min(len(ordered), LISTED)))
    return "\n".join([*lines, *approved])


def undo_hint(request_id: int, retention_days: int) -> str:
    """The last line of a deletion's summary when its snapshot was recorded."""
    return (f":leftwards_arrow_with_hook: To undo: `/deletetags restore {request_id}` (optionally with some of its "
            f"tag names in quotes). The snapshot is kept {retention_days} days.")
