"""Bad input, end to end: every named case goes through the real app (slash command, file dropped in a
DM, or the modal) and the test asserts the exact words the person gets back.

Then property tests: random command text through the app (few examples) and through `bot.core.tags`
(many), random file bytes, and random signed interaction payloads, which must never produce a 500,
an apology or a state change.
"""

from __future__ import annotations

import codecs
import json
import string
import typing
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import tags
from bot.core.mrkdwn import outside_text
from bot.sandbox.slack import Ephemeral
from bot.sandbox.world import World
from tests.reliability.support import (
    APOLOGY_START,
    SimWall,
    button_payload,
    ephemerals_for,
    next_ephemeral,
    signed_interaction,
    start_fast_world,
)

MAX_ENTRIES = 10
USAGE = tags.usage(MAX_ENTRIES, 5_000_000)
NOTHING = "None of the {n} entries matches exactly one tag in Constant Contact, so there is nothing to delete."
QUOTE_HINT = 'not a tag id; put tag names in quotes, e.g. "Spring Promo"'
SAVE_AS = "In Excel use File › Save As › CSV UTF-8 and upload that file."
TAG_NAMES = {
    "spring": ("Spring Promo 2024", 120), "comma": ("VIP, Gold", 3), "quote": ('Say "hi"', 2),
    "vip1": ("VIP Gold", 5), "vip2": ("VIP  Gold", 7), "cafe": ("Café", 4), "formula": ("=cmd", 1),
}
FIXED_ID = "0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a99"


@dataclass
class Corpus:
    world: World
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    world = start_fast_world(tmp_path_factory.mktemp("corpus"), {"MAX_ENTRIES": str(MAX_ENTRIES)}, SimWall())
    try:
        yield Corpus(world, {key: world.cc.add_tag(name, count) for key, (name, count) in TAG_NAMES.items()})
    finally:
        world.stop()


@dataclass(frozen=True)
class Case:
    """One bad input: how it is sent, and the exact text (of the message, or of one of its blocks) shown."""

    name: str
    via: str  # "command" | "file" | "modal"
    content: str | bytes
    expected: str
    filename: str = "tags.csv"
    in_block: bool = False


def many_ids(count: int) -> str:
    return " ".join(str(uuid.UUID(int=i + 1)) for i in range(count))


def utf16_csv(text: str, encoding: str, bom: bool) -> bytes:
    data = text.encode(encoding)
    return (codecs.BOM_UTF16_LE if encoding == "utf-16-le" else codecs.BOM_UTF16_BE) + data if bom else data


def preview_line(key: str) -> str:
    name, count = TAG_NAMES[key]
    noun = "contact" if count == 1 else "contacts"
    return f"• *{outside_text(name)}* `{{{key}}}` — {count} {noun}"


