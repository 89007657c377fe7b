"""Load over loopback: slash commands, then clicks, 50 at a time. Every one is acknowledged within
Slack's 3 s, none fails, and the database is consistent afterwards.

REQUIRED_APPROVALS is 5 and only three people can approve, so no click starts a deletion: the load
stays on the Slack side, where the acknowledgement deadline lives.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from bot.sandbox.slack import DriverResponse, Ephemeral, Message
from bot.sandbox.world import World
from tests.reliability.support import add_tags, button_payload, cards, signed_interaction

CONCURRENCY = 50
ACK_DEADLINE = 3.0
VALID_STATES = {"draft", "awaiting_approval", "cancelled"}


@pytest.fixture
def world_env() -> dict[str, str]:
    return {"REQUIRED_APPROVALS": "5"}


def all_at_once(calls: list[Callable[[], DriverResponse]]) -> list[DriverResponse]:
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        return list(pool.map(lambda call: call(), calls))


def assert_all_acknowledged(responses: list[DriverResponse], what: str) -> None:
    failed = [(r.status, r.body[:100]) for r in responses if r.status != 200]
    assert not failed, f"{len(failed)} {what} failed: {failed[:5]}"
    slowest = max(r.elapsed for r in responses)
    assert slowest < ACK_DEADLINE, f"the slowest of {len(responses)} {what} took {slowest:.2f} s"


def previews(world: World) -> dict[int, Ephemeral]:
    found = {}
    for shown in world.slack.ephemerals:
        for block in shown.blocks:
            if str(block.get("block_id", "")).startswith("preview:"):
                found[int(block["block_id"].split(":")[1])] = shown
    return found


def card_for(world: World) -> dict[int, Message]:
    return {int(m.text.split("Deletion request #", 1)[1].split(" ", 1)[0]): m for m in cards(world)}


def run_load(world: World, count: int) -> None:
    tag_ids = add_tags(world, 30)
    people = world.people
    requesters = [people.requester, people.outsider]
    rng = random.Random(count)
    commands = [
        (lambda user=requesters[i % 2], text=" ".join(rng.sample(tag_ids, 3)) + f" reason: load {i}":
         world.driver.slash_command(user, world.channel, text))
        for i in range(count)
    ]
    assert_all_acknowledged(all_at_once(commands), "slash commands")
    shown = world.driver.wait_for(lambda: len(previews(world)) == count and previews(world), timeout=60,
                                  what=f"{count} previews")
    owners = {r.id: r.requester_id for r in world.store.requests(limit=10_000)}
    confirms = [(lambda rid=rid, preview=preview: world.driver.click(owners[rid], preview, "Request approval"))
                for rid, preview in sorted(shown.items())[: count // 2]]
    assert_all_acknowledged(all_at_once(confirms), "confirm clicks")
    posted = world.driver.wait_for(lambda: len(card_for(world)) == count // 2 and card_for(world), timeout=60,
                                   what="the cards")
    deciders = [people.approver, people.second_approver, people.group_approver, people.outsider, people.requester]
    decisions = []
    for _ in range(count - count // 2):
        # Clicks as Slack sends them from the card as first posted: a card cancelled meanwhile still shows
        # its buttons to someone who has not reloaded it.
        rid, message = rng.choice(sorted(posted.items()))
        payload = button_payload(world, rng.choice(deciders), rng.choice(["approve_request"] * 3 + ["cancel_request"]),
                                 str(rid), message_ts=message.ts)
        decisions.append(lambda payload=payload: signed_interaction(world, payload))
    answered = len(world.slack.responses)
    assert_all_acknowledged(all_at_once(decisions), "card clicks")
    # Every click on a card is answered with exactly one message through its response_url.
    world.driver.wait_for(lambda: len(world.slack.responses) >= answered + len(decisions), timeout=60,
                          what="an answer to every click")
    assert_consistent(world, count)


def assert_consistent(world: World, count: int) -> None:
    requests = world.store.requests(limit=10_000)
    assert len(requests) == count
    approvers = {world.people.approver, world.people.second_approver, world.people.group_approver}
    for request in requests:
        assert request.state in VALID_STATES, request
        kinds = [e.kind for e in world.store.events(request.id)]
        assert kinds[0] == "request.created"
        approvals = world.store.approvals(request.id)
        assert len(approvals) == len(set(approvals)) and set(approvals) <= approvers
        assert request.requester_id not in approvals
        assert kinds.count("approval.recorded") == len(approvals)
        assert kinds.count("request.confirmed") == (request.card_ts is not None) == (request.state != "draft")
        assert kinds.count("request.cancelled") == (request.state == "cancelled")
    assert world.cc.activities() == []
    with closing(sqlite3.connect(Path(world.env["DELETETAGS_DB"]))) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        duplicates = db.execute("SELECT request_id, user_id, COUNT(*) FROM approvals GROUP BY 1, 2 HAVING COUNT(*) > 1")
        assert duplicates.fetchall() == []


def test_fifty_commands_and_fifty_clicks_at_fifty_concurrent(world: World) -> None:
    run_load(world, 50)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_five_hundred_commands_and_five_hundred_clicks_at_fifty_concurrent(world: World) -> None:
    run_load(world, 500)
