"""Block Kit for the preview, the request card, progress, summaries and App Home. Pure.

Slack limits shape these builders: at most 50 blocks a message, 3,000 characters a section,
75 characters a button label, 2,000 a button value. Long tag lists are cut with a count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Block = dict[str, Any]
SECTION_LIMIT = 2900
LISTED_TAGS = 15

ACTION_CONFIRM = "request_approval"
ACTION_CANCEL = "cancel_request"
ACTION_APPROVE = "approve_request"
ACTION_REJECT = "reject_request"
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


@dataclass(frozen=True)
class Progress:
    percent: int
    batches_done: int
    batch_count: int
    items_completed: int | None = None
    items_total: int | None = None
    stalled: bool = False


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


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:150], "emoji": True}


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


def escape(text: str) -> str:
    """Slack mrkdwn control characters; tag names are user data and must not become links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plural(noun: str) -> str:
    return noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"


def count(n: int | None, noun: str) -> str:
    if n is None:
        return f"? {plural(noun)}"
    return f"{n:,} {noun if n == 1 else plural(noun)}"


def tag_list(tags: Sequence[TagLine], limit: int = LISTED_TAGS) -> str:
    lines = [
        f"• *{escape(t.name)}* `{t.tag_id}` — {count(t.contacts_count, 'contact')}" for t in tags[:limit]
    ]
    if len(tags) > limit:
        lines.append(f"…and {len(tags) - limit:,} more")
    return "\n".join(lines)


def progress_bar(percent: int, width: int = 20) -> str:
    percent = max(0, min(100, percent))
    filled = round(width * percent / 100)
    return "█" * filled + "░" * (width - filled) + f" {percent}%"


# --- preview (ephemeral, to the requester only) ---------------------------------------------


def _preview_problems(view: PreviewView) -> list[str]:
    problems = []
    if view.unknown_ids:
        shown = ", ".join(f"`{i}`" for i in view.unknown_ids[:10])
        more = f" …and {len(view.unknown_ids) - 10:,} more" if len(view.unknown_ids) > 10 else ""
        problems.append(f":grey_question: {count(len(view.unknown_ids), 'id')} matched no tag: {shown}{more}")
    if view.unknown_names:
        shown = ", ".join(f"“{escape(n)}”" for n in view.unknown_names[:10])
        more = f" …and {len(view.unknown_names) - 10:,} more" if len(view.unknown_names) > 10 else ""
        problems.append(f":grey_question: {count(len(view.unknown_names), 'name')} matched no tag: {shown}{more}")
    for name, candidates in view.ambiguous[:5]:
        options = "; ".join(f"*{escape(c.name)}* `{c.tag_id}`" for c in candidates[:5])
        problems.append(f":warning: “{escape(name)}” matches several tags ({options}). Use the id instead.")
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
    blocks = [section(header), section(tag_list(view.tags))]
    problems = _preview_problems(view)
    if problems:
        blocks.append(section("\n".join(problems)))
        blocks.append(context("Entries that matched nothing or several tags are left out: they will not be deleted."))
    reason = f"Reason: {escape(view.reason)}" if view.reason else "You will be asked for a reason."
    blocks.append(context(f"{reason} Nothing is deleted until an approver approves. Deleted tags cannot be restored."))
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
    label = STATE_LABELS.get(view.state, view.state)
    if view.state == "awaiting_approval":
        so_far = ", ".join(f"<@{u}>" for u in view.approvals) or "none yet"
        expiry = f" Expires <!date^{int(view.expires_at.timestamp())}^{{date_short_pretty}} {{time}}|{view.expires_at:%Y-%m-%d %H:%M} UTC>." if view.expires_at else ""
        return f"*Status:* {label} — approvals {len(view.approvals)} of {view.required_approvals} ({so_far}).{expiry}"
    if view.state == "rejected":
        why = escape(view.rejection_reason or "no reason given")
        return f"*Status:* :no_entry: Rejected by <@{view.decided_by}>: {why}"
    if view.state == "cancelled":
        return f"*Status:* :heavy_multiplication_x: Cancelled by <@{view.decided_by or view.requester_id}>."
    if view.state == "expired":
        return "*Status:* :hourglass: Expired: nobody decided in time. Nothing was deleted."
    approved = ", ".join(f"<@{u}>" for u in view.approvals)
    line = f"*Status:* {label}" + (f" — approved by {approved}" if approved else "")
    if view.outcome:
        line += f"\n{view.outcome}"
    return line


