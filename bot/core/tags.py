"""Parse what people type or upload into a clean selection of tags, and resolve it; pure (stdlib only).

A deleted tag cannot be recovered, so the parser is strict and says exactly what it rejected.

Command text (`parse_command`), after decoding Slack's `&amp;` `&lt;` `&gt;`:

1. Empty text (or only invisible characters) -> kind "modal".
2. The first word, case-insensitive, is a subcommand -> that subcommand; the rest of the text is its
   argument: `help` (also `-h`, `--help`, `?`), `status [request-id]`, `list`, `cancel <request-id>`,
   `restore <request-id> [names/ids] [reason: …]`.
   A tag named like a subcommand is given in quotes (`"list"`).
3. Otherwise the text is a request when it holds at least one tag id, one quoted name, one token that
   looks like a mistyped id, or a reason. Unquoted words that are not ids are then junk, with the hint
   to put tag names in quotes (consecutive words on one line are reported together).
4. Anything else -> kind "unknown", with the first word (made safe for Slack) as the argument.

The reason is everything after the first `reason:` (any case) or the first standalone `--` (also `—`
or `–`, which phones and macOS put in place of `--`) found outside quotes. A quoted name containing
"reason:" or " -- " stays a name.

Entries in text: tag ids are UUIDs (any case; optionally in `{}`, `<>`, backticks, or after
`urn:uuid:`), canonicalised to lowercase 8-4-4-4-12; 32 hex digits without hyphens are rejected.
Names are in double quotes (straight or curly), may contain commas; a quote inside a name is written
`\\"` or `""`; quoted names end at the end of a line. Entries are separated by whitespace, commas or
semicolons. Zero-width characters are dropped and NBSP counts as a space.

Files (`parse_file`): .csv, .tsv, .txt or no extension; UTF-8 (BOM optional), UTF-16 (BOM, or none
when the NUL pattern says so), otherwise Windows-1252, otherwise latin-1. The delimiter (comma,
semicolon, tab) is sniffed; blank lines and lines starting with `#` are skipped. A first row naming a
column `tag_id`/`id`/`tag id`/`tagid`/`uuid` and/or `name`/`tag_name`/`tag name`/`tag` is a header: a
row uses its id cell when it has one, else its name cell (an invalid id cell is junk, never replaced by
the name); a row with more cells than the header is junk, because an unquoted name containing the
delimiter would otherwise be cut short. Without a header only UUIDs count: each row gives all its UUIDs,
and a row without one is junk. Cells starting with `=`, `+`, `-` or `@` are spreadsheet formulas: junk,
never evaluated.

Junk keeps the user's text reduced to one line of at most 60 characters; show it with `Junk.display()`
or `Selection.junk_summary()`, which quote it in backticks and escape it for Slack. Only the first
`JUNK_EXAMPLES` junk entries are kept; the rest are counted (`Selection.junk_count`). A file is given up
on (InputError) once `HOPELESS_LINES` lines gave at least `HOPELESS_MIN_JUNK` junk entries and not one
tag id or name, or once its junk entries outnumber twice `max_entries` (at least `HOPELESS_LINES`).
`InputError` is the only exception the parsers raise (a refused file, or more than `max_entries`
distinct entries).
"""

from __future__ import annotations

import codecs
import csv
import itertools
import os.path
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from bot.core.mrkdwn import outside_text
from bot.core.rules import RULE_WORDS

MAX_ENTRIES = 5000
MAX_FILE_BYTES = 5_000_000
BATCH_SIZE = 500
MAX_NAME_LENGTH = 255
JUNK_TEXT_LIMIT = 60
JUNK_EXAMPLES = 20
HOPELESS_LINES = 1_000
HOPELESS_MIN_JUNK = 100

CommandKind = Literal["help", "status", "list", "cancel", "restore", "modal", "request", "rule", "unknown"]

