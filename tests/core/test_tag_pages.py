"""The whole list of a request's tags in modal pages."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.core.blocks import TagLine
from bot.core.tag_pages import TAGS_PER_PAGE, all_tags_modal, page_count, parse_page_value


def tags(n: int, name_length: int = 20) -> list[TagLine]:
    return [TagLine(f"id-{i}", f"{i:04}".ljust(name_length, "x"), i) for i in range(n)]


def test_every_tag_appears_on_exactly_one_page_largest_first() -> None:
    all_tags = tags(5_000)
    pages = [all_tags_modal(3, all_tags, p, 1_000) for p in range(page_count(len(all_tags)))]
    assert len(pages) == 50
    texts = ["".join(b["text"]["text"] for b in page["blocks"] if b["type"] == "section") for page in pages]
    for tag in all_tags:
        assert sum(f"`{tag.tag_id}`" in text for text in texts) == 1
    assert texts[0].index("`id-4999`") < texts[0].index("`id-4900`")
    assert "`id-0`" in texts[-1]


def test_long_names_stay_within_slack_limits() -> None:
    page = all_tags_modal(1, tags(TAGS_PER_PAGE, name_length=255), 0, 0)
    assert len(page["blocks"]) <= 100 and len(page["title"]["text"]) <= 24
    assert all(len(b["text"]["text"]) <= 3000 for b in page["blocks"] if b["type"] == "section")


def test_pages_out_of_range_show_the_nearest_page() -> None:
    assert "Page 1 of 1" in str(all_tags_modal(1, tags(3), 7, 0))
    assert "Page 3 of 3" in str(all_tags_modal(1, tags(250), 99, 0))


@given(st.text(max_size=30))
def test_any_button_value_parses_or_is_refused(value: str) -> None:
    parsed = parse_page_value(value)
    assert parsed is None or (isinstance(parsed[0], int) and isinstance(parsed[1], int))


def test_unicode_digits_are_refused() -> None:
    assert parse_page_value("²:1") is None and parse_page_value("1:①") is None
    assert parse_page_value("12:3") == (12, 3)


def test_a_restores_modal_says_not_restored_and_shows_the_old_ids_as_old() -> None:
    tags = [TagLine("0b9c1e2a-5f3d-4c1b-9a7e-1234567890ab", "Spring", 3)]
    modal = str(all_tags_modal(7, tags, 0, 0, {tags[0].tag_id: "activity ended `failed`"}, done="restored"))
    assert "1 tag not restored, listed first" in modal and ":x: not restored: activity ended `failed`" in modal
    assert "(was `0b9c1e2a-5f3d-4c1b-9a7e-1234567890ab`)" in modal and "not deleted" not in modal
