"""/healthz over the real server: the status for everyone, the whole report for this host only,
unless HEALTH_DETAILS says otherwise. A proxy on this host connects from loopback too, which is why
a request carrying X-Forwarded-For is not taken for a local one."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from bot.config import SettingsError, load_settings
from bot.sandbox.world import World

PROXIED = {"X-Forwarded-For": "203.0.113.7"}


def healthz(world: World, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    assert world.bot.http is not None
    request = urllib.request.Request(f"{world.bot.http.url}/healthz", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def test_a_request_relayed_by_a_proxy_gets_only_the_status(world: World) -> None:
    assert healthz(world, PROXIED) == (200, {"status": "ok"})
    status, report = healthz(world)  # this host, directly
    assert status == 200 and report["database"] == "ok" and report["in_flight_requests"] == 0


@pytest.mark.parametrize("world_env", [{"HEALTH_DETAILS": "true"}])
def test_health_details_shows_the_whole_report_to_everyone(world: World) -> None:
    assert world.bot.settings.health_details is True
    status, report = healthz(world, PROXIED)
    assert status == 200 and report["scheduler"] == "running" and "last_constant_contact_success" in report


def test_health_details_takes_only_true_or_false() -> None:
    assert load_settings({"HEALTH_DETAILS": " Yes "}).health_details is True
    assert load_settings({}).health_details is False
    with pytest.raises(SettingsError, match="HEALTH_DETAILS is not valid: it should be true or false"):
        load_settings({"HEALTH_DETAILS": "sometimes"})
