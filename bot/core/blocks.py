"""Block Kit for the preview, the request card, progress, summaries and App Home. Pure.

Slack limits shape these builders: at most 50 blocks a message, 3,000 characters a section,
75 characters a button label, 2,000 a button value. Long tag lists are cut with a count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.mrkdwn import TEXT_LIMIT, fit_lines, one_line, outside_text
from bot.core.resolver import AccountTag
from bot.core.tag_changes import is_large

Block = dict[str, Any]
SECTION_LIMIT = 2900
LISTED_TAGS = 15
NAME_SHOWN = 100  # characters of a name in a list of problems
REASON_SHOWN = 2_500  # characters of a reason: with the words around it, within a section

ACTION_CONFIRM = "request_approval"
ACTION_CANCEL = "cancel_request"
ACTION_APPROVE = "approve_request"
ACTION_REJECT = "reject_request"
ACTION_SHOW_TAGS = "show_all_tags"
VIEW_NEW_REQUEST = "new_request"
VIEW_REJECT_REASON = "reject_reason"
VIEW_CONFIRM_REASON = "confirm_reason"

STATE_LABELS = {
    "draft": "Preview (not sent)",
    "awaiting_approval": "Waiting for approval",
    "approved": "Approved, starting",
    "running": "Deleting",
    "cancelled": "Cancelled",
    "rejected": "Rejected",
    "expired": "Expired",
    "completed": "Completed",
    "completed_with_errors": "Completed with errors",
    "failed": "Failed",
}


@dataclass(frozen=True)
class TagLine:
    tag_id: str
    name: str
    contacts_count: int | None


@dataclass(frozen=True)
class PreviewView:
    request_id: int
    tags: Sequence[TagLine]
    total_contacts: int
    batch_count: int
    unknown_ids: Sequence[str] = ()
    unknown_names: Sequence[str] = ()
    ambiguous: Sequence[tuple[str, Sequence[TagLine]]] = ()
    duplicates: int = 0
    junk_summary: str | None = None
    reason: str | None = None
    large_threshold: int = 0
    rule: str | None = None  # the tags were found by this rule (bot.core.rules), evaluated once, now
    account_tag_count: int | None = None  # how many tags the account had when the rule was evaluated
    quota_line: str | None = None  # the Constant Contact calls it will take (bot.core.quota.estimate_line)
    snapshot_line: str | None = None  # whether a snapshot is taken first (bot.core.snapshot_report.SnapshotPlan)


@dataclass(frozen=True)
class Progress:
    percent: int
    batches_done: int
    batch_count: int
    items_completed: int | None = None
    items_total: int | None = None
    stalled: bool = False
    # A snapshot being recorded before a batch's delete POST: (batch number, taggings so far, expected).
    snapshot: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class CardView:
    request_id: int
    state: str
    requester_id: str
    reason: str | None
    tags: Sequence[TagLine]
    total_contacts: int
    batch_count: int
    required_approvals: int
    approvals: Sequence[str] = ()
    approver_mention: str = ""
    decided_by: str | None = None
    rejection_reason: str | None = None
    expires_at: datetime | None = None
    progress: Progress | None = None
    outcome: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    large_threshold: int = 0
    changes_since_approval: Sequence[str] = ()  # plain text; shown while approvers decide again
    started: bool = False  # a batch went out before the request was stopped for approval again
    rule: str | None = None
    account_tag_count: int | None = None
    quota_line: str | None = None  # the Constant Contact calls it will take (bot.core.quota.estimate_line)
    snapshot_line: str | None = None  # whether a snapshot is taken first (bot.core.snapshot_report.SnapshotPlan)
    hold_line: str | None = None  # held for the daily quota until its reset (bot.core.quota.hold_line)
    # A restore's card (bot.restores.views) opens with its own lines and title, and runs as "Restoring".
    intro: str | None = None
    title: str | None = None
    running_label: str | None = None


def tag_lines(tags: Iterable[AccountTag]) -> list[TagLine]:
    """What the builders show of any tag: its id, name and contacts."""
    return [TagLine(t.tag_id, t.name, t.contacts_count) for t in tags]


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": one_line(text)[:150], "emoji": True}


def section(text: str) -> Block:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    return element


escape = outside_text  # the one rule for outside text (bot.core.mrkdwn), under the name callers know


def plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def count(n: int | None, noun: str) -> str:
    if n is None:
        return f"? {plural(noun)}"
    return f"{n:,} {noun if n == 1 else plural(noun)}"


def largest_first(tags: Sequence[TagLine]) -> list[TagLine]:
    """The order people read tags in: the ones that touch the most contacts first."""
    return sorted(tags, key=lambda t: (-(t.contacts_count or 0), t.name.casefold(), t.tag_id))


def is_large_tag(tag: TagLine, threshold: int) -> bool:
    return is_large(tag.contacts_count, threshold)


def tag_line(tag: TagLine, large_threshold: int = 0, old_ids: bool = False) -> str:
    flag = " :warning: *large*" if is_large_tag(tag, large_threshold) else ""
    tag_id = f"(was `{escape(tag.tag_id)}`)" if old_ids else f"`{escape(tag.tag_id)}`"
    return f"• *{escape(tag.name)}* {tag_id} — {count(tag.contacts_count, 'contact')}{flag}"


def tag_list(tags: Sequence[TagLine], limit: int = LISTED_TAGS, large_threshold: int = 0,
             old_ids: bool = False) -> str:
    """`old_ids`: the ids are of deleted tags (a restore's card)."""
    ordered = largest_first(tags)
    lines = [tag_line(t, large_threshold, old_ids) for t in ordered[:limit]]
    return fit_lines(lines, SECTION_LIMIT, lambda left: f"…and {left:,} smaller", len(ordered) - len(lines))


def large_tags_line(tags: Sequence[TagLine], threshold: int) -> str | None:
    large = sum(1 for t in tags if is_large_tag(t, threshold))
    if not large:
        return None
    return f":warning: *{count(large, 'large tag')}* ({threshold:,} contacts or more): check {'it' if large == 1 else 'them'} before approving."


def progress_bar(percent: int, width: int = 20) -> str:
    percent = max(0, min(100, percent))
    filled = round(width * percent / 100)
    return "█" * filled + "░" * (width - filled) + f" {percent}%"


# --- preview (ephemeral, to the requester only) ---------------------------------------------


def _preview_problems(view: PreviewView) -> list[str]:
    problems = []
    if view.unknown_ids:
        shown = ", ".join(f"`{escape(i, NAME_SHOWN)}`" for i in view.unknown_ids[:10])
        more = f" …and {len(view.unknown_ids) - 10:,} more" if len(view.unknown_ids) > 10 else ""
        problems.append(f":grey_question: {count(len(view.unknown_ids), 'id')} matched no tag: {shown}{more}")
    if view.unknown_names:
        shown = ", ".join(f"“{escape(n, NAME_SHOWN)}”" for n in view.unknown_names[:10])
        more = f" …and {len(view.unknown_names) - 10:,} more" if len(view.unknown_names) > 10 else ""
        problems.append(f":grey_question: {count(len(view.unknown_names), 'name')} matched no tag: {shown}{more}")
    for name, candidates in view.ambiguous[:5]:
        options = "; ".join(f"*{escape(c.name, NAME_SHOWN)}* `{escape(c.tag_id)}`" for c in candidates[:5])
        problems.append(f":warning: “{escape(name, NAME_SHOWN)}” matches several tags ({options}). "
                        "Use the id instead.")
    if view.duplicates:
        problems.append(f":recycle: {count(view.duplicates, 'duplicate')} dropped.")
    if view.junk_summary:
        problems.append(f":no_entry_sign: Skipped: {view.junk_summary}")
    return problems


def preview_blocks(view: PreviewView) -> list[Block]:
    header = (
        f"*Preview of request #{view.request_id}*: {count(len(view.tags), 'tag')} will be deleted, "
        f"removing them from *{count(view.total_contacts, 'contact')}* in total "
        f"({count(view.batch_count, 'Constant Contact activity')})."
    )
    blocks = [section(header)]
    if view.rule:
        blocks += [section(line) for line in rule_lines(view.rule, len(view.tags), view.account_tag_count, "now")]
    blocks.append(section(tag_list(view.tags, large_threshold=view.large_threshold)))
    large = large_tags_line(view.tags, view.large_threshold)
    if large:
        blocks.append(section(large))
    problems = _preview_problems(view)
    if problems:
        blocks.append(section(fit_lines(problems, SECTION_LIMIT, lambda left: f"…and {left:,} more like these")))
        blocks.append(context("Entries that matched nothing or several tags are left out: they will not be deleted."))
    reason = f"Reason: {escape(view.reason, REASON_SHOWN)}" if view.reason else "You will be asked for a reason."
    blocks.append(context(f"{reason} Nothing is deleted until an approver approves."))
    if view.snapshot_line:
        blocks.append(section(view.snapshot_line))
    if view.quota_line:
        blocks.append(context(view.quota_line))
    value = str(view.request_id)
    blocks.append(
        {
            "type": "actions",
            "block_id": f"preview:{view.request_id}",
            "elements": [
                button("Request approval", ACTION_CONFIRM, value, "primary"),
                button("Cancel", ACTION_CANCEL, value),
            ],
        }
    )
    return blocks


def preview_text(view: PreviewView) -> str:
    return f"Preview of request #{view.request_id}: {count(len(view.tags), 'tag')} to delete."


# --- the request card (in the approval channel) ---------------------------------------------


def _card_status(view: CardView) -> str:
    if view.started and view.state in ("rejected", "cancelled"):
        return _plain_status(view) + " Batches sent before the tags changed are listed in the thread."
    return _plain_status(view)


def _plain_status(view: CardView) -> str:
    label = STATE_LABELS.get(view.state, view.state)
    if view.state == "running" and view.running_label:
        label = view.running_label
    if view.state == "awaiting_approval":
        so_far = ", ".join(f"<@{u}>" for u in view.approvals) or "none yet"
        expiry = f" Expires <!date^{int(view.expires_at.timestamp())}^{{date_short_pretty}} {{time}}|{view.expires_at:%Y-%m-%d %H:%M} UTC>." if view.expires_at else ""
        return f"*Status:* {label} — approvals {len(view.approvals)} of {view.required_approvals} ({so_far}).{expiry}"
    if view.state == "rejected":
        why = escape(view.rejection_reason or "no reason given", REASON_SHOWN)
        return f"*Status:* :no_entry: Rejected by <@{view.decided_by}>: {why}"
    if view.state == "cancelled":
        return f"*Status:* :heavy_multiplication_x: Cancelled by <@{view.decided_by or view.requester_id}>."
    if view.state == "expired" and view.started:
        return ("*Status:* :hourglass: Expired: nobody approved the changed tags in time. The batches not yet "
                "sent were not deleted; the thread lists what was.")
    if view.state == "expired":
        return "*Status:* :hourglass: Expired: nobody decided in time. Nothing was deleted."
    approved = ", ".join(f"<@{u}>" for u in view.approvals)
    line = f"*Status:* {label}" + (f" — approved by {approved}" if approved else "")
    if view.outcome:
        line += f"\n{view.outcome}"
    return line


def card_blocks(view: CardView) -> list[Block]:
    intro = view.intro or (
        f"*Deletion request #{view.request_id}* from <@{view.requester_id}>\n"
        f"{count(len(view.tags), 'tag')} on *{count(view.total_contacts, 'contact')}* "
        f"({count(view.batch_count, 'activity')})."
    )
    blocks = [section(intro)]
    if view.rule:
        blocks += [section(line) for line in rule_lines(view.rule, len(view.tags), view.account_tag_count,
                                                        "at the preview")]
    if view.state == "awaiting_approval" and view.changes_since_approval:
        blocks.append(section(_changes_note(view)))
    large = large_tags_line(view.tags, view.large_threshold)
    if large:
        blocks.append(section(large))
    blocks.append(section(f"*Reason:* {escape(view.reason or '—', REASON_SHOWN)}"))
    blocks.append(section(tag_list(view.tags, large_threshold=view.large_threshold, old_ids=view.intro is not None)))
    if view.progress is not None:
        blocks.append(section(progress_line(view.progress)))
    blocks.append(section(_card_status(view)))
    if view.snapshot_line and view.state in ("awaiting_approval", "approved"):
        blocks.append(section(view.snapshot_line))
    if view.hold_line and view.state == "approved":
        blocks.append(section(view.hold_line))
    if view.quota_line and view.state in ("awaiting_approval", "approved", "running"):
        blocks.append(context(view.quota_line))
    value = str(view.request_id)
    # Also on a finished request with failures: the summary's list of tags not deleted may be cut.
    long_or_failed = len(view.tags) > LISTED_TAGS or view.state in ("completed_with_errors", "failed")
    see_all = [button(f"See all {len(view.tags):,} tags", ACTION_SHOW_TAGS, value)] if long_or_failed else []
    if view.state == "awaiting_approval":
        if view.approver_mention:
            blocks.append(context(f"Approvers: {view.approver_mention}."))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"card:{view.request_id}",
                "elements": [
                    button("Approve", ACTION_APPROVE, value, "primary"),
                    button("Reject", ACTION_REJECT, value, "danger"),
                    button("Cancel request", ACTION_CANCEL, value),
                    *see_all,
                ],
            }
        )
    elif see_all:
        blocks.append({"type": "actions", "block_id": f"card_tags:{view.request_id}", "elements": see_all})
    return blocks


