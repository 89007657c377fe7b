"""A whole offline world: the Constant Contact simulator, the Slack emulator, the real bot
serving HTTP on loopback, and a driver that acts as the people in it. Used by the tests and
by `deletetags-bot demo`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot.config import NEEDS_RUN_HTTP, load_settings
from bot.process import BotProcess
from bot.runtime import Services
from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.slack import SlackDriver, SlackEmulator

SIGNING_SECRET = "sandbox-signing-secret-0123456789abcdef"
OPS_CHANNEL = "C0MKTOPS"
LEADS_GROUP = "S0LEADS"


class ShiftableClock:
    """Real time plus an offset the tests (and the demo) can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


class ManualClock:
    """Seconds since the epoch that move only when told to: the simulators' clock in deterministic tests."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class People:
    requester: str = "U0RITA"
    approver: str = "U0ALEX"
    second_approver: str = "U0BEA"
    group_approver: str = "U0GRACE"
    outsider: str = "U0OTTO"


PEOPLE = People()
NAMES = {
    PEOPLE.requester: ("rita", "Rita Requester"),
    PEOPLE.approver: ("alex", "Alex Approver"),
    PEOPLE.second_approver: ("bea", "Bea Approver"),
    PEOPLE.group_approver: ("grace", "Grace Lead"),
    PEOPLE.outsider: ("otto", "Otto Outsider"),
}


@dataclass
class World:
    cc: ConstantContactSimulator
    slack: SlackEmulator
    bot: BotProcess
    driver: SlackDriver
    env: dict[str, str]
    clock: ShiftableClock
    people: People = field(default_factory=People)
    channel: str = OPS_CHANNEL

    @property
    def store(self):  # noqa: ANN201 - the bot's Store
        return self.bot.services.store

    def flush_slack(self, timeout: float = 15.0) -> None:
        """Wait until the bot's queued thread posts, DMs and card edits have reached the emulator."""
        if not self.bot.services.notifier.outbox.drain(timeout):
            raise TimeoutError("the bot's Slack outbox did not empty in time")

    def stop(self) -> None:
        # Whatever the outbox still holds is of no interest once the world ends.
        self.bot.services.notifier.outbox.stop(timeout=0.2)
        for stop in (self.bot.stop, self.slack.stop, self.cc.stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - tear everything down regardless
                pass


def populate_slack(slack: SlackEmulator) -> None:
    for user_id, (name, real_name) in NAMES.items():
        slack.add_user(user_id, name, real_name=real_name)
    members = [*NAMES, slack.bot_user_id]
    slack.add_channel(OPS_CHANNEL, "marketing-ops", members=members)
    slack.add_usergroup(LEADS_GROUP, "team-leads", users=[PEOPLE.group_approver])


def world_env(cc: ConstantContactSimulator, slack: SlackEmulator, db_path: Path,
              overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "CC_CLIENT_ID": "sandbox-client-id",
        "CC_CLIENT_SECRET": "sandbox-client-secret",
        "CC_REFRESH_TOKEN": cc.issue_refresh_token(),
        "CC_API_URL": cc.base_url,
        "CC_AUTH_URL": cc.auth_url,
        "DELETETAGS_DB": str(db_path),
        "APPROVER_IDS": f"{PEOPLE.approver},{PEOPLE.second_approver}",
        "APPROVER_GROUP": LEADS_GROUP,
        "HOST": "127.0.0.1",
        "PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    env.update(overrides or {})
    return env


def start_outside_world(directory: Path, *, tags: int = 0, activity_seconds: float = 1.0,
                        env: Mapping[str, str] | None = None) -> tuple[ConstantContactSimulator, SlackEmulator, dict[str, str]]:
    """Everything but the bot: for tests that run `deletetags-bot run` as a real process."""
    cc = ConstantContactSimulator(tag_count=tags, activity_seconds=activity_seconds).start()
    slack = SlackEmulator().start()
    populate_slack(slack)
    return cc, slack, world_env(cc, slack, directory / "deletetags.db", env)


def start_world(directory: Path | None = None, *, tags: int = 0, activity_seconds: float = 1.0,
                env: Mapping[str, str] | None = None, socket_mode: bool = False) -> World:
    """Start everything on loopback; the caller stops it with `world.stop()`."""
    directory = directory or Path(tempfile.mkdtemp(prefix="deletetags-"))
    cc, slack, environment = start_outside_world(directory, tags=tags, activity_seconds=activity_seconds, env=env)
    if socket_mode:
        environment["SLACK_APP_TOKEN"] = slack.app_token
    settings = load_settings(environment, NEEDS_RUN_HTTP)
    clock = ShiftableClock()
    bot = BotProcess(settings, socket_mode=socket_mode, services=Services.build(settings, clock=clock)).start()
    app_url = f"{bot.http.url}/slack/events" if bot.http is not None else ""
    driver = SlackDriver(slack, app_url, SIGNING_SECRET, mode="socket" if socket_mode else "http")
    return World(cc, slack, bot, driver, environment, clock)