_SUBCOMMANDS: dict[str, CommandKind] = {
    "help": "help",
    "-h": "help",
    "--help": "help",
    "?": "help",
    "status": "status",
    "list": "list",
    "cancel": "cancel",
    "restore": "restore",
}
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_ENTITY_RE = re.compile(r"&(amp|lt|gt);")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX_OR_HYPHEN = frozenset("0123456789abcdefABCDEF-")
_ZERO_WIDTH = "\u200b\u200c\u200d\ufeff\u2060"
_DROP_ZERO_WIDTH = str.maketrans("", "", _ZERO_WIDTH)
# Every character str.isspace() and the regex \s accept (a test checks), so that one strip() call trims.
_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_BLANK = _WHITESPACE + _ZERO_WIDTH
_QUOTES = '"\u201c\u201d'
_SEPARATORS_RE = re.compile(rf"[\s,;{_ZERO_WIDTH}]+")
_WORD_RE = re.compile(rf"[^\s,;{_QUOTES}]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_REASON_DASHES = frozenset({"--", "\u2014", "\u2013"})
_REASON_KEYWORD = "reason:"
_FORMULA_STARTS = "=+-@"
_ID_HEADERS = frozenset({"tagid", "id", "uuid"})
_NAME_HEADERS = frozenset({"name", "tagname", "tag"})
_FILE_EXTENSIONS = frozenset({".csv", ".tsv", ".txt", ""})
_SPREADSHEET_EXTENSIONS = frozenset({".xlsx", ".xls", ".xlsm", ".ods", ".numbers"})
_DELIMITERS = (",", ";", "\t")
_SNIFF_LINES = 50

QUOTE_NAMES_HINT = 'not a tag id; put tag names in quotes, e.g. "Spring Promo"'
HEADERLESS_HINT = "no tag id in this line; to delete by name, add a header row `name`"
FORMULA_REASON = "spreadsheet formula, ignored (never evaluated)"
FORMULA_NAME_REASON = f"{FORMULA_REASON}; to delete a tag whose name starts with =, +, - or @, use its id"
SAVE_AS_CSV_HINT = "In Excel use File › Save As › CSV UTF-8 and upload that file."


class InputError(ValueError):
    """Input the bot refuses as a whole; `message` is written for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Junk:
    """An entry that was not used, where it was (1-based line, or None) and why."""

    line: int | None
    text: str
    reason: str

    def display(self) -> str:
        """One line for Slack mrkdwn; user text is quoted in backticks and cannot format or mention."""
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{quote_for_slack(self.text)} — {reason_for_slack(self.reason)}"


@dataclass(frozen=True)
class Selection:
    """Distinct tag ids and names in first-seen order, plus what was dropped and why.

    `junk` holds the first `JUNK_EXAMPLES` entries that were not used; `more_junk` counts the others.
    """

    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    duplicates: int = 0
    junk: tuple[Junk, ...] = ()
    more_junk: int = 0

    @property
    def entry_count(self) -> int:
        return len(self.ids) + len(self.names)

    @property
    def junk_count(self) -> int:
        return len(self.junk) + self.more_junk

    @property
    def is_empty(self) -> bool:
        return self.entry_count == 0

    def junk_summary(self, limit: int = 5) -> str:
        shown = [f"• {junk.display()}" for junk in self.junk[: max(limit, 0)]]
        hidden = self.junk_count - len(shown)
        if hidden > 0:
            shown.append(f"…and {hidden:,} more")
        return "\n".join(shown)

    def problem(self) -> str | None:
        """The message for a selection with nothing to delete, else None."""
        if not self.is_empty:
            return None
        if not self.junk_count:
            return "No tag ids or names found. Type `/deletetags help` for the format."
        return (
            "No tag ids or names found. These entries were not used:\n"
            f"{self.junk_summary()}\nType `/deletetags help` for the format."
        )


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    argument: str | None = None
    selection: Selection | None = None
    reason: str | None = None


@dataclass(slots=True)
class _Item:
    """One parsed entry before de-duplication."""

    kind: Literal["id", "name", "junk"]
    value: str
    line: int | None = None
    reason: str = ""
    plain_word: bool = False


@dataclass(frozen=True)
class _Token:
    kind: Literal["word", "name", "open_quote"]
    value: str
    start: int
    end: int
    line: int


@dataclass(frozen=True)
class _Header:
    id_column: int | None
    name_column: int | None
    width: int
    delimiter: str


_NumberedLines = Iterable[tuple[int, str]]


@dataclass(slots=True)
class _Collector:
    """First spelling by key: the id itself for ids, `name_key` for names (dicts keep first-seen order)."""

    ids: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    junk: list[Junk] = field(default_factory=list)
    junk_count: int = 0
    duplicates: int = 0

    @property
    def entry_count(self) -> int:
        return len(self.ids) + len(self.names)


# ---------------------------------------------------------------- usage


def usage(max_entries: int = MAX_ENTRIES, max_file_bytes: int = MAX_FILE_BYTES, max_files: int = 3) -> str:
    """The `/deletetags help` text (Slack mrkdwn) for the given limits."""
    return f"""*Delete Constant Contact tags.* Nothing is deleted until you have checked a preview \
and an approver has approved the request. A deleted tag is removed from every contact, and Constant Contact \
cannot undo that, so I first record which contacts carried each tag (a snapshot) for `restore`.

*Tag ids and names in the command*
`/deletetags 0b9c1e2a-5f3d-4c1b-9a7e-1234567890ab "Spring Promo 2024" reason: cleanup after campaign`
• Tag ids are UUIDs, in any case; `{{…}}` and `urn:uuid:` are fine.
• Put tag names in double quotes; a name may contain commas; write a quote inside a name as `\\"` or `""`. \
Unquoted words are rejected.
• Separate entries with spaces, commas, semicolons, tabs or new lines.
• The reason is everything after `reason:` or after ` -- `.

*Find tags by rule*
`/deletetags empty and matching "Webinar 2023*" reason: webinars are over`
• `empty`: tags on no contact.
• `matching "Webinar 2023*"`: names like the pattern; `*` is any characters, `?` one; case does not matter.
• `created before 2024-01-01`, `created after 2024-01-01` (days in UTC).
• Join rules with `and`. The preview lists exactly the tags the rule matches now; only those are deleted.

*From a file*
• `/deletetags` alone opens a form where you can paste tags, upload a CSV/TXT file or write a rule, and give a reason.
• Or drop a .csv, .tsv or .txt file in a direct message with me (up to {max_files} in one message). \
Upload the file itself: I do not follow links to files stored outside Slack.
• One tag id per line, or a CSV whose first row names the columns: `tag_id` (or `id`, `uuid`) and/or \
`name`. Without that header row only tag ids count.
• Comma, semicolon or tab separated, UTF-8 or UTF-16; blank lines and lines starting with `#` are skipped.

*Other commands*
• `/deletetags status [request-id]`: where your requests stand
• `/deletetags list`: recent requests, with links to their cards
• `/deletetags cancel &lt;request-id&gt;`: cancel a request that has not started
• `/deletetags restore &lt;request-id&gt; ["name" …]`: undo a deletion: its tags (or those named) \
come back from the snapshot, on the same contacts, once approved
• `/deletetags help`: this message

*Limits:* {max_entries:,} tags per request, files up to {_size(max_file_bytes, round_up=False)}; \
tags are deleted in batches of {BATCH_SIZE}.
*Safety:* first you see a preview; after you confirm, an approver must approve (never their \
own request), seeing the largest tags first. If a tag is renamed or gains many contacts after the approval, \
nothing more is deleted until they approve again."""


# ---------------------------------------------------------------- commands


def parse_command(text: str, *, max_entries: int = MAX_ENTRIES) -> Command:
    """Parse the text of `/deletetags`; see the module docstring for the rules."""
    decoded = _normalize_newlines(decode_slack_entities(text))
    words = _trim(decoded).translate(_DROP_ZERO_WIDTH).split(None, 1)
    if not words:
        return Command("modal")
    subcommand = _SUBCOMMANDS.get(words[0].lower())
    if subcommand is not None:
        argument = _trim(words[1]) if len(words) > 1 else ""
        return Command(subcommand, argument=argument or None)
    tokens, reason = _tokens_and_reason(decoded)
    if words[0].lower() in RULE_WORDS:  # a rule (bot.core.rules), read with the reason set apart
        end = tokens[-1].end if tokens else 0
        return Command("rule", argument=_trim(decoded[:end].translate(_DROP_ZERO_WIDTH)), reason=reason)
    items = _items_from_tokens(decoded, tokens)
    if reason is None and all(item.plain_word for item in items):
        return Command("unknown", argument=safe_for_slack(words[0]))
    selection = _collect(items, max_entries)
    return Command("request", selection=selection, reason=reason)


def decode_slack_entities(text: str) -> str:
    """Undo Slack's escaping of `&`, `<` and `>` in message and command text."""
    return _ENTITY_RE.sub(lambda match: _ENTITIES[match.group(1)], text)


def _tokens_and_reason(text: str) -> tuple[list[_Token], str | None]:
    tokens: list[_Token] = []
    for token in _scan(text):
        if token.kind == "word" and token.value in _REASON_DASHES:
            return tokens, _trim(text[token.end :]) or None
        if token.kind == "word" and token.value[: len(_REASON_KEYWORD)].lower() == _REASON_KEYWORD:
            return tokens, _trim(text[text.index(":", token.start) + 1 :]) or None
        tokens.append(token)
    return tokens, None


# ---------------------------------------------------------------- text


def parse_text(text: str, *, max_entries: int = MAX_ENTRIES) -> Selection:
    """Tag ids and quoted names from free text (a modal field, a pasted list)."""
    normalized = _normalize_newlines(text)
    return _collect(_items_from_tokens(normalized, list(_scan(normalized))), max_entries)


def _scan(text: str) -> Iterator[_Token]:
    position, line = 0, 1
    while position < len(text):
        separators = _SEPARATORS_RE.match(text, position)
        if separators:
            line += separators.group().count("\n")
            position = separators.end()
            continue
        token = _read_quoted(text, position, line) if text[position] in _QUOTES else _read_word(text, position, line)
        yield token
        position = token.end


def _read_word(text: str, start: int, line: int) -> _Token:
    word = _WORD_RE.match(text, start)
    end = word.end() if word else start + 1
    return _Token("word", text[start:end].translate(_DROP_ZERO_WIDTH), start, end, line)


def _read_quoted(text: str, start: int, line: int) -> _Token:
    # Slack clients with smart punctuation send “…” (sometimes ”…” or “…"): any quote closes a
    # curly one, while a straight quote is closed only by a straight one.
    closing = '"' if text[start] == '"' else _QUOTES
    chars: list[str] = []
    position = start + 1
    while position < len(text) and text[position] != "\n":
        char, following = text[position], text[position + 1 : position + 2]
        if char == "\\" and following and following in closing:
            chars.append(following)
            position += 2
        elif char in closing and following == char:
            chars.append(char)
            position += 2
        elif char in closing:
            return _Token("name", "".join(chars), start, position + 1, line)
        else:
            chars.append(char)
            position += 1
    return _Token("open_quote", text[start:position], start, position, line)


def _items_from_tokens(text: str, tokens: list[_Token]) -> list[_Item]:
    with_lines = "\n" in _trim(text)
    items: list[_Item] = []
    phrase_start: int | None = None
    previous_end = 0
    for token in tokens:
        item = _item_from_token(token, token.line if with_lines else None)
        if phrase_start is not None and item.plain_word and _only_spaces(text[previous_end : token.start]):
            items[-1] = replace(items[-1], value=text[phrase_start : token.end].translate(_DROP_ZERO_WIDTH))
        else:
            items.append(item)
            phrase_start = token.start if item.plain_word else None
        previous_end = token.end
    return items


def _only_spaces(gap: str) -> bool:
    return all(char in " \t\u00a0" or char in _ZERO_WIDTH for char in gap)


def _item_from_token(token: _Token, line: int | None) -> _Item:
    if token.kind == "open_quote":
        return _Item("junk", token.value, line, "missing closing quote")
    if token.kind == "name":
        return _name_item(token.value, line)
    return _word_item(token.value, line)


def _name_item(raw: str, line: int | None) -> _Item:
    name = _trim(raw)
    if not name:
        return _Item("junk", f'"{raw}"', line, "empty name")
    if len(name) > MAX_NAME_LENGTH:
        return _Item("junk", name, line, f"name longer than {MAX_NAME_LENGTH} characters, the Constant Contact limit")
    return _Item("name", name, line)


def _word_item(word: str, line: int | None) -> _Item:
    body, wrapped = _unwrap(word)
    if _UUID_RE.fullmatch(body):
        return _Item("id", body.lower(), line)
    if wrapped or _looks_like_id(body):
        return _Item("junk", word, line, _id_problem(body))
    return _Item("junk", word, line, QUOTE_NAMES_HINT, plain_word=True)


def _unwrap(token: str) -> tuple[str, bool]:
    """The id inside `…`, <…>, {…} or after urn:uuid:, and whether it used the id-only forms {…}/urn:uuid:."""
    body, wrapped = token, False
    for left, right in (("`", "`"), ("<", ">"), ("{", "}")):
        if len(body) >= 2 and body[0] == left and body[-1] == right:
            body, wrapped = body[1:-1], wrapped or left == "{"
    if body[:9].lower() == "urn:uuid:":
        body, wrapped = body[9:], True
    return body, wrapped


def _looks_like_id(body: str) -> bool:
    """A mistyped or truncated UUID rather than a word: long, with digits or hyphens, mostly hex."""
    if len(body) < 8 or not any(char in "0123456789-" for char in body):
        return False
    return sum(char in _HEX_OR_HYPHEN for char in body) >= 0.75 * len(body)


def _id_problem(body: str) -> str:
    bad = next((char for char in body if char not in _HEX_OR_HYPHEN), None)
    if bad is not None:
        return f"not a valid tag id: contains {_describe_char(bad)}, not hexadecimal"
    if len(body) != 36:
        hint = " (the hyphens are missing)" if len(body) == 32 else ""
        return f"not a valid tag id: {len(body)} characters, expected 36{hint}"
    return "not a valid tag id: hyphens in the wrong places, expected 8-4-4-4-12"


def _describe_char(char: str) -> str:
    if char.isspace():
        return "a space"
    if char.isprintable():
        return f"'{char}'"
    return f"U+{ord(char):04X}"


def combine(*selections: Selection, max_entries: int = MAX_ENTRIES) -> Selection:
    """One selection from several sources (a modal's text box and its file), de-duplicated across them."""
    items = [_Item("id", tag_id) for selection in selections for tag_id in selection.ids]
    items += [_Item("name", name) for selection in selections for name in selection.names]
    combined = _collect(items, max_entries)
    examples = tuple(itertools.islice((junk for selection in selections for junk in selection.junk), JUNK_EXAMPLES))
    return replace(
        combined,
        duplicates=combined.duplicates + sum(selection.duplicates for selection in selections),
        junk=examples,
        more_junk=sum(selection.junk_count for selection in selections) - len(examples),
    )


def _collect(items: Iterable[_Item], max_entries: int, *, junk_limit: int | None = None) -> Selection:
    """The selection; with a `junk_limit` (files), InputError as soon as the input looks hopeless."""
    collector = _Collector()
    for item in items:
        _add(collector, item)
        if junk_limit is not None and item.kind == "junk":
            _give_up_if_hopeless(collector, item, junk_limit)
    count = collector.entry_count
    if count > max_entries:
        raise InputError(
            f"The list has {count:,} tag entries; the limit is {max_entries:,} per request. "
            "Split it into several requests."
        )
    return Selection(
        tuple(collector.ids), tuple(collector.names.values()), collector.duplicates, tuple(collector.junk),
        collector.junk_count - len(collector.junk),
    )


def _add(collector: _Collector, item: _Item) -> None:
    if item.kind == "junk":
        collector.junk_count += 1
        if len(collector.junk) < JUNK_EXAMPLES:
            collector.junk.append(Junk(item.line, clean_junk_text(item.value), item.reason))
        return
    seen, key = (collector.ids, item.value) if item.kind == "id" else (collector.names, name_key(item.value))
    if key in seen:
        collector.duplicates += 1
    else:
        seen[key] = item.value


def _give_up_if_hopeless(collector: _Collector, item: _Item, junk_limit: int) -> None:
    line = item.line or 0
    if line > HOPELESS_LINES and collector.junk_count >= HOPELESS_MIN_JUNK and not collector.entry_count:
        opening = f"I stopped reading the file after {HOPELESS_LINES:,} lines, none of which was a tag id or name."
        raise InputError(_gave_up_message(collector, opening))
    if collector.junk_count > junk_limit:
        opening = (f"I stopped reading the file at line {line:,}: more than {junk_limit:,} entries in it "
                   "are not tag ids or names, so it is probably not the list you meant.")
        raise InputError(_gave_up_message(collector, opening))


def _gave_up_message(collector: _Collector, opening: str) -> str:
    shown = Selection(junk=tuple(collector.junk), more_junk=collector.junk_count - len(collector.junk)).junk_summary()
    return f"{opening} The first of them:\n{shown}\nType `/deletetags help` for the format."


def _junk_limit(max_entries: int) -> int:
    return max(HOPELESS_LINES, 2 * max_entries)


# ---------------------------------------------------------------- files


def parse_file(
    data: bytes, *, filename: str, max_bytes: int = MAX_FILE_BYTES, max_entries: int = MAX_ENTRIES
) -> Selection:
    """Tag ids and names from an uploaded CSV/TSV/TXT file; raises InputError for an unusable file."""
    extension = _check_extension(filename)
    if not data:
        raise InputError("The file is empty.")
    if len(data) > max_bytes:
        raise InputError(
            f"The file is {_size(len(data), round_up=True)}; the limit is {_size(max_bytes, round_up=False)}. "
            "Split it into smaller files."
        )
    text = _normalize_newlines(_decode(data))
    if _looks_like_html(text):
        raise InputError(
            "The file is a web page (HTML), not a CSV or text file. It looks like a Slack sign-in page, "
            "which means the bot could not download the file. Upload it again; if this keeps happening, "
            "ask an admin to check that the bot has the files:read permission."
        )
    if not _trim(text):
        raise InputError("The file is empty.")
    return _collect(_file_items(text, extension), max_entries, junk_limit=_junk_limit(max_entries))


def _check_extension(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    extension = os.path.splitext(base)[1].lower()
    extension = "" if extension == "." else extension
    if extension in _FILE_EXTENSIONS:
        return extension
    shown = f"{extension} files are" if re.fullmatch(r"\.[a-z0-9]{1,10}", extension) else "This file type is"
    hint = f" {SAVE_AS_CSV_HINT}" if extension in _SPREADSHEET_EXTENSIONS else ""
    raise InputError(
        f"{shown} not supported. Upload a .csv, .tsv or .txt file (or one without an extension).{hint}"
    )


def _decode(data: bytes) -> str:
    if data.startswith(b"PK\x03\x04"):
        raise InputError(f"The file looks like an Excel workbook or a ZIP archive, not a CSV. {SAVE_AS_CSV_HINT}")
    if data.startswith(codecs.BOM_UTF8):
        text = _strict_decode(data[3:], "utf-8")
    elif data.startswith(codecs.BOM_UTF16_LE):
        text = _strict_decode(data[2:], "utf-16-le")
    elif data.startswith(codecs.BOM_UTF16_BE):
        text = _strict_decode(data[2:], "utf-16-be")
    elif b"\x00" in data:
        text = _strict_decode(data, _bomless_utf16(data))
    else:
        text = _decode_8bit(data)
    if _looks_binary(text):
        raise _binary_error()
    return text


def _binary_error() -> InputError:
    return InputError(
        f"The file is not plain text (it looks binary). Upload a .csv, .tsv or .txt file. {SAVE_AS_CSV_HINT}"
    )


def _strict_decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise _binary_error() from None


def _bomless_utf16(data: bytes) -> str:
    """UTF-16 without a BOM shows NULs in every other byte (mostly ASCII content); else it is binary."""
    sample = data[:4096]
    even_nuls, odd_nuls = sample[0::2].count(0), sample[1::2].count(0)
    pairs = max(len(sample) // 2, 1)
    if odd_nuls >= 0.3 * pairs and even_nuls <= 0.05 * pairs:
        return "utf-16-le"
    if even_nuls >= 0.3 * pairs and odd_nuls <= 0.05 * pairs:
        return "utf-16-be"
    raise _binary_error()


def _decode_8bit(data: bytes) -> str:
    # Excel on Windows saves "CSV" in Windows-1252; latin-1 catches its five undefined bytes.
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _looks_binary(text: str) -> bool:
    text = text.rstrip("\x1a")  # DOS end-of-file marker
    if "\x00" in text:
        return True
    return len(_CONTROL_RE.findall(text)) > 0.01 * len(text)


def _looks_like_html(text: str) -> bool:
    start = _trim(text[:512]).lower()
    return start.startswith("<!doctype html") or start.startswith("<html")


def _file_items(text: str, extension: str) -> Iterator[_Item]:
    lines = text.split("\n")
    first = next((index for index, line in enumerate(lines) if not _skipped(line)), None)
    if first is None:
        return
    kept = (line for line in itertools.islice(lines, first, None) if not _skipped(line))
    sniffed = itertools.islice(kept, _SNIFF_LINES)
    delimiter = "\t" if extension == ".tsv" else _sniff_delimiter(sniffed)
    header = _header(_split_cells(lines[first], delimiter), delimiter)
    if header is None:
        yield from _headerless_items(_numbered(lines, first), delimiter)
    else:
        yield from _header_items(header, _numbered(lines, first + 1))


def _numbered(lines: list[str], start: int) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) from index `start` on, without copying the list."""
    return itertools.islice(enumerate(lines, start=1), start, None)


def _skipped(line: str) -> bool:
    stripped = _trim(line)
    return not stripped or stripped.startswith("#")


def _sniff_delimiter(lines: Iterable[str]) -> str:
    lines_with = {delimiter: 0 for delimiter in _DELIMITERS}
    for line in lines:
        outside = _outside_quotes(line)
        for delimiter in _DELIMITERS:
            lines_with[delimiter] += delimiter in outside
    best = max(_DELIMITERS, key=lambda delimiter: lines_with[delimiter])
    return best if lines_with[best] else ","


def _outside_quotes(line: str) -> str:
    return "".join(part for index, part in enumerate(line.split('"')) if index % 2 == 0)


def _split_cells(line: str, delimiter: str) -> list[str] | None:
    """The trimmed cells of one line, or None when a quoted cell is never closed."""
    if '"' not in line:
        return [_trim(cell) for cell in line.split(delimiter)]
    try:
        cells = next(csv.reader((line,), delimiter=delimiter, skipinitialspace=True, strict=True))
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            return None
        cells = _lenient_cells(line, delimiter)
    return [_trim(cell) for cell in cells]


def _lenient_cells(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader((line,), delimiter=delimiter, skipinitialspace=True))
    except csv.Error:
        return [line]


def _header(cells: list[str] | None, delimiter: str) -> _Header | None:
    """The header when the first row names an id and/or a name column, else None."""
    if not cells or any(_UUID_RE.fullmatch(_unwrap(cell)[0]) for cell in cells):
        return None
    keys = [re.sub(r"[\s_\-]+", "", cell.translate(_DROP_ZERO_WIDTH).lower()) for cell in cells]
    id_column = next((index for index, key in enumerate(keys) if key in _ID_HEADERS), None)
    name_column = next((index for index, key in enumerate(keys) if key in _NAME_HEADERS), None)
    if id_column is None and name_column is None:
        return None
    return _Header(id_column, name_column, len(cells), delimiter)


def _header_items(header: _Header, lines: _NumberedLines) -> Iterator[_Item]:
    for number, line in lines:
        if not _skipped(line):
            item = _header_row_item(header, number, line, _split_cells(line, header.delimiter))
            if item is not None:
                yield item


def _header_row_item(header: _Header, number: int, line: str, cells: list[str] | None) -> _Item | None:
    if cells is None:
        return _Item("junk", line, number, "missing closing quote")
    if any(cells[header.width :]):
        # An unquoted name containing the delimiter would shift every cell; never guess.
        return _Item("junk", line, number, _extra_cells_reason(header))
    id_cell = _cell(cells, header.id_column)
    if id_cell:
        return _id_cell_item(id_cell, number)
    name_cell = _cell(cells, header.name_column)
    if name_cell:
        return _name_cell_item(name_cell, number)
    return _Item("junk", line, number, _missing_cell_reason(header)) if any(cells) else None


def _cell(cells: list[str], column: int | None) -> str:
    return cells[column] if column is not None and column < len(cells) else ""


def _extra_cells_reason(header: _Header) -> str:
    delimiter = {",": "comma", ";": "semicolon", "\t": "tab"}[header.delimiter]
    return f"more cells than the header row has columns; put a name that contains a {delimiter} in double quotes"


def _missing_cell_reason(header: _Header) -> str:
    if header.id_column is not None and header.name_column is not None:
        return "no tag id or name in this row"
    return "no tag id in this row" if header.id_column is not None else "no tag name in this row"


def _id_cell_item(cell: str, line: int) -> _Item:
    if _is_plain_uuid(cell):
        return _Item("id", _lowercase(cell), line)
    formula = _formula_problem(cell)
    if formula:
        return _Item("junk", cell, line, formula)
    body = _unwrap(cell.translate(_DROP_ZERO_WIDTH))[0]
    if _UUID_RE.fullmatch(body):
        return _Item("id", body.lower(), line)
    return _Item("junk", cell, line, _id_problem(body))


def _name_cell_item(cell: str, line: int) -> _Item:
    if _formula_problem(cell):
        return _Item("junk", cell, line, FORMULA_NAME_REASON)
    return _name_item(cell, line)


def _formula_problem(cell: str) -> str | None:
    if len(cell) < 2 or cell[0] not in _FORMULA_STARTS:
        return None
    if _UUID_RE.fullmatch(_unwrap(_trim(cell[1:]))[0]):
        return f"not a valid tag id: starts with '{cell[0]}'"
    return FORMULA_REASON


def _headerless_items(lines: _NumberedLines, delimiter: str) -> Iterator[_Item]:
    for number, line in lines:
        if _is_plain_uuid(line):
            yield _Item("id", _lowercase(line), number)
        elif not _skipped(line):
            yield from _headerless_row_items(number, line, _split_cells(line, delimiter))


def _is_plain_uuid(text: str) -> bool:
    """A UUID with nothing around it: the common case, which skips the checks for everything else."""
    return len(text) == 36 and _UUID_RE.fullmatch(text) is not None


def _lowercase(tag_id: str) -> str:
    # lower() always copies; most ids already are lowercase, and 100,000 copies weigh 10 MB.
    return tag_id if tag_id.islower() else tag_id.lower()


def _headerless_row_items(number: int, line: str, cells: list[str] | None) -> list[_Item]:
    if cells is None:
        return [_Item("junk", line, number, "missing closing quote")]
    items: list[_Item] = []
    for cell in cells:
        if _is_plain_uuid(cell):
            items.append(_Item("id", _lowercase(cell), number))
            continue
        formula = _formula_problem(cell)
        if formula:
            items.append(_Item("junk", cell, number, formula))
            continue
        for word in cell.translate(_DROP_ZERO_WIDTH).split():
            item = _word_item(word, number)
            if not item.plain_word:
                items.append(item)
    if not items:
        items.append(_Item("junk", line, number, HEADERLESS_HINT))
    return items


def name_key(name: str) -> str:
    """How names are compared: NFC, case-folded, invisible characters dropped, whitespace collapsed."""
    visible = unicodedata.normalize("NFC", name).translate(_DROP_ZERO_WIDTH)
    return " ".join(visible.casefold().split())


# ---------------------------------------------------------------- helpers


def _trim(text: str) -> str:
    return text.strip(_BLANK)


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _size(byte_count: int, *, round_up: bool) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if byte_count >= scale:
            tenths = -(-byte_count * 10 // scale) if round_up else byte_count * 10 // scale
            return f"{tenths / 10:,.1f} {unit}"
    return f"{byte_count:,} bytes"


def clean_junk_text(text: str) -> str:
    """User text reduced to one visible line of at most 60 characters (control and format characters go)."""
    prefix = text[: JUNK_TEXT_LIMIT * 4]
    visible = prefix if prefix.isprintable() else "".join(_visible(char) for char in prefix)
    single = " ".join(visible.split())
    if len(single) <= JUNK_TEXT_LIMIT and len(prefix) == len(text):
        return single
    return single[: JUNK_TEXT_LIMIT - 1] + "…"


def _visible(char: str) -> str:
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    return " " if category in ("Cc", "Zl", "Zp") else char


_QUOTED_CHARACTER = re.compile(r"'(.)'")


def reason_for_slack(reason: str) -> str:
    """A junk reason is the parser's own wording (its backticks format); the one character of input
    it may quote, as in "contains '<'", goes through the rule for outside text."""
    return _QUOTED_CHARACTER.sub(lambda match: f"'{outside_text(match.group(1))}'", reason)


def safe_for_slack(text: str) -> str:
    """User text that can sit inside backticks in a Slack message without breaking out or mentioning."""
    return outside_text(clean_junk_text(text))


def quote_for_slack(text: str) -> str:
    return f"`{safe_for_slack(text) or ' '}`"


USAGE: str = usage()