def _change_lines(changes: Sequence[str], budget: int) -> str:
    lines = [f"• {escape(line, 300)}" for line in changes[:10]]
    return fit_lines(lines, budget, lambda left: f"…and {left:,} more", len(changes) - len(lines))


def rule_lines(rule: str, matched: int, account_tags: int | None, when: str) -> list[str]:
    """What a request found by rule says about it: the rule, the count, and a warning when it
    matched every tag of the account."""
    of = f" of the account's {account_tags:,}" if account_tags is not None else ""
    lines = [f"*Rule:* `{escape(rule, 400)}` matched {count(matched, 'tag')}{of} {when}. Exactly these are "
             "deleted: the rule is not evaluated again, so a tag that matches it later is kept."]
    if account_tags is not None and matched >= account_tags:
        lines.append(f":rotating_light: *This rule matches every tag of the account* ({account_tags:,}). "
                     "Approving it deletes all of them.")
    return lines


def _changes_note(view: CardView) -> str:
    head = (":raised_hand: *Changed since the approval*: nothing more is deleted until this is approved again "
            "(the names and counts below are the current ones).\n")
    return head + _change_lines(view.changes_since_approval, SECTION_LIMIT - len(head))


def changed_since_approval_text(request_id: int, batch_no: int, batches_sent: int, changes: Sequence[str],
                                approver_mention: str) -> str:
    """The thread note when the check before a delete POST finds that approved tags changed."""
    sent = (f"{count(batches_sent, 'batch')} had already gone to Constant Contact; " if batches_sent else "")
    head = (f":raised_hand: {approver_mention}: request #{request_id} is stopped before batch {batch_no + 1}: "
            f"{count(len(changes), 'tag')} changed since the approval. {sent}nothing more is deleted until "
            "the request is approved again on the card.\n")
    return head + _change_lines(changes, SECTION_LIMIT - len(head))