CASES = [
    # --- the slash command: nothing usable ---------------------------------------------------------
    Case("only junk words", "command", "hello world", "I don't know `hello`.\n\n" + USAGE),
    Case("only separators", "command", ";;;,,,", "I don't know `;;;,,,`.\n\n" + USAGE),
    Case("unknown subcommand", "command", "frobnicate now", "I don't know `frobnicate`.\n\n" + USAGE),
    Case("junk words with a reason", "command", "foo bar reason: cleanup",
         f"No tag ids or names found. These entries were not used:\n• `foo bar` — {QUOTE_HINT}\n"
         "Type `/deletetags help` for the format."),
    Case("a reason and nothing else", "command", "reason: cleanup",
         "No tag ids or names found. Type `/deletetags help` for the format."),
    Case("over the entry limit", "command", many_ids(MAX_ENTRIES + 1) + " reason: too many",
         f"The list has {MAX_ENTRIES + 1} tag entries; the limit is {MAX_ENTRIES} per request. "
         "Split it into several requests."),
    Case("32 hex digits without hyphens", "command", "0b9c5d8e2a9f4d389c517f1f1b3e0a99 reason: x",
         "No tag ids or names found. These entries were not used:\n• `0b9c5d8e2a9f4d389c517f1f1b3e0a99` — not a "
         "valid tag id: 32 characters, expected 36 (the hyphens are missing)\nType `/deletetags help` for the format."),
    Case("a truncated id", "command", "0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a9 reason: x",
         "No tag ids or names found. These entries were not used:\n• `0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a9` — not a "
         "valid tag id: 35 characters, expected 36\nType `/deletetags help` for the format."),
    Case("an id with a letter that is not hex", "command", "0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a9z reason: x",
         "No tag ids or names found. These entries were not used:\n• `0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a9z` — not a "
         "valid tag id: contains 'z', not hexadecimal\nType `/deletetags help` for the format."),
    Case("a spreadsheet formula typed as a word", "command", "=SUM(A1:A9) reason: x",
         f"No tag ids or names found. These entries were not used:\n• `=SUM(A1:A9)` — {QUOTE_HINT}\n"
         "Type `/deletetags help` for the format."),
    Case("an empty quoted name", "command", '"" reason: x',
         "No tag ids or names found. These entries were not used:\n• `\"\"` — empty name\n"
         "Type `/deletetags help` for the format."),
    Case("a name longer than 255 characters", "command", '"' + "n" * 256 + '" reason: x',
         "No tag ids or names found. These entries were not used:\n• `" + "n" * 59 + "…` — name longer than 255 "
         "characters, the Constant Contact limit\nType `/deletetags help` for the format."),
    Case("an unterminated quote", "command", '"Spring Promo 2024 reason: x',
         "No tag ids or names found. These entries were not used:\n• `\"Spring Promo 2024 reason: x` — missing "
         "closing quote\nType `/deletetags help` for the format."),
    Case("mentions and markup cannot ping", "command", "<!channel> @here reason: x",
         "No tag ids or names found. These entries were not used:\n• `&lt;!channel&gt; @here` — "
         f"{QUOTE_HINT}\nType `/deletetags help` for the format."),
    Case("a backtick cannot break out of the quoting", "command", "`oops` reason: x",
         "No tag ids or names found. These entries were not used:\n• `ˋoopsˋ` — not a tag id; put tag names in quotes, "
         "e.g. \"Spring Promo\"\nType `/deletetags help` for the format."),
    Case("cancel without a number", "command", "cancel",
         "Which request? For example `/deletetags cancel 12` (see `/deletetags list`)."),
    Case("cancel with a word for a number", "command", "cancel abc",
         "`abc` is not a request number; use digits, e.g. `/deletetags cancel 12`."),
    Case("cancel with a superscript digit", "command", "cancel ³",
         "`³` is not a request number; use digits, e.g. `/deletetags cancel 12`."),
    Case("status with a superscript digit", "command", "status ²",
         "`²` is not a request number; use digits, e.g. `/deletetags status 12`."),
    Case("status with a circled digit", "command", "status ①",
         "`①` is not a request number; use digits, e.g. `/deletetags status 12`."),
    Case("status with Arabic-Indic digits", "command", "status #١٢",
         "`#١٢` is not a request number; use digits, e.g. `/deletetags status 12`."),
    Case("status with markup for a number", "command", "status <!here> *1*",
         "`&lt;!here&gt; ∗1∗` is not a request number; use digits, e.g. `/deletetags status 12`."),
    Case("cancel an unknown request", "command", "cancel 99999", "Request #99999 does not exist (any more)."),
    Case("status of an unknown request", "command", "status #99999", "There is no request #99999."),
    # --- the slash command: resolved against the account ----------------------------------------------
    Case("an unknown id", "command", f"{FIXED_ID} reason: x",
         NOTHING.format(n=1) + f"\nUnknown ids: `{FIXED_ID}`"),
    Case("an unknown name", "command", '"No Such Tag" reason: x', NOTHING.format(n=1) + "\nUnknown names: “No Such Tag”"),
    Case("a name that could ping", "command", '"<@U0ALEX> <!channel>" reason: x',
         NOTHING.format(n=1) + "\nUnknown names: “&lt;@U0ALEX&gt; &lt;!channel&gt;”"),
    Case("names differing only by whitespace are ambiguous", "command", '"VIP Gold" reason: x',
         NOTHING.format(n=1) + "\n“VIP Gold” matches several tags (`{vip1}`, `{vip2}`): use the id."),
    Case("names differing only by case are ambiguous", "command", '"vip  GOLD" reason: x',
         NOTHING.format(n=1) + "\n“vip  GOLD” matches several tags (`{vip1}`, `{vip2}`): use the id."),
    Case("an id in capitals", "command", "{SPRING} reason: x", preview_line("spring"), in_block=True),
    Case("an id in braces", "command", "{{spring}} reason: x", preview_line("spring"), in_block=True),
    Case("an id after urn:uuid:", "command", "urn:uuid:{spring} reason: x", preview_line("spring"), in_block=True),
    Case("a zero-width space inside an id", "command", "{spring_zw} reason: x", preview_line("spring"), in_block=True),
    Case("a name with a comma", "command", '"VIP, Gold" reason: x', preview_line("comma"), in_block=True),
    Case("a name with an escaped quote", "command", r'"Say \"hi\"" reason: x', preview_line("quote"), in_block=True),
    Case("a name with a doubled quote", "command", '"Say ""hi""" reason: x', preview_line("quote"), in_block=True),
    Case("curly quotes from a phone", "command", "“Spring Promo 2024” reason: x", preview_line("spring"),
         in_block=True),
    Case("a tag whose name looks like a formula", "command", '"=cmd" reason: x', preview_line("formula"),
         in_block=True),
    Case("mixed ids, names and an unknown", "command", '{spring};"Café"\t' + FIXED_ID + " reason: x",
         f":grey_question: 1 id matched no tag: `{FIXED_ID}`", in_block=True),
    Case("the same tag by id and by name", "command", '{spring}, "spring promo 2024" {spring} reason: x',
         ":recycle: 2 duplicates dropped.", in_block=True),
    Case("ids separated by semicolons and NBSP", "command", "{spring};\u00a0{spring_upper} reason: x",
         ":recycle: 1 duplicate dropped.", in_block=True),
    # --- files dropped in a DM ---------------------------------------------------------------------
    Case("an empty file", "file", b"", "The file is empty."),
    Case("a file of blank lines", "file", b"\r\n  \r\n\t\r\n", "The file is empty."),
    Case("a 20 MB file", "file", b"a" * 20_000_000,
         "`big.csv` is 20.0 MB; the limit is 5.0 MB. Split it into smaller files.", filename="big.csv"),
    Case("a binary file", "file", bytes(range(256)) * 8,
         f"The file is not plain text (it looks binary). Upload a .csv, .tsv or .txt file. {SAVE_AS}"),
    Case("a workbook saved as .xlsx", "file", b"PK\x03\x04workbook",
         "`book.xlsx` is a .xlsx file; I read only CSV or TXT files (one tag id or name per line, or a CSV with a "
         "`tag_id` or `name` column).", filename="book.xlsx"),
    Case("a workbook renamed to .csv", "file", b"PK\x03\x04" + b"\x00" * 64,
         f"The file looks like an Excel workbook or a ZIP archive, not a CSV. {SAVE_AS}"),
    Case("a PDF", "file", b"%PDF-1.7", "`scan.pdf` is a .pdf file; I read only CSV or TXT files (one tag id or name per "
         "line, or a CSV with a `tag_id` or `name` column).", filename="scan.pdf"),
    Case("a Slack sign-in page instead of the file", "file",
         b"<!DOCTYPE html>\n<html><head><title>Sign in | Slack</title></head><body>Sign in</body></html>",
         "The file is a web page (HTML), not a CSV or text file. It looks like a Slack sign-in page, which means the "
         "bot could not download the file. Upload it again; if this keeps happening, ask an admin to check that "
         "the bot has the files:read permission."),
    Case("only comments", "file", b"# tags to delete\n# none yet\n",
         "No tag ids or names found. Type `/deletetags help` for the format."),
    Case("names without a header row", "file", b"Spring Promo 2024\nVIP Gold\n",
         "No tag ids or names found. These entries were not used:\n• line 1: `Spring Promo 2024` — no tag id in this "
         "line; to delete by name, add a header row `name`\n• line 2: `VIP Gold` — no tag id in this line; to delete "
         "by name, add a header row `name`\nType `/deletetags help` for the format."),
    Case("only spreadsheet formulas", "file", b"name\n=cmd|' /C calc'!A0\n@SUM(1+1)\n",
         "No tag ids or names found. These entries were not used:\n• line 2: `=cmd|' /C calc'!A0` — spreadsheet "
         "formula, ignored (never evaluated); to delete a tag whose name starts with =, +, - or @, use its id\n"
         "• line 3: `@SUM(1+1)` — spreadsheet formula, ignored (never evaluated); to delete a tag whose name starts "
         "with =, +, - or @, use its id\nType `/deletetags help` for the format."),
    Case("more entries than the limit", "file", ("\n".join(many_ids(MAX_ENTRIES + 1).split())).encode(),
         f"The list has {MAX_ENTRIES + 1} tag entries; the limit is {MAX_ENTRIES} per request. "
         "Split it into several requests."),
    Case("unknown ids only", "file", f"tag_id\n{FIXED_ID}\n".encode(),
         NOTHING.format(n=1) + f"\nUnknown ids: `{FIXED_ID}`"),
    Case("UTF-16 with a BOM", "file", "tag_id\r\n{spring}\r\n", preview_line("spring"), in_block=True),
    Case("UTF-16 without a BOM", "file", "utf16be:tag_id\n{spring}\n", preview_line("spring"), in_block=True),
    Case("UTF-8 with a BOM and CRLF", "file", "bom:name\r\nSpring Promo 2024\r\n", preview_line("spring"),
         in_block=True),
    Case("Windows-1252 accents", "file", "cp1252:name\nCafé\n", preview_line("cafe"), in_block=True),
    Case("semicolon-separated with both columns", "file", "tag_id;name\n;VIP, Gold\n{spring};whatever\n",
         preview_line("comma"), in_block=True),
    Case("a quoted name with the delimiter", "file", 'name,count\n"VIP, Gold",3\n', preview_line("comma"),
         in_block=True),
    Case("an unquoted name with the delimiter", "file", "tag_id,name\n,VIP, Gold\n{spring},x\n",
         ":no_entry_sign: Skipped: • line 2: `,VIP, Gold` — more cells than the header row has columns; put a name "
         "that contains a comma in double quotes", in_block=True),
    Case("mixed ids and junk lines", "file", "{spring}\nnot an id\n",
         ":no_entry_sign: Skipped: • line 2: `not an id` — no tag id in this line; to delete by name, add a header "
         "row `name`", in_block=True),
    Case("a file without an extension (Slack calls it binary)", "file", "{spring}\n", preview_line("spring"),
         in_block=True, filename="tags"),
    # --- the modal -----------------------------------------------------------------------------------
    Case("the modal with only junk", "modal", "hello there",
         "No tag ids or names found. These entries were not used:\n• `hello there` — " + QUOTE_HINT
         + "\nType `/deletetags help` for the format."),
    Case("the modal over the limit", "modal", many_ids(MAX_ENTRIES + 1),
         f"The list has {MAX_ENTRIES + 1} tag entries; the limit is {MAX_ENTRIES} per request. "
         "Split it into several requests."),
]