def card_blocks(view: CardView) -> list[Block]:
    intro = (
        f"*Deletion request #{view.request_id}* from <@{view.requester_id}>\n"
        f"{count(len(view.tags), 'tag')} on *{count(view.total_contacts, 'contact')}* "
        f"({count(view.batch_count, 'activity')})."
    )
    blocks = [section(intro)]
    blocks.append(section(f"*Reason:* {escape(view.reason or '—')}"))
    blocks.append(section(tag_list(view.tags)))
    if view.progress is not None:
        blocks.append(section(progress_line(view.progress)))
    blocks.append(section(_card_status(view)))
    if view.state == "awaiting_approval":
        value = str(view.request_id)
        if view.approver_mention:
            blocks.append(context(f"Approvers: {view.approver_mention}. Deleted tags cannot be restored."))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"card:{view.request_id}",
                "elements": [
                    button("Approve", ACTION_APPROVE, value, "primary"),
                    button("Reject", ACTION_REJECT, value, "danger"),
                    button("Cancel request", ACTION_CANCEL, value),
                ],
            }
        )
    return blocks


def card_text(view: CardView) -> str:
    label = STATE_LABELS.get(view.state, view.state)
    mention = f"{view.approver_mention}: " if view.state == "awaiting_approval" and view.approver_mention else ""
    return f"{mention}Deletion request #{view.request_id} from <@{view.requester_id}> — {label}"


def progress_line(progress: Progress) -> str:
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
            section("Paste tag ids or \"quoted names\", or attach a CSV/TXT file. You will see a preview first."),
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
                 started: datetime | None, finished: datetime | None, listed: int = 10) -> str:
    total = summary.deleted + summary.not_deleted + summary.unknown
    icon = {"completed": ":white_check_mark:", "completed_with_errors": ":warning:"}.get(summary.final_state, ":x:")
    where = (f"in {count(summary.activity_count, 'activity')}" if summary.activity_count
             else "— nothing reached Constant Contact")
    lines = [
        f"{icon} <@{requester_id}> request #{request_id} is finished: *{summary.deleted:,} of {total:,} "
        f"tags deleted* {where} ({duration(started, finished)}).",
    ]
    if summary.missing:
        lines.append(f"*Not deleted ({len(summary.missing):,}):*")
        lines += [f"• *{escape(m.name)}* `{m.tag_id}` — {escape(m.reason)}" for m in summary.missing[:listed]]
        if len(summary.missing) > listed:
            lines.append(f"…and {len(summary.missing) - listed:,} more (`deletetags-bot audit --request {request_id}`)")
    if approvers:
        lines.append("Approved by " + ", ".join(f"<@{a}>" for a in approvers) + ".")
    return "\n".join(lines)


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
                               f"{count(contacts, 'contact')}. Reason: {escape(reason or '—')}"))
            out.append({"type": "actions", "block_id": f"home:{request_id}", "elements": [
                button("Approve", ACTION_APPROVE, value, "primary"), button("Reject", ACTION_REJECT, value, "danger")]})
        out.append({"type": "divider"})
    out.append(section("*Your recent requests*"))
    if not mine:
        out.append(context("None yet. Type `/deletetags` in a channel, or drop a CSV here in Messages."))
    for request_id, state, tags, reason in mine:
        out.append(section(f"*#{request_id}* — {STATE_LABELS.get(state, state)}, {count(tags, 'tag')}. "
                           f"{escape(reason or '')}"))
    return out[:100]
