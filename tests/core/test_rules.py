"""bot.core.rules: reading rules, and which tags they match."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.rules import RuleError, parse_rule


@dataclass(frozen=True)
class T:
    name: str
    contacts_count: int | None = 1
    created_at: datetime | None = None


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


@pytest.mark.parametrize("pattern, name, matches", [
    ("Webinar 2023*", "webinar 2023 – spring", True),
    ("Webinar 2023*", "Old Webinar 2023", False),
    ("*2023*", "Old Webinar 2023", True),
    ("Webinar 202?", "Webinar 2024", True),
    ("Webinar 202?", "Webinar 20245", False),
    ("[VIP]*", "[vip] gold", True),  # brackets are characters, not a class
    ("[VIP]*", "V gold", False),
    ("Spring  Promo", "spring promo", True),  # whitespace collapsed on both sides
    ("CAFÉ", "cafe\u0301", True),  # NFC: é written two ways
])
def test_patterns(pattern: str, name: str, matches: bool) -> None:
    assert parse_rule(f'matching "{pattern}"').matches(T(name)) is matches


def test_dates_are_whole_utc_days() -> None:
    before, after = parse_rule("created before 2024-01-01"), parse_rule("created after 2024-01-01")
    assert before.matches(T("a", created_at=at("2023-12-31T23:59:59")))
    assert not before.matches(T("a", created_at=at("2024-01-01T00:00:00")))
    assert not after.matches(T("a", created_at=at("2024-01-01T23:59:59")))
    assert after.matches(T("a", created_at=at("2024-01-02T00:00:00")))
    assert not before.matches(T("a", created_at=None)) and not after.matches(T("a", created_at=None))


def test_empty_means_on_no_contact_and_unknown_counts_are_not_empty() -> None:
    rule = parse_rule("empty")
    assert rule.matches(T("a", 0)) and not rule.matches(T("a", 1)) and not rule.matches(T("a", None))


def test_clauses_join_with_and_and_read_back_canonically() -> None:
    rule = parse_rule('EMPTY  and   Matching “Web*”\tand created BEFORE 2024-01-01 and empty')
    assert rule.text == 'empty and matching "Web*" and created before 2024-01-01'
    assert parse_rule(rule.text) == rule


TEXTS = st.lists(st.sampled_from(["empty", "matching", "created", "before", "after", "and", "or", '"W*"', '"',
                                  "“x”", "2024-01-01", "2024-02-30", "x", "<!here>", "*", "\n", "AND"]),
                 max_size=8).map(" ".join)


@given(st.one_of(TEXTS, st.text(max_size=80)))
def test_any_text_is_a_rule_or_a_specific_message(text: str) -> None:
    try:
        rule = parse_rule(text)
    except RuleError as error:
        assert error.message and "<!here>" not in error.message and "\n" not in error.message
        return
    assert parse_rule(rule.text) == rule