def fill(text: str, ids: dict[str, str]) -> str:
    values = {**ids, "SPRING": ids["spring"].upper(), "spring_upper": ids["spring"].upper(),
              "spring_zw": ids["spring"][:4] + "\u200b" + ids["spring"][4:]}
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def file_bytes(content: str | bytes, ids: dict[str, str]) -> bytes:
    if isinstance(content, bytes):
        return content
    text = fill(content, ids)
    encodings = {"utf16be:": ("utf-16-be", b""), "bom:": ("utf-8", codecs.BOM_UTF8), "cp1252:": ("cp1252", b"")}
    for prefix, (encoding, bom) in encodings.items():
        if text.startswith(prefix):
            return bom + text[len(prefix):].encode(encoding)
    if "\r\n" in text:
        return text.encode("utf-16")
    return text.encode()


def answer_to_command(world: World, text: str, user: str | None = None) -> Ephemeral | None:
    user = user or world.people.requester
    seen_views, seen = len(world.slack.views), len(world.slack.ephemerals)
    response = world.driver.slash_command(user, world.channel, text)
    assert response.status == 200 and response.elapsed < 3.0
    reply = response.reply().get("text") or ""
    if reply and not reply.startswith(":mag: Checking"):
        return next(e for e in ephemerals_for(world, user, seen) if e.via == "ack")

    def answered() -> tuple[Ephemeral | None] | None:
        if not reply and len(world.slack.views) > seen_views:
            return (None,)  # the form opened
        shown = next((e for e in ephemerals_for(world, user, seen) if e.via != "ack"), None)
        return (shown,) if shown else None

    return world.driver.wait_for(answered, what="the answer")[0]


