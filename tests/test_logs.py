"""Logging: one JSON object per line with the event fields, and no secret in any message or traceback."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from bot.logs import REDACTED, RedactingFilter, configure_logging, redact

SLACK_BOT = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_APP = "xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef"
JWT = ("eyJraWQiOiJzYW5kYm94IiwiYWxnIjoiUlMyNTYifQ."
       "eyJzdWIiOiJzYW5kYm94LnVzZXJAZXhhbXBsZS5jb20iLCJleHAiOjE3MDAwMDAwMDB9."
       "c2lnbmF0dXJlLWJ5dGVzLWdvLWhlcmUtMDEyMzQ1Njc4OQ")
REFRESH = "rT-9f8e7d6c5b4a3210zyxwvu"
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The bot's own stderr handler, installed while capsys holds stderr, removed afterwards."""
    root = logging.getLogger()
    level = root.level
    yield capsys
    for handler in [h for h in root.handlers if getattr(h, "_deletetags", False)]:
        root.removeHandler(handler)
    root.setLevel(level)


def emitted_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_json_format_is_one_object_per_line_with_event_fields(captured: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("bot.test")
    log.info("approved", extra={"request_id": "42", "actor": "U0ALEX", "outcome": "approved"})
    log.warning("polled %s times", 3, extra={"request_id": "43"})
    log.debug("below the level")
    lines = emitted_lines(captured)
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "approved" and first["level"] == "INFO" and first["logger"] == "bot.test"
    assert (first["request_id"], first["actor"], first["outcome"]) == ("42", "U0ALEX", "approved")
    assert first["at"].endswith("+00:00")
    assert second["message"] == "polled 3 times" and second["request_id"] == "43" and "actor" not in second


def test_json_lines_stay_single_lines_with_newlines_and_tracebacks(captured: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        logging.getLogger("bot.test").exception("it failed", extra={"outcome": "error"})
    lines = emitted_lines(captured)
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert "Traceback" in record["message"] and "line one\nline two" in record["message"]
    assert record["outcome"] == "error"


def test_text_format_carries_the_event_fields(captured: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("bot.test").info("clicked", extra={"actor": "U0RITA", "request_id": "7"})
    line, = emitted_lines(captured)
    assert "INFO" in line and "bot.test: clicked" in line and "request_id=7" in line and "actor=U0RITA" in line


@pytest.mark.parametrize("text, secret", [
    (f"calling Slack with {SLACK_BOT}", SLACK_BOT),
    (f"socket mode token {SLACK_APP} rejected", SLACK_APP),
    (f"access token {JWT} expired", JWT),
    (f"Authorization: Bearer {REFRESH}", REFRESH),
    (f"POST /token grant_type=refresh_token&refresh_token={REFRESH}&scope=x", REFRESH),
    (f'{{"refresh_token": "{REFRESH}", "token_type": "Bearer"}}', REFRESH),
    (f"client_secret={SIGNING_SECRET}", SIGNING_SECRET),
])
def test_token_shapes_are_redacted(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and REDACTED in cleaned


def test_redaction_keeps_what_is_not_secret() -> None:
    text = "grant_type=refresh_token&scope=contact_data request 42 by U0ALEX"
    assert redact(text) == text


def test_configured_secrets_are_redacted_whatever_their_shape() -> None:
    assert redact(f"signature check with {SIGNING_SECRET} failed", [SIGNING_SECRET]) == \
        f"signature check with {REDACTED} failed"


def test_messages_arguments_and_fields_are_redacted(captured: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", secrets=[SIGNING_SECRET])
    log = logging.getLogger("bot.test")
    log.info("token %s and secret %s", SLACK_BOT, SIGNING_SECRET, extra={"actor": f"Bearer {REFRESH}"})
    line, = emitted_lines(captured)
    assert SLACK_BOT not in line and SIGNING_SECRET not in line and REFRESH not in line
    assert json.loads(line)["message"] == f"token {REDACTED} and secret {REDACTED}"


def test_tracebacks_are_redacted(captured: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text", secrets=[SIGNING_SECRET])

    def call_slack(token: str) -> None:
        raise RuntimeError(f"request failed for token {token} with secret {SIGNING_SECRET} and {JWT}")

    try:
        call_slack(SLACK_BOT)
    except RuntimeError:
        logging.getLogger("bot.test").exception("listener failed with refresh_token=%s", REFRESH)
    output = captured.readouterr().err
    assert "Traceback (most recent call last)" in output and "RuntimeError" in output
    for secret in (SLACK_BOT, SIGNING_SECRET, JWT, REFRESH):
        assert secret not in output
    assert output.count(REDACTED) >= 4


def test_the_filter_works_on_any_handler() -> None:
    record = logging.LogRecord("bot.test", logging.ERROR, __file__, 1, "boom %s", (SLACK_APP,), None)
    try:
        raise KeyError(SLACK_BOT)
    except KeyError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter([]).filter(record) is True
    text = logging.Formatter().format(record)
    assert SLACK_APP not in text and SLACK_BOT not in text and "KeyError" in text
