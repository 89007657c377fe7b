"""Shared helpers for the reliability suites: a fast offline world whose Constant Contact clock can
be moved, signed hand-made Slack requests, and lookups of what each person was shown."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bot.config import NEEDS_RUN_HTTP, load_settings
from bot.process import BotProcess
from bot.runtime import Services
from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.slack import DriverResponse, Ephemeral, Message, SlackDriver, SlackEmulator
from bot.sandbox.world import SIGNING_SECRET, ShiftableClock, World, populate_slack
from bot.sandbox.world import world_env as environment_for

FAST_ENV = {"POLL_MIN_SECONDS": "0.1", "POLL_MAX_SECONDS": "0.5", "RECONCILE_DELAY_SECONDS": "0.3"}
TERMINAL = ("completed", "completed_with_errors", "failed")
APOLOGY_START = ":warning: Sorry, something went wrong on my side"


class SimWall:
    """The simulator's wall clock: real time plus an offset a test may move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def start_fast_world(directory: Path, env: Mapping[str, str], wall: SimWall, activity_seconds: float = 0.3) -> World:
    """Like `bot.sandbox.world.start_world`, with short poll bounds and a movable simulator clock."""
    cc = ConstantContactSimulator(activity_seconds=activity_seconds, clock=wall).start()
    slack = SlackEmulator().start()
    populate_slack(slack)
    environment = environment_for(cc, slack, directory / "deletetags.db", {**FAST_ENV, **env})
    settings = load_settings(environment, NEEDS_RUN_HTTP)
    clock = ShiftableClock()
    bot = BotProcess(settings, services=Services.build(settings, clock=clock)).start()
    assert bot.http is not None
    driver = SlackDriver(slack, f"{bot.http.url}/slack/events", SIGNING_SECRET)
    return World(cc, slack, bot, driver, environment, clock)


# --- driving a request --------------------------------------------------------------------------


def add_tags(world: World, count: int, prefix: str = "Tag", contacts: int = 1) -> list[str]:
    return [world.cc.add_tag(f"{prefix} {i}", contacts) for i in range(count)]


def cards(world: World) -> list[Message]:
    return [m for m in world.slack.messages(world.channel) if "Deletion request #" in m.text]


def request_card(world: World, text: str, user: str | None = None) -> tuple[int, Message]:
    """Type a request, send its preview to the approvers, and wait until the requester is told."""
    user = user or world.people.requester
    known = {m.ts for m in cards(world)}
    seen = len(world.slack.ephemerals)
    world.driver.slash_command(user, world.channel, text)
    preview = next_ephemeral(world, user, seen, lambda e: "Request approval" in str(e.blocks))
    world.driver.click(user, preview, "Request approval")
    card = world.driver.wait_for(lambda: next((m for m in cards(world) if m.ts not in known), None), what="the card")
    next_ephemeral(world, user, seen, lambda e: e.text.startswith(":outbox_tray:"))
    return int(card.text.split("Deletion request #", 1)[1].split(" ", 1)[0]), card


def to_card(world: World, tag_ids: list[str], reason: str = "reliability test", user: str | None = None
            ) -> tuple[int, Message]:
    return request_card(world, " ".join(tag_ids) + f" reason: {reason}", user)


def approve(world: World, tag_ids: list[str], reason: str = "reliability test") -> tuple[int, Message]:
    request_id, card = to_card(world, tag_ids, reason)
    response = world.driver.click(world.people.approver, card, "Approve")
    assert response.status == 200 and response.elapsed < 3.0, response
    return request_id, card


def wait_finished(world: World, request_id: int, timeout: float = 20.0) -> str:
    """Wait for a terminal state and a posted summary; returns the final state."""
    world.driver.wait_for(lambda: world.store.get_request(request_id).state in TERMINAL, timeout=timeout,
                          what=f"request #{request_id} to finish")
    world.driver.wait_for(lambda: world.store.notices(request_id).get("summary") == "posted", timeout=timeout,
                          what=f"the summary of request #{request_id}")
    return world.store.get_request(request_id).state


def summary_posted_soon(world: World, request_id: int, timeout: float = 20.0) -> None:
    """Wait for the summary, bringing each scheduled retry of it forward (Slack has recovered)."""
    scheduler = world.bot.services.scheduler

    def posted() -> bool:
        if world.store.notices(request_id).get("summary") == "posted":
            return True
        if scheduler.get_job(f"summary:{request_id}") is not None:
            scheduler.modify_job(f"summary:{request_id}", next_run_time=datetime.now(timezone.utc))
        return False

    world.driver.wait_for(posted, timeout=timeout, what=f"the summary of request #{request_id}")