def answer_to_file(world: World, content: bytes, filename: str) -> Ephemeral:
    user, seen = world.people.requester, len(world.slack.ephemerals)
    response = world.driver.upload_file(user, world.slack.bot_user_id, filename, content, text="reason: cleanup")
    assert response.status == 200 and response.elapsed < 3.0
    return world.driver.wait_for(lambda: next(iter(ephemerals_for(world, user, seen)), None), what="the answer")


def answer_to_modal(world: World, text: str) -> Ephemeral:
    user, seen_views, seen = world.people.requester, set(world.slack.views), len(world.slack.ephemerals)
    world.driver.slash_command(user, world.channel, "")
    view = world.driver.wait_for(lambda: next((v for k, v in world.slack.views.items() if k not in seen_views), None),
                                 what="the modal")
    world.driver.submit_view(user, view, {"entries": {"text": text}, "reason": {"reason": "modal test"}})
    return world.driver.wait_for(lambda: next(iter(ephemerals_for(world, user, seen)), None), what="the answer")


def shown_lines(ephemeral: Ephemeral) -> list[str]:
    texts = [ephemeral.text]
    for block in ephemeral.blocks:
        if block.get("type") == "section":
            texts.append(block["text"]["text"])
        texts += [e.get("text", "") for e in block.get("elements") or [] if isinstance(e, dict)]
    return [line for text in texts if isinstance(text, str) for line in text.splitlines()]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_its_exact_message(corpus: Corpus, case: Case) -> None:
    world, requests_before = corpus.world, len(corpus.world.store.requests())
    if case.via == "command":
        shown = answer_to_command(world, fill(str(case.content), corpus.ids))
    elif case.via == "file":
        shown = answer_to_file(world, file_bytes(case.content, corpus.ids), case.filename)
    else:
        shown = answer_to_modal(world, fill(str(case.content), corpus.ids))
    assert shown is not None
    expected = fill(case.expected, corpus.ids)
    if case.in_block:
        assert expected in shown_lines(shown), shown_lines(shown)
        assert len(world.store.requests()) == requests_before + 1
    else:
        assert shown.text == expected
        assert len(world.store.requests()) == requests_before
    assert not shown.text.startswith(APOLOGY_START)


