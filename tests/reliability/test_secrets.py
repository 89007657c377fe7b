"""After a run full of faults, no token or secret shows up anywhere people or operators can read:
log lines (at DEBUG, through the production logging set-up), Slack messages, ephemerals, views and
response_url posts, the audit log and every other table, and exception texts.
"""

from __future__ import annotations

import io
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bot.config import NEEDS_RUN_HTTP, load_settings
from bot.constant_contact import ConstantContactClient, ConstantContactError, MemoryTokenStore
from bot.logs import configure_logging
from bot.sandbox.world import World
from tests.reliability.support import (
    add_tags,
    approve,
    next_ephemeral,
    summary_posted_soon,
    to_card,
    wait_finished,
)

PREFIX = 16  # a token's first characters are as good as the token to anyone grepping for it


@pytest.fixture
def production_log(world: World) -> Iterator[io.StringIO]:
    """The log handler `deletetags-bot run` installs, at DEBUG, writing into a buffer."""
    root = logging.getLogger()
    level = root.level
    settings = load_settings(world.env, NEEDS_RUN_HTTP)
    configure_logging("DEBUG", "text", settings.secrets())
    handler = next(h for h in root.handlers if getattr(h, "_deletetags", False))
    buffer = io.StringIO()
    handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def secrets_of(world: World) -> set[str]:
    """Every secret the run used: settings, and each access and refresh token Constant Contact issued."""
    found = {world.env[name] for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CC_CLIENT_SECRET",
                                         "CC_REFRESH_TOKEN")}
    for record in world.cc.token_requests():
        found |= {(record.form or {}).get("refresh_token", "")}
        body = record.response if isinstance(record.response, dict) else {}
        found |= {body.get("access_token", ""), body.get("refresh_token", "")}
    return {s for s in found if s}


def leaks(text: str, secrets: set[str]) -> list[str]:
    return sorted({s[:8] + "…" for s in secrets if s in text or s[:PREFIX] in text})


def slack_texts(world: World) -> str:
    slack = world.slack
    parts = []
    for channel in slack.channel_ids:
        for message in slack.messages(channel):
            parts += [message.text, str(message.blocks), str([(e.text, e.blocks) for e in message.edits])]
    parts += [f"{e.text} {e.blocks}" for e in slack.ephemerals]
    parts += [str(v.to_slack()) for v in slack.views.values()]
    parts += [str(r.body) for r in slack.responses]
    parts += [str(c.params) for c in slack.calls]
    return "\n".join(parts)


def database_text(db_path: Path) -> str:
    """Every row of every table but the one that must hold the Constant Contact tokens."""
    rows = []
    with closing(sqlite3.connect(db_path)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table != "credentials":
                rows += [str(row) for row in db.execute(f'SELECT * FROM "{table}"')]  # noqa: S608 - our own names
    return "\n".join(rows)


def run_with_faults(world: World) -> None:
    """Server errors, throttling, a token expiring mid-run, Slack refusing posts, a revoked refresh token."""
    first, second = add_tags(world, 3), add_tags(world, 2, prefix="Second")
    world.cc.faults.error_rate = 0.3
    world.cc.faults.throttle_burst = 2
    world.cc.next_activity_seconds = [0.6]
    request_id, _ = approve(world, first)
    world.driver.wait_for(lambda: world.store.batches(request_id)[0].activity_id, what="the activity")
    world.cc.expire_access_tokens()
    world.slack.fail_next("chat.postMessage", "invalid_auth")
    world.driver.wait_for(lambda: world.store.get_request(request_id).state == "completed", what="completion")
    summary_posted_soon(world, request_id)
    world.cc.faults.error_rate = 0.0
    revoked, card = to_card(world, second)
    world.cc.expire_access_tokens()
    world.cc.revoke_refresh_tokens()
    world.driver.click(world.people.approver, card, "Approve")
    assert wait_finished(world, revoked) == "failed"
    world.slack.fail_next("views.open", "invalid_auth")
    seen = len(world.slack.ephemerals)
    world.driver.slash_command(world.people.requester, world.channel, "")
    next_ephemeral(world, world.people.requester, seen, lambda e: "something went wrong" in e.text)


def exception_texts(world: World) -> list[str]:
    """What the Constant Contact client says when its credentials are wrong, revoked or missing."""
    texts = []
    world.cc.token_requests_per_second = 100  # three clients in a row; the endpoint's 1/s limit is not the point
    cases = ((world.env["CC_CLIENT_SECRET"], world.cc.issue_refresh_token(), True),
             ("wrong-client-secret", world.env["CC_REFRESH_TOKEN"], False), (None, "not-a-refresh-token", False))
    for secret, refresh, revoke in cases:
        if revoke:
            world.cc.revoke_refresh_tokens()
        client = ConstantContactClient(api_url=world.cc.base_url, auth_url=world.cc.auth_url,
                                       client_id=world.env["CC_CLIENT_ID"], client_secret=secret,
                                       token_store=MemoryTokenStore(), initial_refresh_token=refresh,
                                       max_retry_seconds=2)
        try:
            client.list_tags()
        except ConstantContactError as error:
            texts.append(f"{type(error).__name__}: {error} {error.__cause__!r}")
        finally:
            client.close()
    assert len(texts) == 3
    return texts


def test_no_secret_reaches_logs_slack_the_database_or_exception_texts(
        world: World, production_log: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    run_with_faults(world)
    texts = exception_texts(world)
    secrets = secrets_of(world)
    assert len(secrets) >= 8, "the run should have rotated several tokens"
    logged = production_log.getvalue()
    assert "Constant Contact" in logged and "listener failed" in logged
    assert leaks(logged, secrets) == []
    own_records = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "")
                            for r in caplog.records if r.name.startswith("bot"))
    assert leaks(own_records, secrets) == [], "the bot itself handed a secret to the logger"
    assert leaks(slack_texts(world), secrets) == []
    assert leaks(database_text(Path(world.env["DELETETAGS_DB"])), secrets) == []
    assert leaks("\n".join(texts), secrets) == []
    assert "Run `deletetags-bot cc-auth`" in database_text(Path(world.env["DELETETAGS_DB"]))