def thread_texts(world: World, card: Message) -> list[str]:
    return [m.text for m in world.slack.thread(world.channel, card.ts)]


def summaries(world: World, card: Message) -> list[str]:
    return [t for t in thread_texts(world, card) if "is finished:" in t]


def the_summary(world: World, card: Message) -> str:
    found = summaries(world, card)
    assert len(found) == 1, thread_texts(world, card)
    return found[0]


def summary_head(world: World, request_id: int, deleted: int, total: int, activities: int, icon: str) -> str:
    noun = "activity" if activities == 1 else "activities"
    where = f"in {activities} {noun}" if activities else "— nothing reached Constant Contact"
    return (f"{icon} <@{world.people.requester}> request #{request_id} is finished: *{deleted} of {total} tags "
            f"deleted* {where} (")


def card_now(world: World, card: Message) -> Message:
    return world.slack.message(card.channel, card.ts)


def run_job_now(world: World, job_id: str) -> None:
    """Let the time of a scheduled retry come now, as if its delay had passed."""
    scheduler = world.bot.services.scheduler
    world.driver.wait_for(lambda: scheduler.get_job(job_id), what=f"the scheduled job {job_id}")
    scheduler.modify_job(job_id, next_run_time=datetime.now(timezone.utc))


def activities_of(world: World, tag_ids: list[str]) -> list[dict[str, Any]]:
    wanted = set(tag_ids)
    return [a for a in world.cc.activities() if wanted & set(a["tag_ids"])]


def event_kinds(world: World, request_id: int | None = None) -> list[str]:
    return [e.kind for e in world.store.events(request_id)]


# --- what people saw ----------------------------------------------------------------------------


def ephemerals_for(world: World, user: str, since: int = 0) -> list[Ephemeral]:
    return [e for e in world.slack.ephemerals[since:] if e.user == user]


def next_ephemeral(world: World, user: str, since: int, accept: Callable[[Ephemeral], bool] = lambda e: True,
                   timeout: float = 10.0) -> Ephemeral:
    return world.driver.wait_for(
        lambda: next((e for e in ephemerals_for(world, user, since) if accept(e)), None), timeout=timeout,
        what=f"an ephemeral message for {user}")


def dm_texts(world: World, user: str) -> list[str]:
    return [m.text for m in world.slack.messages(world.slack.open_dm(user))]


# --- hand-made signed requests --------------------------------------------------------------------


def signed_interaction(world: World, payload: dict[str, Any]) -> DriverResponse:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **world.driver.sign(body)}
    return world.driver.send_raw(body, headers)


def button_payload(world: World, user: str, action_id: str, value: Any, *, channel: str | None = None,
                   message_ts: str | None = None, ephemeral: bool = False, home: bool = False) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for a click, with any button value a forger likes."""
    channel = channel or world.channel
    action = {"action_id": action_id, "block_id": "forged", "type": "button", "value": value,
              "text": {"type": "plain_text", "text": "Forged"}, "action_ts": world.slack.next_ts()}
    payload: dict[str, Any] = {
        "type": "block_actions", "user": {"id": user, "username": world.slack.user_name(user), "team_id": world.slack.team_id},
        "api_app_id": world.slack.app_id, "token": "sandbox-verification-token",
        "team": {"id": world.slack.team_id, "domain": world.slack.team_domain},
        "trigger_id": world.slack.new_trigger_id(user, channel=None if home else channel), "actions": [action],
        "state": {"values": {}}, "is_enterprise_install": False, "enterprise": None,
    }
    if home:
        payload["container"] = {"type": "view", "view_id": "V0FORGED"}
        payload["view"] = {"id": "V0FORGED", "type": "home", "blocks": []}
        return payload
    payload["container"] = {"type": "message", "message_ts": message_ts or world.slack.next_ts(),
                            "channel_id": channel, "is_ephemeral": ephemeral}
    payload["channel"] = {"id": channel, "name": "marketing-ops"}
    payload["response_url"] = world.slack.new_response_url(channel=channel, user=user, message_ts=None if ephemeral else message_ts)
    return payload