def test_an_empty_command_opens_the_form_and_says_nothing(corpus: Corpus) -> None:
    for text in ("", "   ", "\u200b\u200b", "\u00a0"):
        assert answer_to_command(corpus.world, text) is None


def test_an_empty_form_is_refused_inline(corpus: Corpus) -> None:
    world, seen_views = corpus.world, set(corpus.world.slack.views)
    world.driver.slash_command(world.people.requester, world.channel, "")
    view = world.driver.wait_for(lambda: next((v for k, v in world.slack.views.items() if k not in seen_views), None),
                                 what="the modal")
    response = world.driver.submit_view(world.people.requester, view, {"reason": {"reason": "why not"}})
    assert response.json() == {"response_action": "errors",
                               "errors": {"entries": "Paste tag ids or \"names\", attach a CSV/TXT file, or write a rule below."}}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


# --- properties ---------------------------------------------------------------------------------------

FEW = settings(max_examples=15, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MANY = settings(max_examples=50, deadline=None, database=None)
PURE_LONG = settings(max_examples=10_000, deadline=None, database=None)

command_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["{spring}", '"VIP Gold"', "reason:", "--", "status", "cancel", "help", ",", ";",
                              "\u200b", "“", '"', "{", "}", "urn:uuid:", "&lt;", "<@U0ALEX>", "\n", "=1+1", "0x"]),
             max_size=12).map(" ".join),
)