def changed_since_approval_dm(request_id: int, changed: int) -> str:
    return (f":raised_hand: Your deletion request #{request_id} is stopped: {count(changed, 'tag')} changed in "
            "Constant Contact after the approval, so the approvers are asked again. See the card's thread.")


def card_text(view: CardView) -> str:
    label = STATE_LABELS.get(view.state, view.state)
    mention = f"{view.approver_mention}: " if view.state == "awaiting_approval" and view.approver_mention else ""
    if view.title:
        return f"{mention}{view.title} — {label}"
    return f"{mention}Deletion request #{view.request_id} from <@{view.requester_id}> — {label}"


def progress_line(progress: Progress) -> str:
    if progress.snapshot is not None:
        batch_no, recorded, expected = progress.snapshot
        percent = min(99, round(100 * recorded / expected)) if expected else 0
        which = f" of batch {batch_no + 1}/{progress.batch_count}" if progress.batch_count > 1 else ""
        return (f"`{progress_bar(percent)}` :camera_with_flash: recording the snapshot{which} before deleting: "
                f"{recorded:,} of ~{expected:,} taggings")
    counts = ""
    if progress.items_total:
        counts = f" — {progress.items_completed or 0:,}/{progress.items_total:,} items"
    stalled = " :snail: slower than expected" if progress.stalled else ""
    return (
        f"`{progress_bar(progress.percent)}` batches {progress.batches_done}/{progress.batch_count}"
        f"{counts}{stalled}"
    )


