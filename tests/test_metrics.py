"""`GET /metrics`: scraped over loopback from the running bot, parsed with prometheus_client's own parser."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics
from bot.sandbox.world import World, start_world
from bot.server import HttpServer
from tests.reliability.support import add_tags, approve, wait_finished

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_each_metric_is_present_and_moves(world: World) -> None:
    url = f"{world.bot.http.url}/metrics"
    world.bot.services.notifier.outbox.card_edit_seconds = 0.2  # no need to wait Slack's 3 s between edits here
    before = scrape(url)
    for name in ("deletetags_activities_in_flight", "deletetags_cc_quota_used_today", "deletetags_cc_quota_limit",
                 "deletetags_slack_outbox_depth", "deletetags_snapshot_pages_total",
                 "deletetags_slack_ack_seconds_count"):
        assert any(n == name for n, _ in before), name
    assert value(before, "deletetags_snapshot_pages_total") == 0
    assert value(before, "deletetags_cc_quota_limit") == 10_000

    world.cc.faults.throttle_burst = 1  # one 429 `throttled`, waited out
    world.slack.fail_next("chat.postMessage", 429)  # the card's first post is refused once
    ids = add_tags(world, 2)
    request_id, _ = approve(world, ids)
    in_flight = world.driver.wait_for(lambda: value(scrape(url), "deletetags_activities_in_flight") or None,
                                      what="an activity in flight")
    assert in_flight == 1
    assert value(scrape(url), "deletetags_oldest_in_flight_seconds") > 0
    assert wait_finished(world, request_id) == "completed"
    world.flush_slack()
    after = scrape(url)

    assert value(after, "deletetags_requests", state="completed") == 1
    assert value(after, "deletetags_activities_in_flight") == 0
    assert value(after, "deletetags_cc_calls_total", method="POST", endpoint="/activities/contacts_tags_delete") == 1
    assert value(after, "deletetags_cc_calls_total", method="GET", endpoint="/activities/{activity_id}") >= 1
    assert total(after, "deletetags_cc_rate_limited_total", kind="throttled") == 1
    assert total(after, "deletetags_cc_errors_total", status="429") == 1
    used = value(after, "deletetags_cc_quota_used_today")
    assert used == world.cc.quota_used_today() == total(after, "deletetags_cc_calls_total") - 1  # less the 429
    assert value(after, "deletetags_slack_rate_limited_total", method="chat.postMessage") == 1
    assert value(after, "deletetags_slack_calls_total", method="chat.postMessage") > value(
        before, "deletetags_slack_calls_total", method="chat.postMessage") + 2  # card, thread notes, summary
    acks = value(after, "deletetags_slack_ack_seconds_count") - value(before, "deletetags_slack_ack_seconds_count")
    assert acks >= 3  # the command, Request approval, Approve
    assert value(after, "deletetags_slack_ack_seconds_bucket", le="3.0") == value(
        after, "deletetags_slack_ack_seconds_count")
    assert value(after, "deletetags_slack_outbox_depth") == 0
    assert value(after, "deletetags_oldest_in_flight_seconds") == 0
    assert total(after, "deletetags_slack_errors_total") == 0
    world.slack.fail_next("views.publish", "not_in_channel")
    world.driver.open_home(world.people.approver)
    world.driver.wait_for(lambda: value(scrape(url), "deletetags_slack_errors_total", method="views.publish",
                                        error="not_in_channel") == 1, what="the refused publish to be counted")
    pages = [r for r in list(world.cc.request_log) if r.method == "GET" and r.path == "/v3/contacts"]
    assert len(pages) >= 1  # the snapshot before the delete
    assert value(after, "deletetags_snapshot_pages_total") == len(pages)


def test_metrics_go_only_to_this_host(world: World) -> None:
    """Like /healthz's details: a request relayed by a proxy (even one on this host) is refused."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(f"{world.bot.http.url}/metrics", {"X-Forwarded-For": "203.0.113.9"})
    assert refused.value.code == 403


@pytest.fixture
def socket_world(tmp_path: Path) -> Iterator[World]:
    started = start_world(tmp_path, env={"METRICS_PORT": "0"}, socket_mode=True, activity_seconds=0.5)
    try:
        yield started
    finally:
        started.stop()


def test_without_a_bolt_app_only_health_and_metrics_are_served() -> None:
    """What Socket Mode runs on METRICS_PORT: no /slack/events at all."""
    metrics = Metrics()
    metrics.snapshot_pages.inc(2)
    server = HttpServer(None, lambda: {"status": "ok"}, "127.0.0.1", 0, metrics=metrics).start_in_thread()
    try:
        assert scrape(f"{server.url}/metrics")[("deletetags_snapshot_pages_total", frozenset())] == 2
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as health:
            assert health.status == 200
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(urllib.request.Request(f"{server.url}/slack/events", data=b"{}"), timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()


@pytest.mark.slow
def test_socket_mode_serves_metrics_on_metrics_port(socket_world: World) -> None:
    world = socket_world
    assert world.bot.http is None and world.bot.ops_http is not None
    url = f"{world.bot.ops_http.url}/metrics"
    before = value(scrape(url), "deletetags_slack_ack_seconds_count")
    world.driver.slash_command(world.people.requester, world.channel, "help")
    world.driver.wait_for(lambda: value(scrape(url), "deletetags_slack_ack_seconds_count") > before,
                          what="the ack to be measured")
