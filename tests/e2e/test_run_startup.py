"""`deletetags-bot run` asks Slack whether its bot token is valid before it starts serving: a token
Slack refuses stops it with a message saying how to fix it; a Slack it cannot reach does not."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Secret, Settings
from bot.process import slack_token_accepted
from bot.sandbox.slack import SlackEmulator
from bot.sandbox.world import start_outside_world
from tests.e2e.botproc import BotSubprocess, free_port

WRONG_TOKEN = "xoxb-0000-not-the-sandbox-token"


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator().start()
    yield emulator
    emulator.stop()


def settings_for(slack: SlackEmulator, token: str | None = None, api_url: str | None = None) -> Settings:
    return Settings(slack_bot_token=Secret(token or slack.bot_token), slack_api_url=api_url or slack.api_url)


@pytest.mark.parametrize("refusal", ["invalid_auth", "token_revoked", "account_inactive"])
def test_a_token_slack_refuses_is_reported_with_the_fix(slack: SlackEmulator, refusal: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    slack.fail_next("auth.test", refusal)
    assert slack_token_accepted(settings_for(slack)) is False
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith(f"SLACK_BOT_TOKEN was refused by Slack ({refusal}): reinstall the app")
    assert slack.bot_token not in caplog.text


@pytest.mark.parametrize("failure", [500, "ratelimited"])
def test_a_slack_that_fails_the_check_is_a_warning(slack: SlackEmulator, failure: int | str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    slack.fail_next("auth.test", failure)
    assert slack_token_accepted(settings_for(slack)) is True
    assert [r.levelno for r in caplog.records if r.name == "bot.process"] == [logging.WARNING]
    assert "starting anyway" in caplog.text


def test_an_accepted_token_is_logged_with_the_bot_it_belongs_to(slack: SlackEmulator,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.process")
    assert slack_token_accepted(settings_for(slack)) is True
    assert f"Slack accepted SLACK_BOT_TOKEN: bot @{slack.bot_name}" in caplog.text
    assert slack.bot_token not in caplog.text


def test_run_exits_2_when_slack_refuses_the_token(tmp_path: Path) -> None:
    cc, slack, env = start_outside_world(tmp_path, env={"SLACK_BOT_TOKEN": WRONG_TOKEN})
    try:
        done = subprocess.run([sys.executable, "-m", "bot", "run"], capture_output=True, text=True, timeout=30,
                              env={**os.environ, **env, "PORT": str(free_port())})
    finally:
        slack.stop()
        cc.stop()
    assert done.returncode == 2, done.stderr
    assert "SLACK_BOT_TOKEN was refused by Slack (invalid_auth)" in done.stderr
    assert WRONG_TOKEN not in done.stdout + done.stderr
    assert not (tmp_path / "deletetags.db").exists()  # stopped before anything else started


def test_run_starts_anyway_when_slack_cannot_be_reached(tmp_path: Path) -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    cc, slack, env = start_outside_world(tmp_path, env={"SLACK_API_URL": f"http://{unreachable}/api/"})
    bot = BotSubprocess(env, tmp_path / "bot.log")
    try:
        bot.start()
        assert bot.terminate() == 0
    finally:
        bot.kill()
        slack.stop()
        cc.stop()
    log = (tmp_path / "bot.log").read_text()
    assert f"could not reach Slack at {unreachable} to check SLACK_BOT_TOKEN" in log
    assert env["SLACK_BOT_TOKEN"] not in log