# --- modals ----------------------------------------------------------------------------------


def new_request_modal(private_metadata: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": VIEW_NEW_REQUEST,
        "private_metadata": private_metadata,
        "title": plain("Delete tags"),
        "submit": plain("Preview"),
        "close": plain("Cancel"),
        "blocks": [
            section("Paste tag ids or \"quoted names\", attach a CSV/TXT file, or find tags by rule. "
                    "You will see a preview first."),
            {
                "type": "input",
                "block_id": "entries",
                "optional": True,
                "label": plain("Tag ids or names"),
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True,
                            "max_length": 3000},
            },
            {
                "type": "input",
                "block_id": "file",
                "optional": True,
                "label": plain("Or a CSV/TXT file"),
                "element": {"type": "file_input", "action_id": "file", "filetypes": ["csv", "txt", "tsv"],
                            "max_files": 1},
            },
            {
                "type": "input",
                "block_id": "rule",
                "optional": True,
                "label": plain("Or find tags by rule"),
                "hint": plain('empty · matching "Webinar 2023*" · created before 2024-01-01 · joined with and'),
                "element": {"type": "plain_text_input", "action_id": "rule", "max_length": 500,
                            "placeholder": plain('empty and matching "Webinar 2023*"')},
            },
            reason_input(),
        ],
    }