@FEW
@given(text=command_text)
def test_any_command_text_is_answered_and_never_starts_a_deletion(corpus: Corpus, text: str) -> None:
    world = corpus.world
    activities = len(world.cc.activities())
    seen = len(world.slack.ephemerals)
    # Waiting for the answer also keeps a preview drafted after the ack from landing in the next test.
    answer_to_command(world, fill(text, corpus.ids), user=world.people.outsider)
    shown = ephemerals_for(world, world.people.outsider, seen)
    assert not any(e.text.startswith(APOLOGY_START) or e.via == "slack" for e in shown)
    assert len(world.cc.activities()) == activities
    assert not [r for r in world.store.requests() if r.state not in ("draft", "awaiting_approval", "cancelled")]


def check_pure_command(text: str) -> None:
    try:
        parsed = tags.parse_command(text, max_entries=MAX_ENTRIES)
    except tags.InputError as error:
        assert error.message.startswith("The list has ")
        return
    assert parsed.kind in typing.get_args(tags.CommandKind)
    if parsed.selection is not None:
        assert all(len(i) == 36 and i == i.lower() for i in parsed.selection.ids)
        assert parsed.selection.entry_count <= MAX_ENTRIES
        for line in parsed.selection.junk_summary().splitlines():
            assert "<" not in line and ">" not in line.replace("&gt;", "")


@MANY
@given(text=command_text)
def test_any_command_text_parses_to_a_safe_selection(text: str) -> None:
    check_pure_command(text)


@pytest.mark.slow
@PURE_LONG
@given(text=command_text)
def test_any_command_text_parses_to_a_safe_selection_long(text: str) -> None:
    check_pure_command(text)


def check_pure_file(data: bytes, filename: str) -> None:
    try:
        selection = tags.parse_file(data, filename=filename, max_entries=MAX_ENTRIES)
    except tags.InputError as error:
        assert error.message and "Traceback" not in error.message
        return
    assert selection.entry_count <= MAX_ENTRIES
    assert all(tags._UUID_RE.fullmatch(i) and i == i.lower() for i in selection.ids)
    assert all(name == name.strip() and 0 < len(name) <= 255 for name in selection.names)


file_content = st.one_of(
    st.binary(max_size=400),
    st.text(alphabet=string.printable + "é\u200b\ufeff;,\t\"", max_size=400).map(str.encode),
    st.lists(st.sampled_from([str(uuid.uuid4()), "tag_id", "name", "=1+1", '"a, b"', "#", ";", ",", "\t", "\r\n",
                              "\n"]), max_size=30).map(lambda parts: "".join(parts).encode()),
)
file_name = st.sampled_from(["t.csv", "t.txt", "t.tsv", "t", "t.xlsx", "t.CSV", "../t.csv"])


