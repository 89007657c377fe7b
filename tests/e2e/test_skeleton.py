"""The walking skeleton, end to end: signed requests in, Web API calls out."""

from __future__ import annotations

import json
import time
import urllib.request
from urllib.parse import urlencode

from pathlib import Path

from bot.sandbox.world import World, start_world


def help_command_body(world: World) -> bytes:
    return urlencode({
        "team_id": world.slack.team_id, "channel_id": world.channel, "user_id": world.people.requester,
        "command": "/deletetags", "text": "help", "trigger_id": world.slack.new_trigger_id(world.people.requester),
        "response_url": world.slack.new_response_url(channel=world.channel, user=world.people.requester),
    }).encode()


def test_help_answers_with_usage_in_an_ephemeral_ack(world: World) -> None:
    response = world.driver.slash_command(world.people.requester, world.channel, "help")
    assert response.status == 200
    reply = response.reply()
    assert reply.get("response_type", "ephemeral") == "ephemeral"
    assert "/deletetags" in reply["text"] and "reason" in reply["text"].lower()
    shown = [e for e in world.slack.ephemerals if e.user == world.people.requester]
    assert shown and "/deletetags" in shown[-1].text


def test_help_works_the_same_in_socket_mode(tmp_path: Path) -> None:
    world = start_world(tmp_path, socket_mode=True)
    try:
        test_help_answers_with_usage_in_an_ephemeral_ack(world)
        assert world.slack.has_socket_connection()
    finally:
        world.stop()


def test_unknown_subcommand_gets_usage_too(world: World) -> None:
    reply = world.driver.slash_command(world.people.requester, world.channel, "frobnicate").reply()
    assert "frobnicate" in reply["text"] and "/deletetags" in reply["text"]


def test_bad_signature_and_stale_timestamp_get_401_and_change_nothing(world: World) -> None:
    body = help_command_body(world)
    events_before = len(world.store.events())
    calls_before = len(world.slack.calls)
    forged = {"Content-Type": "application/x-www-form-urlencoded",
              **world.driver.sign(body), "X-Slack-Signature": "v0=" + "0" * 64}
    assert world.driver.send_raw(body, forged).status == 401
    stale = {"Content-Type": "application/x-www-form-urlencoded", **world.driver.sign(body, int(time.time()) - 301)}
    assert world.driver.send_raw(body, stale).status == 401
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    assert world.driver.send_raw(body, unsigned).status == 401
    assert len(world.store.events()) == events_before
    assert len(world.slack.calls) == calls_before


def test_healthz_reports_database_and_scheduler(world: World) -> None:
    with urllib.request.urlopen(f"{world.bot.http.url}/healthz", timeout=5) as response:
        report = json.loads(response.read())
        assert response.status == 200
    assert report["database"] == "ok" and report["scheduler"] == "running"
    assert report["status"] == "ok" and report["in_flight_requests"] == 0


def test_every_subscribed_event_is_acknowledged(world: World) -> None:
    for response in (
        world.driver.open_home(world.people.requester),
        world.driver.post_message(world.people.requester, world.channel, "hello everyone"),
    ):
        assert response.status == 200


def test_a_retried_event_is_handled_once(world: World) -> None:
    event = {"type": "message", "user": world.people.requester, "channel": world.channel, "text": "hi",
             "ts": world.slack.next_ts(), "channel_type": "channel"}
    assert world.driver.send_event(event, event_id="Ev0REPEAT").status == 200
    assert world.driver.send_event(event, event_id="Ev0REPEAT", retry_num=1).status == 200
    assert world.store.first_sighting("Ev0REPEAT") is False
