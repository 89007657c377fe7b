"""Which differences between the approved tags and the account stop a request before its POST."""

from __future__ import annotations

import pytest

from bot.core.tag_changes import TagFacts, material_changes

LARGE = 10_000


def changed(before: tuple[str, int | None], after: tuple[str, int | None] | None) -> bool:
    approved = TagFacts("t1", *before)
    now = {} if after is None else {"t1": TagFacts("t1", *after)}
    return bool(material_changes([approved], now, LARGE))


@pytest.mark.parametrize("before, after, stops", [
    (("Spring", 120), ("VIP customers – DO NOT DELETE", 120), True),  # any rename
    (("Spring", 120), ("spring", 120), True),  # even of case: someone touched it
    (("Spring", 120), ("Spring", 48_000), True),
    (("Spring", 120), ("Spring", 133), True),  # +13: over 10 contacts and over 10%
    (("Spring", 120), ("Spring", 131), False),  # +11: under 10%
    (("Spring", 0), ("Spring", 9), False),  # a few sign-ups
    (("Spring", 0), ("Spring", 11), True),
    (("Big", 9_990), ("Big", 10_000), True),  # crossed into large
    (("Big", 20_000), ("Big", 21_000), False),  # large already, +5%
    (("Spring", 120), ("Spring", 3), False),  # fewer contacts lose the tag than approved
    (("Spring", None), ("Spring", None), False),
    (("Spring", 120), None, False),  # gone since: nothing left to delete
])
def test_material_changes(before: tuple[str, int], after: tuple[str, int] | None, stops: bool) -> None:
    assert changed(before, after) is stops


def test_a_change_says_what_changed_and_records_both_sides() -> None:
    (change,) = material_changes([TagFacts("t1", "Spring", 120)], {"t1": TagFacts("t1", "VIP", 48_000)}, LARGE)
    assert change.describe() == "VIP (t1): renamed from “Spring” to “VIP”, 120 → 48,000 contacts"
    assert change.as_record() == {"tag_id": "t1", "name_before": "Spring", "name_now": "VIP",
                                  "contacts_before": 120, "contacts_now": 48_000}