@MANY
@given(data=file_content, filename=file_name)
def test_any_file_bytes_give_a_selection_or_a_message(data: bytes, filename: str) -> None:
    check_pure_file(data, filename)


@pytest.mark.slow
@PURE_LONG
@given(data=file_content, filename=file_name)
def test_any_file_bytes_give_a_selection_or_a_message_long(data: bytes, filename: str) -> None:
    check_pure_file(data, filename)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=8)
action_ids = st.sampled_from(["approve_request", "reject_request", "cancel_request", "request_approval", "nope", ""])


def mangle(payload: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps(payload))
    if key == "value":
        changed["actions"][0]["value"] = value
    elif key == "actions":
        changed["actions"] = value
    elif key == "user":
        changed["user"] = value
    elif key == "drop":
        changed.pop(str(value), None)
    else:
        changed[key] = value
    return changed


@FEW
@given(action_id=action_ids, key=st.sampled_from(["value", "actions", "user", "drop", "container", "type"]),
       value=json_values)
def test_random_signed_interactions_never_fail_or_change_state(corpus: Corpus, action_id: str, key: str,
                                                               value: Any) -> None:
    world = corpus.world
    states = {r.id: (r.state, world.store.approvals(r.id)) for r in world.store.requests()}
    payload = mangle(button_payload(world, world.people.outsider, action_id, "1"), key, value)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **world.driver.sign(body)}
    response = world.driver.send_raw(body, headers)
    assert response.status in (200, 400, 404), (response.status, response.body)
    assert {r.id: (r.state, world.store.approvals(r.id)) for r in world.store.requests()} == states


OTHER_DIGITS = ["²", "③", "①", "١٢", "１２"]
BUTTONS = ["approve_request", "reject_request", "cancel_request", "request_approval"]


def decisions_so_far(world: World) -> dict[int, tuple[str, tuple[str, ...]]]:
    return {r.id: (r.state, world.store.approvals(r.id)) for r in world.store.requests()}


@pytest.mark.parametrize("value", OTHER_DIGITS)
def test_buttons_carrying_other_digits_are_refused_and_change_nothing(corpus: Corpus, value: str) -> None:
    """str.isdigit() takes "²" for a digit and int() does not: a click carrying it was an HTTP 500."""
    world, user = corpus.world, corpus.world.people.approver
    before = decisions_so_far(world)
    for action_id in BUTTONS:
        seen = len(world.slack.ephemerals)
        response = signed_interaction(world, button_payload(world, user, action_id, value))
        assert response.status == 200, (action_id, response.status, response.body)
        told = next_ephemeral(world, user, seen)
        assert told.text == "That button does not belong to a request I know.", action_id
    assert decisions_so_far(world) == before


@pytest.mark.parametrize("callback_id", ["reject_reason", "confirm_reason"])
def test_a_modal_carrying_other_digits_changes_nothing(corpus: Corpus, callback_id: str) -> None:
    world, user = corpus.world, corpus.world.people.approver
    before = decisions_so_far(world)
    for metadata in ("²", json.dumps({"request_id": "③"})):
        view = {"id": "V0FORGED", "type": "modal", "callback_id": callback_id, "private_metadata": metadata,
                "state": {"values": {"reason": {"reason": {"type": "plain_text_input", "value": "why not"}}}}}
        payload = {"type": "view_submission", "user": {"id": user}, "team": {"id": world.slack.team_id},
                   "api_app_id": world.slack.app_id, "view": view}
        response = signed_interaction(world, payload)
        assert response.status == 200, (metadata, response.status, response.body)
    assert decisions_so_far(world) == before


@FEW
@given(body=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain"]))
def test_random_signed_bodies_never_produce_a_500(corpus: Corpus, body: bytes, content_type: str) -> None:
    world = corpus.world
    events = len(world.store.events())
    response = world.driver.send_raw(body, {"Content-Type": content_type, **world.driver.sign(body)})
    assert response.status in (200, 400, 401, 404), (response.status, response.body)
    assert len(world.store.events()) == events
