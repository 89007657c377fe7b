"""Finding what to delete by rule, and previews that see the account as it is at that moment."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core import rules, tags
from bot.core.mrkdwn import outside_text
from bot.sandbox.world import World
from tests.e2e.helpers import FAST_POLLS, card, last_ephemeral, preview_for, refreshed

JAN_2023 = calendar.timegm((2023, 1, 15, 12, 0, 0))
JUN_2024 = calendar.timegm((2024, 6, 1, 12, 0, 0))


@pytest.fixture
def world_env() -> dict[str, str]:
    return dict(FAST_POLLS)


def seed(world: World) -> dict[str, str]:
    """Six tags: two empty webinars of 2023, one busy one, and three others of 2024."""
    specs = [("Webinar 2023 – Spring", 0, JAN_2023), ("webinar 2023 autumn", 0, JAN_2023),
             ("Webinar 2023 VIP", 40, JAN_2023), ("Newsletter", 900, JUN_2024),
             ("Spring import 2024", 0, JUN_2024), ("Webinar 2024", 12, JUN_2024)]
    return {name: world.cc.add_tag(name, count, created_at=created) for name, count, created in specs}


def previewed_names(world: World, command: str) -> set[str]:
    world.driver.slash_command(world.people.requester, world.channel, command)
    preview = preview_for(world, world.people.requester)
    request = world.store.requests()[0]
    texts = "\n".join(b["text"]["text"] for b in preview.blocks if "text" in b)
    return {t.name for t in world.store.request_tags(request.id)} | {"__preview__" + texts}


@pytest.mark.parametrize("rule, expected", [
    ("empty", {"Webinar 2023 – Spring", "webinar 2023 autumn", "Spring import 2024"}),
    ('matching "Webinar 2023*"', {"Webinar 2023 – Spring", "webinar 2023 autumn", "Webinar 2023 VIP"}),
    ("created before 2024-01-01", {"Webinar 2023 – Spring", "webinar 2023 autumn", "Webinar 2023 VIP"}),
    ("created after 2024-05-31", {"Newsletter", "Spring import 2024", "Webinar 2024"}),
    ('empty and matching "webinar*"', {"Webinar 2023 – Spring", "webinar 2023 autumn"}),
    ('matching "*2024" and created after 2024-01-01 and empty', {"Spring import 2024"}),
    ('matching "Webinar 202?"', {"Webinar 2024"}),
])
def test_each_rule_alone_and_combined_previews_exactly_its_tags(world: World, rule: str, expected: set[str]) -> None:
    seed(world)
    found = previewed_names(world, f"{rule} reason: tidy up")
    preview = next(n for n in found if n.startswith("__preview__"))
    assert found - {preview} == expected
    assert "*Rule:*" in preview and f"matched {len(expected)} tag" in preview and "of the account's 6" in preview
    request = world.store.requests()[0]
    assert request.reason == "tidy up" and request.source == "rule" and request.account_tag_count == 6


def test_the_list_is_frozen_at_the_preview(world: World) -> None:
    ids = seed(world)
    world.driver.slash_command(world.people.requester, world.channel, "empty reason: empty tags")
    preview = preview_for(world, world.people.requester)
    world.cc.add_tag("Empty since a second ago", 0)  # matches the rule, but after the preview
    world.driver.click(world.people.requester, preview, "Request approval")
    message = card(world)
    assert "*Rule:* `empty` matched 3 tags" in str(message.blocks)
    world.driver.click(world.people.approver, message, "Approve")
    world.driver.wait_for(lambda: world.store.requests()[0].state == "completed", what="completion", timeout=15)
    remaining = {t["name"] for t in world.cc.tags()}
    assert "Empty since a second ago" in remaining
    assert not remaining & {"Webinar 2023 – Spring", "webinar 2023 autumn", "Spring import 2024"}
    assert ids["Newsletter"] in {t["tag_id"] for t in world.cc.tags()}


def test_a_rule_that_matches_every_tag_is_flagged_on_the_preview_and_the_card(world: World) -> None:
    seed(world)
    world.driver.slash_command(world.people.requester, world.channel, 'matching "*" reason: start over')
    preview = preview_for(world, world.people.requester)
    assert "matches every tag of the account" in str(preview.blocks)
    world.driver.click(world.people.requester, preview, "Request approval")
    assert "matches every tag of the account" in str(refreshed(world, card(world)).blocks)


def test_a_rule_that_matches_nothing_or_too_much_says_so(world: World) -> None:
    seed(world)
    world.driver.slash_command(world.people.requester, world.channel, 'matching "Nope*"')
    assert "matches none of the account's 6 tags" in last_ephemeral(world, world.people.requester, "matches none").text
    world.bot.services.intake.max_entries = 2
    world.driver.slash_command(world.people.requester, world.channel, "empty")
    too_many = last_ephemeral(world, world.people.requester, "more than the")
    assert "matches 3 tags, more than the 2 one request may delete" in too_many.text
    assert world.store.requests() == []


@pytest.mark.parametrize("text, message", [
    ("empty matching \"x\"", "I expected `and` before `matching`."),
    ("created before 2024-02-30", "`2024-02-30` is not a date: write it as YYYY-MM-DD"),
    ("matching", "`matching` needs a pattern in quotes"),
    ("empty or created before 2024-01-01", "joined with `and` only"),
    ("created since 2024-01-01", "`created` needs `before` or `after` and a date"),
])
def test_a_bad_rule_names_the_part_it_could_not_read(world: World, text: str, message: str) -> None:
    answer = world.driver.slash_command(world.people.requester, world.channel, text).reply()
    assert message in answer["text"]
    assert world.store.requests() == []


RULE_PIECES = st.sampled_from(["empty", "matching", "created", "before", "after", "and", "or", '"Web*"', '"',
                               "2024-01-01", "2024-99-01", "reason:", "x", "<!here>", "*", "“a”", "\n"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(RULE_PIECES, min_size=1, max_size=7).map(" ".join).filter(lambda t: t.split()[:1] in (
    ["empty"], ["matching"], ["created"])))
def test_any_rule_text_gets_a_specific_answer_and_never_a_500(world: World, text: str) -> None:
    response = world.driver.slash_command(world.people.requester, world.channel, text)
    assert response.status == 200
    answer = response.reply()["text"]
    command = tags.parse_command(text)
    try:
        rule = rules.parse_rule(command.argument or "")
    except rules.RuleError as error:
        assert answer == error.message  # the specific message naming the part it could not read
    else:
        assert answer == f":mag: Finding the tags that match `{outside_text(rule.text, 400)}`…"
    assert "<!here>" not in answer


def test_a_csv_of_1200_tags_created_a_second_ago_gives_a_preview_in_three_activities(world: World) -> None:
    world.cc.add_tag("Already there", 3)
    world.driver.slash_command(world.people.requester, world.channel, '"Already there"')  # a listing is cached now
    preview_for(world, world.people.requester)
    ids = [world.cc.add_tag(f"Fresh import {n:04}", 1) for n in range(1_200)]
    csv = ("tag_id\n" + "\n".join(ids) + "\n").encode()
    world.driver.upload_file(world.people.requester, world.slack.bot_user_id, "fresh.csv", csv, text="reason: redo")
    preview = last_ephemeral(world, world.people.requester, "1,200 tags")
    assert ": 1,200 tags will be deleted, removing them from *1,200 contacts*" in str(preview.blocks)
    assert "3 Constant Contact activities" in str(preview.blocks)
    assert "matched no tag" not in str(preview.blocks)


def open_form(world: World):  # noqa: ANN201
    world.driver.slash_command(world.people.requester, world.channel, "")
    return world.driver.wait_for(lambda: next(iter(world.slack.views.values()), None), what="the form")


def test_the_form_finds_tags_by_rule(world: World) -> None:
    seed(world)
    view = open_form(world)
    world.driver.submit_view(world.people.requester, view, {"rule": {"rule": 'matching "webinar 2023*" and empty'},
                                                            "reason": {"reason": "webinars over"}})
    preview = preview_for(world, world.people.requester)
    assert "matched 2 tags" in str(preview.blocks)
    request = world.store.requests()[0]
    assert request.rule == 'matching "webinar 2023*" and empty' and request.source == "modal"


@pytest.mark.parametrize("values, field, words", [
    ({"rule": {"rule": "empty and"}}, "rule", "The rule ends with `and`"),
    ({"rule": {"rule": "empty"}, "entries": {"text": '"Newsletter"'}}, "rule", "either a rule or tags"),
])
def test_the_form_says_what_is_wrong_with_a_rule_next_to_it(world: World, values: dict, field: str,
                                                            words: str) -> None:
    view = open_form(world)
    response = world.driver.submit_view(world.people.requester, view, {**values, "reason": {"reason": "x y z"}})
    answer = response.json()
    assert answer["response_action"] == "errors" and words in answer["errors"][field]
    assert world.store.requests() == []


def test_app_home_shows_tag_health_that_matches_the_account_and_previews_the_empty_ones(world: World) -> None:
    seed(world)
    world.cc.add_tag("Shopify buyers", 310, tag_source="SHOPIFY")
    world.cc.add_tag("Shopify leftovers", 0, tag_source="SHOPIFY")
    world.cc.add_tag("Etsy", 5, tag_source="ESTY")
    account = world.cc.tags()
    empty = sum(1 for t in account if t["contacts_count"] == 0)

    world.driver.open_home(world.people.requester)
    home = world.driver.wait_for(lambda: world.slack.home(world.people.requester), what="App Home")
    text = "\n".join(b["text"]["text"] for b in home.blocks if b.get("type") == "section")
    assert f"{len(account)} tags in Constant Contact, *{empty} empty tags*" in text
    largest = text.split("*Largest:*", 1)[1]
    assert largest.index("Newsletter") < largest.index("Shopify buyers") < largest.index("Webinar 2023 VIP")
    sources = str(home.blocks)
    assert "SHOPIFY: 2" in sources and "ESTY: 1" in sources and "no source recorded: 6" in sources

    world.driver.click(world.people.requester, home, f"Preview deleting the {empty} empty tags")
    request = world.driver.wait_for(lambda: world.store.requests(), what="a draft from App Home")[0]
    assert request.source == "home" and request.rule == "empty" and request.tag_count == empty
    dm = world.slack.open_dm(world.people.requester)
    preview = world.driver.wait_for(
        lambda: next((m for m in world.slack.messages(dm) if "Request approval" in str(m.blocks)), None),
        what="the preview in the DM")
    assert f"matched {empty} tags" in str(preview.blocks)
