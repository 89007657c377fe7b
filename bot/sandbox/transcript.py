"""Plain-text rendering of what happened in the emulated workspace, for demos and failure messages."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.sandbox.slack_emulator import Activity, Ephemeral, Message, SlackEmulator, View

_MARKUP = re.compile(r"<([^<>]*)>")
_REPLY_PREFIX = "    ↳ "


@dataclass
class _Entry:
    ts: str
    lines: list[str]
    thread_root: str | None = None
    replies: list[_Entry] = field(default_factory=list)


def render_transcript(
    emulator: SlackEmulator, channel_id: str | None = None, *, include_ephemerals: bool = True
) -> str:
    """Every conversation (or one), oldest first, thread replies indented under their parent."""
    channel_ids = [channel_id] if channel_id else emulator.channel_ids
    sections = []
    for conversation in channel_ids:
        body = _render_conversation(emulator, conversation, include_ephemerals)
        if body or channel_id:
            sections.append("\n".join([f"── {_conversation_title(emulator, conversation)} ──", *body]))
    if channel_id is None:
        loose = _render_entries([_view_entry(emulator, view) for view in _modals(emulator, None)])
        if loose:
            sections.append("\n".join(["── outside any conversation ──", *loose]))
    return "\n\n".join(sections) if sections else "(nothing happened)"


def _conversation_title(emulator: SlackEmulator, channel_id: str) -> str:
    try:
        conversation = emulator.channel(channel_id)
    except KeyError:
        return channel_id
    if conversation.is_im:
        return f"DM between @{emulator.bot_name} and @{emulator.user_name(conversation.dm_user or '')}"
    if conversation.is_mpim:
        return f"group DM {conversation.name}"
    return f"#{conversation.name} ({channel_id})"


def _render_conversation(emulator: SlackEmulator, channel_id: str, include_ephemerals: bool) -> list[str]:
    entries = [_message_entry(emulator, message) for message in emulator.messages(channel_id)]
    if include_ephemerals:
        entries += [_ephemeral_entry(emulator, e) for e in emulator.ephemerals if e.channel == channel_id]
    entries += [_activity_entry(emulator, a) for a in emulator.activities if a.channel == channel_id]
    entries += [_view_entry(emulator, view) for view in _modals(emulator, channel_id)]
    return _render_entries(entries)


def _modals(emulator: SlackEmulator, channel_id: str | None) -> list[View]:
    return [view for view in emulator.views.values() if view.type == "modal" and view.channel == channel_id]


def _render_entries(entries: list[_Entry]) -> list[str]:
    roots = {entry.ts: entry for entry in entries if entry.thread_root is None}
    top_level = []
    for entry in sorted(entries, key=lambda item: float(item.ts)):
        parent = roots.get(entry.thread_root or "")
        if entry.thread_root and parent is not None and parent is not entry:
            parent.replies.append(entry)
        else:
            top_level.append(entry)
    lines: list[str] = []
    for entry in top_level:
        lines.extend(entry.lines)
        for reply in entry.replies:
            lines.append(_REPLY_PREFIX + reply.lines[0])
            lines.extend(" " * len(_REPLY_PREFIX) + line for line in reply.lines[1:])
    return lines


def _clock(ts: str) -> str:
    return time.strftime("%H:%M:%S", time.localtime(float(ts)))


def _entry(ts: str, head: str, body: list[str], thread_root: str | None = None) -> _Entry:
    stamp = f"[{_clock(ts)}] "
    first = f"{stamp}{head}{body[0] if body else ''}"
    rest = [" " * len(stamp) + line for line in body[1:]]
    return _Entry(ts, [first, *rest], thread_root)


def _message_entry(emulator: SlackEmulator, message: Message) -> _Entry:
    body = ["(message deleted)"] if message.deleted else _content_lines(emulator, message.text, message.blocks)
    body += [_file_line(f) for f in message.files]
    body = body or [""]
    if message.edits and not message.deleted:
        body[0] += " (edited)"
    if message.reply_broadcast:
        body[0] += " (also sent to channel)"
    root = message.thread_ts if message.is_reply else None
    return _entry(message.ts, f"@{emulator.user_name(message.user)}: ", body, root)


def _file_line(file: dict[str, Any]) -> str:
    size = file.get("size")
    shown = f"{size:,}" if isinstance(size, int) else "?"
    return f"[file: {file.get('name')}, {shown} bytes]"


def _ephemeral_entry(emulator: SlackEmulator, ephemeral: Ephemeral) -> _Entry:
    speaker = "Slackbot" if ephemeral.via == "slack" else emulator.bot_name
    body = ["(deleted)"] if ephemeral.deleted else _content_lines(emulator, ephemeral.text, ephemeral.blocks) or [""]
    if ephemeral.edits and not ephemeral.deleted:
        body[0] += " (edited)"
    head = f"(only visible to @{emulator.user_name(ephemeral.user)}) @{speaker}: "
    return _entry(ephemeral.ts, head, body, ephemeral.thread_ts)


def _activity_entry(emulator: SlackEmulator, activity: Activity) -> _Entry:
    name = emulator.user_name(activity.user)
    if activity.kind == "command":
        return _entry(activity.ts, f"@{name}: ", [f"{activity.text}   (slash command)"])
    verb = "clicked" if activity.kind == "click" else ""
    return _entry(activity.ts, f"@{name} ", [f"{verb} {activity.text}".strip()])


def _view_entry(emulator: SlackEmulator, view: View) -> _Entry:
    body = [f"[modal opened for @{emulator.user_name(view.user)}: {view.title}]"]
    body += [f"  ! {block_id}: {message}" for block_id, message in view.errors.items()]
    return _entry(view.opened_ts, "", body)


# -- message content ---------------------------------------------------------------------------------


def _content_lines(emulator: SlackEmulator, text: str, blocks: list[dict[str, Any]]) -> list[str]:
    if blocks:
        lines: list[str] = []
        for block in blocks:
            lines.extend(_block_lines(emulator, block))
        return lines
    return readable(emulator, text).splitlines()


def _block_lines(emulator: SlackEmulator, block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind in ("section", "header"):
        lines = _text_lines(emulator, block.get("text"))
        for item in block.get("fields") or []:
            lines.extend(_text_lines(emulator, item))
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("type") != "image":
            lines.append(_element_label(accessory))
        return lines
    if kind == "context":
        parts = [readable(emulator, e.get("text", "")) for e in block.get("elements") or [] if e.get("type") != "image"]
        return [" · ".join(parts)]
    if kind == "actions":
        return [" ".join(_element_label(element) for element in block.get("elements") or [])]
    if kind == "divider":
        return ["────────"]
    if kind == "input":
        label = (block.get("label") or {}).get("text", "")
        return [f"{label}: {_element_label(block.get('element') or {})}"]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}]"]
    if kind == "rich_text":
        return readable(emulator, _rich_text(block)).splitlines()
    return [f"[{kind} block]"]


def _text_lines(emulator: SlackEmulator, value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    return readable(emulator, value.get("text", "")).splitlines()


def _element_label(element: dict[str, Any]) -> str:
    kind = element.get("type")
    if kind == "button":
        return f"[ {(element.get('text') or {}).get('text', '')} ]"
    if kind == "overflow":
        return "[ … ]"
    placeholder = (element.get("placeholder") or {}).get("text", "")
    return f"[{kind}{': ' + placeholder if placeholder else ''}]"


def _rich_text(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text", ""))
        if node.get("type") == "user":
            return f"<@{node.get('user_id')}>"
        return "".join(_rich_text(child) for child in node.get("elements") or [])
    return ""


def readable(emulator: SlackEmulator, text: str) -> str:
    """Slack markup (<@U1>, <#C1|x>, <!subteam^S1>, <url|label>) and entities made human."""
    rendered = _MARKUP.sub(lambda match: _readable_markup(emulator, match.group(1)), text)
    return rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _readable_markup(emulator: SlackEmulator, inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"@{emulator.user_name(target[1:])}"
    if target.startswith("#"):
        return f"#{label or _channel_name(emulator, target[1:])}"
    if target.startswith("!subteam^"):
        return label or f"@{emulator.usergroup_handle(target[len('!subteam^'):]) or target}"
    if target.startswith("!"):
        return f"@{label or target[1:]}"
    return f"{label} ({target})" if label else target


def _channel_name(emulator: SlackEmulator, channel_id: str) -> str:
    try:
        return emulator.channel(channel_id).name
    except KeyError:
        return channel_id