def reason_input(label: str = "Reason (shown to approvers)") -> Block:
    return {
        "type": "input",
        "block_id": "reason",
        "label": plain(label),
        "element": {"type": "plain_text_input", "action_id": "reason", "max_length": 500, "min_length": 3},
    }


def reason_modal(callback_id: str, request_id: int, title: str, submit: str, label: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": str(request_id),
        "title": plain(title),
        "submit": plain(submit),
        "close": plain("Back"),
        "blocks": [reason_input(label)],
    }


# --- the end of a request ---------------------------------------------------------------------

OUTCOME_LINES = {
    "completed": ":white_check_mark: Finished: every tag was deleted.",
    "completed_with_errors": ":warning: Finished with errors: some tags were not deleted (see the thread).",
    "failed": ":x: Failed: no tag was deleted (see the thread).",
}


def outcome_line(state: str) -> str | None:
    return OUTCOME_LINES.get(state)


def duration(started: datetime | None, finished: datetime | None) -> str:
    if not started or not finished:
        return "unknown time"
    seconds = max(0, int((finished - started).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def summary_text(requester_id: str, request_id: int, summary: Any, approvers: Sequence[str],
                 started: datetime | None, finished: datetime | None, listed: int = 10,
                 footer: str | None = None) -> str:
    total = summary.deleted + summary.not_deleted + summary.unknown
    icon = {"completed": ":white_check_mark:", "completed_with_errors": ":warning:"}.get(summary.final_state, ":x:")
    where = (f"in {count(summary.activity_count, 'activity')}" if summary.activity_count
             else "— nothing reached Constant Contact")
    lines = [
        f"{icon} <@{requester_id}> request #{request_id} is finished: *{summary.deleted:,} of {total:,} "
        f"tags deleted* {where} ({duration(started, finished)}).",
    ]
    approved = ["Approved by " + ", ".join(f"<@{a}>" for a in approvers) + "."] if approvers else []
    ending = [*approved, *([footer] if footer else [])]
    if summary.missing:
        lines.append(f"*Not deleted ({len(summary.missing):,}):*")
        room = TEXT_LIMIT - len("\n".join([*lines, *ending])) - 1
        lines.append(not_deleted_list(summary.missing, listed, room))
    return "\n".join([*lines, *ending])


def not_deleted_list(missing: Sequence[Any], listed: int, budget: int) -> str:
    """One line per tag not deleted (a summary's reasons are mrkdwn already), within `budget` characters."""
    lines = [f"• *{escape(m.name)}* `{escape(m.tag_id)}` — {m.reason}" for m in missing[:listed]]
    return fit_lines(lines, budget, lambda left: f"…and {left:,} more: *See all tags* on the card lists them first",
                     len(missing) - len(lines))


# --- App Home ---------------------------------------------------------------------------------


def home_blocks(mine: Sequence[tuple[int, str, int, str | None]],
                waiting: Sequence[tuple[int, str, int, int, str | None]]) -> list[Block]:
    """The requester's recent requests, and for approvers the ones waiting for them."""
    out: list[Block] = [{"type": "header", "text": plain("Tag deletions")}]
    if waiting:
        out.append(section(f"*Waiting for your decision ({len(waiting)})*"))
        for request_id, requester, tags, contacts, reason in waiting[:10]:
            value = str(request_id)
            out.append(section(f"*#{request_id}* from <@{requester}>: {count(tags, 'tag')} on "
                               f"{count(contacts, 'contact')}. Reason: {escape(reason or '—', REASON_SHOWN)}"))
            out.append({"type": "actions", "block_id": f"home:{request_id}", "elements": [
                button("Approve", ACTION_APPROVE, value, "primary"), button("Reject", ACTION_REJECT, value, "danger")]})
        out.append({"type": "divider"})
    out.append(section("*Your recent requests*"))
    if not mine:
        out.append(context("None yet. Type `/deletetags` in a channel, or drop a CSV here in Messages."))
    for request_id, state, tags, reason in mine:
        out.append(section(f"*#{request_id}* — {STATE_LABELS.get(state, state)}, {count(tags, 'tag')}. "
                           f"{escape(reason or '', REASON_SHOWN)}"))
    return out[:100]
