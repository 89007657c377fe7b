"""Every request to /slack/events must carry Slack's signature over exactly its body, made within five
minutes; anything else is answered 401 and changes nothing.

Slack's v0 signature has no nonce, so the same signed request sent again within five minutes is
accepted by design. What protects the bot there is that events are de-duplicated by event_id and that
every decision is a compare-and-set; both are tested here too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.sandbox.world import World
from tests.reliability.support import add_tags, button_payload, thread_texts, to_card

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Snapshot:
    events: int
    requests: tuple[tuple[int, str], ...]
    approvals: tuple[str, ...]
    calls: int
    ephemerals: int
    responses: int
    messages: int


def snapshot(world: World, request_id: int) -> Snapshot:
    return Snapshot(
        len(world.store.events()), tuple((r.id, r.state) for r in world.store.requests()),
        world.store.approvals(request_id), len(world.slack.calls), len(world.slack.ephemerals),
        len(world.slack.responses), len(world.slack.messages(world.channel)),
    )


@dataclass
class Scene:
    world: World
    tag_id: str
    request_id: int
    card_ts: str


@pytest.fixture
def scene(world: World) -> Iterator[Scene]:
    tag_id, other = add_tags(world, 2)
    request_id, card = to_card(world, [tag_id])
    yield Scene(world, other, request_id, card.ts)


def command_body(scene: Scene) -> bytes:
    """A slash command that would create a draft request if it were accepted."""
    world = scene.world
    return urlencode({
        "team_id": world.slack.team_id, "channel_id": world.channel, "user_id": world.people.requester,
        "command": "/deletetags", "text": f"{scene.tag_id} reason: forged", "api_app_id": world.slack.app_id,
        "trigger_id": world.slack.new_trigger_id(world.people.requester),
        "response_url": world.slack.new_response_url(channel=world.channel, user=world.people.requester),
    }).encode()


def approve_body(scene: Scene, user: str) -> bytes:
    """A click on Approve that would decide the request if it were accepted."""
    payload = button_payload(scene.world, user, "approve_request", str(scene.request_id), message_ts=scene.card_ts)
    return urlencode({"payload": json.dumps(payload)}).encode()


def status_event_body(scene: Scene, event_id: str) -> bytes:
    """A "status?" question in the card's thread, which the bot would answer if it were accepted."""
    world = scene.world
    event = {"type": "message", "user": world.people.outsider, "channel": world.channel, "text": "status?",
             "ts": world.slack.next_ts(), "thread_ts": scene.card_ts, "channel_type": "channel"}
    return json.dumps({"type": "event_callback", "team_id": world.slack.team_id, "api_app_id": world.slack.app_id,
                       "event": event, "event_id": event_id, "event_time": int(time.time())}).encode()


def signature(secret: str, timestamp: str, body: bytes, version: str = "v0") -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return f"{version}={digest}"


def send(world: World, body: bytes, headers: dict[str, str], content_type: str = FORM) -> int:
    return world.driver.send_raw(body, {"Content-Type": content_type, **headers}).status


def forged_headers(world: World, body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    secret = world.env["SLACK_SIGNING_SECRET"]

    def signed(stamp: int | str, **kw: Any) -> dict[str, str]:
        return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": signature(secret, str(stamp), body, **kw)}

    return {
        "no signature": {},
        "timestamp only": {"X-Slack-Request-Timestamp": str(now)},
        "signature only": {"X-Slack-Signature": signed(now)["X-Slack-Signature"]},
        "wrong signature": {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64},
        "another app's secret": {"X-Slack-Request-Timestamp": str(now),
                                 "X-Slack-Signature": signature("another-secret", str(now), body)},
        "upper-case hex": {"X-Slack-Request-Timestamp": str(now),
                           "X-Slack-Signature": "v0=" + signed(now)["X-Slack-Signature"][3:].upper()},
        "v1 prefix": signed(now, version="v1"),
        "signed 301 s ago": signed(now - 301),
        "replayed 6 minutes later": signed(now - 360),
        "signed 6 minutes ahead": signed(now + 360),
        "timestamp not a number": {"X-Slack-Request-Timestamp": "yesterday",
                                   "X-Slack-Signature": signature(secret, "yesterday", body)},
        "signature over another timestamp": {"X-Slack-Request-Timestamp": str(now - 1),
                                             "X-Slack-Signature": signed(now)["X-Slack-Signature"]},
    }


@pytest.mark.parametrize("kind", ["command", "approve click", "event"])
def test_unsigned_wrongly_signed_and_stale_requests_get_401_and_change_nothing(scene: Scene, kind: str) -> None:
    world = scene.world
    body = {"command": lambda: command_body(scene),
            "approve click": lambda: approve_body(scene, world.people.approver),
            "event": lambda: status_event_body(scene, "Ev0FORGED")}[kind]()
    content_type = "application/json" if kind == "event" else FORM
    before = snapshot(world, scene.request_id)
    answers = {name: send(world, body, headers, content_type) for name, headers in forged_headers(world, body).items()}
    assert answers == {name: 401 for name in answers}
    assert snapshot(world, scene.request_id) == before


def test_a_body_altered_after_signing_is_refused(scene: Scene) -> None:
    world = scene.world
    original = approve_body(scene, world.people.outsider)
    headers = world.driver.sign(original)
    altered = original.replace(world.people.outsider.encode(), world.people.approver.encode())
    assert altered != original
    before = snapshot(world, scene.request_id)
    assert send(world, altered, headers) == 401
    assert send(world, original + b"&extra=1", headers) == 401
    assert send(world, original[:-1], headers) == 401
    assert snapshot(world, scene.request_id) == before


def test_the_same_event_sent_twice_is_handled_once(scene: Scene, caplog: pytest.LogCaptureFixture) -> None:
    world = scene.world
    caplog.set_level("INFO", logger="bot.listeners.middleware")
    body = status_event_body(scene, "Ev0REPLAYED")
    card = world.slack.message(world.channel, scene.card_ts)
    for _ in range(3):
        assert send(world, body, world.driver.sign(body), "application/json") == 200
    answer = world.driver.wait_for(lambda: [t for t in thread_texts(world, card) if t.startswith("*Request #")],
                                   what="the status answer")
    world.driver.wait_for(lambda: len([r for r in caplog.records if r.getMessage() == "dropping repeated Slack event"
                                       and getattr(r, "event", None) == "Ev0REPLAYED"]) == 2, what="two drops")
    assert len([t for t in thread_texts(world, card) if t.startswith("*Request #")]) == len(answer) == 1
    asked = world.driver.wait_for(lambda: [e for e in world.store.events(scene.request_id) if e.kind == "status.asked"],
                                  what="the audit event")
    assert len(asked) == 1


def test_a_replayed_approval_within_five_minutes_decides_once(scene: Scene) -> None:
    world = scene.world
    body = approve_body(scene, world.people.approver)
    headers = world.driver.sign(body)
    assert send(world, body, headers) == 200
    world.driver.wait_for(lambda: world.store.get_request(scene.request_id).state != "awaiting_approval",
                          what="the approval")
    assert send(world, body, headers) == 200
    world.driver.wait_for(lambda: "refused.approve" in [e.kind for e in world.store.events(scene.request_id)],
                          what="the replay to be refused")
    kinds = [e.kind for e in world.store.events(scene.request_id)]
    assert kinds.count("approval.recorded") == 1 and kinds.count("request.approved") == 1
