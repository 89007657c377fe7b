"""The one rule for outside text in Slack (bot.core.mrkdwn), request numbers, and the length limits of
every text the bot builds from lists (bot.core.blocks, bot.core.summary)."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import blocks
from bot.core.mrkdwn import ENTITIES, LOOK_ALIKES, fit_lines, one_line, outside_text
from bot.core.request_numbers import not_a_request_number, request_number, typed_request_number
from bot.core.summary import summarise

FORMATTING = "*_~`"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
SECTION, TEXT = 3_000, 4_000


def decoded(escaped: str) -> str:
    """What Slack shows for escaped text, with the look-alikes read back as the originals."""
    shown = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return shown.translate(str.maketrans({v: k for k, v in LOOK_ALIKES.items()}))


# --- the rule ---------------------------------------------------------------------------------------


def test_a_fake_status_line_in_a_tag_name_stays_on_its_line_without_bold_or_mention() -> None:
    shown = outside_text("X\n*Status:* :white_check_mark: Approved by <@U0ALEX>")
    assert shown == "X ∗Status:∗ :whiteˍcheckˍmark: Approved by &lt;@U0ALEX&gt;"


def test_mentions_and_disguised_links_become_text() -> None:
    assert outside_text("<!channel> <https://evil.example|click>") == (
        "&lt;!channel&gt; &lt;https://evil.example|click&gt;")


def test_entities_typed_by_someone_are_shown_as_typed() -> None:
    assert outside_text("&lt; & &amp;") == "&amp;lt; &amp; &amp;amp;"


def test_control_characters_become_spaces_and_direction_overrides_go() -> None:
    assert outside_text("a\r\nb\tc\x00d\u2028e\u2029f\x85g") == "a b c d e f g"
    assert outside_text("\u202eevil\u202c name\u2066") == "evil name"


def test_other_spaces_stay_because_two_tags_may_differ_only_by_them() -> None:
    assert outside_text(" VIP  Gold\u00a0") == " VIP  Gold\u00a0"


def test_ordinary_text_is_left_alone() -> None:
    family = "👨\u200d👩\u200d👧"
    for text in ("Spring Promo 2024", "Café — “VIP”, 50% off!", f"{family} family", "ürün etiketi"):
        assert outside_text(text) == text


def test_a_limit_cuts_with_an_ellipsis_and_never_inside_an_entity() -> None:
    assert outside_text("abcdef", 4) == "abc…"
    assert outside_text("abc", 3) == "abc"
    for limit in range(2, 12):
        cut = outside_text("a&<>" * 5, limit)
        assert len(cut) <= limit and cut.endswith("…")
        assert re.fullmatch(r"(a|&amp;|&lt;|&gt;)*…", cut), cut


def test_plain_text_keeps_its_characters_but_not_its_line_breaks() -> None:
    assert one_line(" *a*\n<b>\t_c_ ") == " *a* <b> _c_ "
    assert blocks.plain("Reject\nnow")["text"] == "Reject now"


any_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.lists(
    st.sampled_from(["*", "_", "~", "`", "<", ">", "&", "&amp;", "&lt;", "\n", "\r", "\t", "\u2028", "\u202e",
                     "<!channel>", "<@U0ALEX>", "<http://x|y>", " ", "word", "\x00", "\u200d"]), max_size=30
).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=any_text)
def test_escaped_text_cannot_break_a_line_mention_link_or_format(text: str) -> None:
    shown = outside_text(text)
    assert "<" not in shown and ">" not in shown
    assert not any(char in shown for char in FORMATTING)
    assert not any(unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in BIDI for char in shown)
    assert re.sub(r"&(amp|lt|gt);", "", shown).count("&") == 0
    for char, entity in ENTITIES.items():
        assert shown.count(entity) == text.count(char)
    one_line_text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
                            for c in text.replace("\r\n", "\n") if c not in BIDI)
    assert decoded(shown) == one_line_text.translate(str.maketrans({v: k for k, v in LOOK_ALIKES.items()}))


@settings(max_examples=200, deadline=None)
@given(text=any_text, limit=st.integers(min_value=1, max_value=60))
def test_a_limit_is_never_exceeded(text: str, limit: int) -> None:
    assert len(outside_text(text, limit)) <= max(limit, 1)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(alphabet="ab", min_size=0, max_size=30), max_size=40),
       budget=st.integers(min_value=20, max_value=400), left_out=st.integers(min_value=0, max_value=3))
def test_fitted_lines_stay_within_the_budget_and_count_what_is_left_out(lines: list[str], budget: int,
                                                                       left_out: int) -> None:
    fitted = fit_lines(lines, budget, lambda n: f"…and {n} more", left_out)
    assert len(fitted) <= budget
    match = re.search(r"…and (\d+) more$", fitted)
    shown = fitted.split("\n")[:-1] if match else (fitted.split("\n") if lines else [])
    assert shown == lines[: len(shown)]
    assert (int(match.group(1)) if match else 0) == len(lines) - len(shown) + left_out


# --- request numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "③", "①", "٣", "１２", "", " 1", "#1", "-1", "+1", "1_0", "1.0",
                                   "123456789012", None])
def test_only_ascii_digits_are_a_button_or_modal_request_number(value: str | None) -> None:
    assert request_number(value) is None


def test_request_numbers() -> None:
    assert request_number("12") == 12 and request_number("00000000042") == 42
    assert typed_request_number(" #12 ") == 12 and typed_request_number("²") is None
    assert not_a_request_number("²", "status") == (
        "`²` is not a request number; use digits, e.g. `/deletetags status 12`.")
    assert not_a_request_number("`x` <!here>" + "9" * 80, "cancel") == (
        "`ˋxˋ &lt;!here&gt;" + "9" * 22 + "…` is not a request number; use digits, e.g. `/deletetags cancel 12`.")


# --- every list the bot builds stays within Slack's limits --------------------------------------------

# Names of 50 characters that grow when escaped (each `&` becomes `&amp;`) or try to mention and format.
MARKUP_NAMES = ["&*" * 25, "<!here>" + "_" * 43]
LONG_NAMES = [*MARKUP_NAMES, "a" * 50]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def tag_lines(count: int, name: str) -> list[blocks.TagLine]:
    return [blocks.TagLine(str(uuid.UUID(int=i + 1)), name, 1_000 + i) for i in range(count)]


def texts_of(built: list[dict]) -> list[str]:
    found = []
    for block in built:
        if isinstance(block.get("text"), dict):
            found.append(block["text"]["text"])
        found += [e["text"] for e in block.get("elements") or [] if isinstance(e.get("text"), str)]
    return found


def assert_cut_at_a_line(text: str) -> None:
    """A cut list ends with a whole line saying how many more there are, never inside a line; the
    names in it cannot format."""
    *tag_rows, last = text.split("\n")
    assert re.fullmatch(r"…and [\d,]+ \w+.*", last), last
    assert tag_rows and all(re.fullmatch(r"• \*[^*_~`\n]+\* `[0-9a-f-]{36}` — [\d,]+ contacts?.*", row)
                            for row in tag_rows), tag_rows


@pytest.mark.parametrize("count", [50, 500])
@pytest.mark.parametrize("name", MARKUP_NAMES)
def test_the_preview_and_the_card_stay_within_a_section(count: int, name: str) -> None:
    tags = tag_lines(count, name)
    preview = blocks.PreviewView(request_id=7, tags=tags, total_contacts=10**6, batch_count=1,
                                 unknown_names=[name] * count, reason=name * 60,
                                 ambiguous=[(name, tags[:5])] * count)
    card = blocks.CardView(request_id=7, state="rejected", requester_id="U0RITA", reason=name * 60, tags=tags,
                           total_contacts=10**6, batch_count=1, required_approvals=1, decided_by="U0ALEX",
                           rejection_reason=name * 60)
    for built in (blocks.preview_blocks(preview), blocks.card_blocks(card)):
        assert all(len(text) <= SECTION for text in texts_of(built))
        assert_cut_at_a_line(next(t for t in texts_of(built) if t.startswith("• *")))
        assert not [t for t in texts_of(built) if "<!here>" in t]


@pytest.mark.parametrize("count", [50, 500])
@pytest.mark.parametrize("name", LONG_NAMES)
def test_a_failure_summary_stays_within_a_message(count: int, name: str) -> None:
    tags = [SimpleNamespace(tag_id=t.tag_id, name=name, batch_no=0) for t in tag_lines(count, name)]
    error = "Internal error <!here>: *the activity* failed before all tags were deleted. " * 3
    batch = SimpleNamespace(batch_no=0, state="failed", errors=(error,), activity_id="a1")
    summary = summarise(tags, [batch], None)
    text = blocks.summary_text("U0RITA", 12, summary, ["U0ALEX", "U0BEA"], NOW - timedelta(minutes=3), NOW)
    assert len(text) <= TEXT
    assert "<!here>" not in text and "*the activity*" not in text
    listed = text.split("*Not deleted", 1)[1].split("\n")[1:-1]  # between the heading and "Approved by"
    assert re.fullmatch(r"…and [\d,]+ more: \*See all tags\* on the card lists them first", listed[-1])
    assert text.endswith("Approved by <@U0ALEX>, <@U0BEA>.")


@pytest.mark.parametrize("count", [50, 500])
def test_app_home_stays_within_a_section(count: int) -> None:
    reason = "&<" * 1_500
    home = blocks.home_blocks([(i, "completed", 5, reason) for i in range(count)],
                              [(i, "U0RITA", 5, 10, reason) for i in range(count)])
    assert all(len(text) <= SECTION for text in texts_of(home)) and len(home) <= 100
    assert not [text for text in texts_of(home) if re.search(r"&[a-z]*…", text)]  # never cut inside "&amp;"


def test_our_own_advice_at_the_end_of_an_error_keeps_its_code_and_the_rest_is_escaped() -> None:
    from bot.core.advice import CC_AUTH_HINT, OWN_ADVICE
    from bot.core.mrkdwn import outside_text_with_advice

    text = f"Constant Contact said `<!here>` *no*. {CC_AUTH_HINT}"
    shown = outside_text_with_advice(text, OWN_ADVICE, 200)
    assert shown == f"Constant Contact said ˋ&lt;!here&gt;ˋ ∗no∗. {CC_AUTH_HINT}"
    assert "`deletetags-bot cc-auth`" in shown
    assert outside_text_with_advice(f"{CC_AUTH_HINT} `x`", OWN_ADVICE) == outside_text(f"{CC_AUTH_HINT} `x`")
    assert len(outside_text_with_advice("y" * 500 + " " + CC_AUTH_HINT, OWN_ADVICE, 200)) <= 200
