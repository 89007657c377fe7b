"""`deletetags-bot check` against the offline world: the Constant Contact simulator and the Slack emulator."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot.__main__ import cli
from bot.ops.check import TOKEN_WRONG, run_checks
from bot.ops.scopes import required_scopes
from bot.sandbox.slack import SlackEmulator
from bot.sandbox.world import LEADS_GROUP, World

ROOT = Path(__file__).resolve().parents[2]


def report_bot_scopes(slack: SlackEmulator, scopes: Iterable[str]) -> None:
    """Make auth.test carry `x-oauth-scopes`, as real Slack does for a bot token."""
    listed = ",".join(sorted(scopes))
    if hasattr(slack, "bot_scopes"):  # an emulator that reports scopes itself
        slack.bot_scopes = listed.split(",") if listed else []
        return
    original = slack.handle_http

    def handle_http(verb: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        reply = original(verb, target, headers, body)
        if target.split("?", 1)[0].endswith("/api/auth.test"):
            reply.headers["x-oauth-scopes"] = listed
        return reply

    slack.handle_http = handle_http  # type: ignore[method-assign]



@pytest.fixture
def granted(world: World) -> World:
    report_bot_scopes(world.slack, required_scopes())
    return world


def check(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["check", *args], env=env)


def line_for(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if f" {name}" in line.split(":")[0])


def secrets_of(env: dict[str, str]) -> list[str]:
    names = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "CC_CLIENT_SECRET", "CC_REFRESH_TOKEN")
    return [env[n] for n in names if env.get(n)]


def test_everything_passes_in_the_sandbox(granted: World) -> None:
    env = dict(granted.env, APPROVAL_CHANNEL=granted.channel)
    result = check(env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert all(line.startswith("✓") for line in lines[:-1]), result.output
    assert lines[-1] == "10 passed, 0 failed"
    for name in ("Settings (HTTP mode)", "Database", "Slack bot token", "Slack scopes", "Approval channel",
                 "Approvers", "Constant Contact token", "Constant Contact user", "Constant Contact tags",
                 "Constant Contact daily quota"):
        assert line_for(result.output, name).startswith("✓")
    assert all(secret not in result.output for secret in secrets_of(env))
    # The refresh rotated the token; the new one is in the database, ready for the bot.
    assert granted.store.load_credentials() is not None


def test_socket_mode_checks_the_app_token_and_its_settings(granted: World) -> None:
    env = dict(granted.env, SLACK_APP_TOKEN=granted.slack.app_token)
    result = check(env)
    assert result.exit_code == 0, result.output
    assert line_for(result.output, "Settings (Socket Mode)").startswith("✓")
    assert line_for(result.output, "Slack app-level token (Socket Mode)").startswith("✓")

    without = {k: v for k, v in granted.env.items() if k != "SLACK_APP_TOKEN"}
    result = check(without, "--socket")
    assert result.exit_code == 1
    assert line_for(result.output, "Settings (Socket Mode)").startswith("✗")
    assert "SLACK_APP_TOKEN is missing" in result.output


def test_check_runs_as_a_real_process(granted: World) -> None:
    env = {**os.environ, **granted.env, "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-m", "bot", "check"], env=env, cwd=ROOT, capture_output=True,
                          timeout=60, encoding="utf-8")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ Slack bot token" in done.stdout and "10 passed, 0 failed" in done.stdout
    assert all(secret not in done.stdout + done.stderr for secret in secrets_of(granted.env))


def test_a_wrong_slack_token_fails_with_the_fix(granted: World) -> None:
    env = dict(granted.env, SLACK_BOT_TOKEN="xoxb-0000-wrong-token")
    result = check(env)
    assert result.exit_code == 1
    token_line = line_for(result.output, "Slack bot token")
    assert token_line.startswith("✗") and "invalid_auth" in token_line
    assert TOKEN_WRONG in result.output
    assert line_for(result.output, "Slack scopes").startswith("–")
    assert "xoxb-0000-wrong-token" not in result.output
    assert line_for(result.output, "Constant Contact token").startswith("✓")


def test_a_missing_scope_is_named(world: World) -> None:
    report_bot_scopes(world.slack, required_scopes() - {"usergroups:read", "im:history"})
    result = check(world.env)
    assert result.exit_code == 1
    scope_line = line_for(result.output, "Slack scopes")
    assert scope_line.startswith("✗") and "im:history, usergroups:read" in scope_line
    assert "reinstall the app" in result.output


def test_a_token_without_files_write_is_named(world: World) -> None:
    report_bot_scopes(world.slack, required_scopes() - {"files:write"})
    result = check(world.env)
    assert result.exit_code == 1
    scope_line = line_for(result.output, "Slack scopes")
    assert scope_line.startswith("✗") and scope_line.endswith("the token lacks files:write")


def test_the_sandbox_slack_grants_what_the_manifest_asks(world: World) -> None:
    # The rehearsal in the README (`sandbox --slack`, then `check`) uses the emulator's own scopes.
    result = check(world.env)
    assert line_for(result.output, "Slack scopes").startswith("✓"), result.output


def test_a_token_whose_scopes_slack_does_not_report_fails(world: World) -> None:
    if hasattr(world.slack, "bot_scopes"):
        pytest.skip("this emulator reports scopes itself")
    result = check(world.env)
    assert result.exit_code == 1
    assert "x-oauth-scopes" in line_for(result.output, "Slack scopes")


def test_a_revoked_refresh_token_asks_for_cc_auth(granted: World, tmp_path: Path) -> None:
    granted.cc.revoke_refresh_tokens()
    # A fresh database holds no tokens, so the check must use CC_REFRESH_TOKEN (now revoked).
    env = dict(granted.env, DELETETAGS_DB=str(tmp_path / "fresh.db"))
    result = check(env)
    assert result.exit_code == 1
    cc_line = line_for(result.output, "Constant Contact token")
    assert cc_line.startswith("✗") and "invalid_grant" in cc_line
    assert "deletetags-bot cc-auth" in result.output
    assert line_for(result.output, "Constant Contact tags").startswith("–")
    assert line_for(result.output, "Slack bot token").startswith("✓")


def test_no_refresh_token_anywhere_asks_for_cc_auth(granted: World, tmp_path: Path) -> None:
    env = {k: v for k, v in granted.env.items() if k != "CC_REFRESH_TOKEN"}
    env["DELETETAGS_DB"] = str(tmp_path / "empty.db")
    result = check(env)
    assert result.exit_code == 1
    assert "No Constant Contact refresh token is stored" in line_for(result.output, "Constant Contact token")


def test_a_database_that_cannot_be_created_fails_and_protects_the_refresh_token(
        granted: World, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = dict(granted.env, DELETETAGS_DB=str(blocker / "sub" / "deletetags.db"))
    result = check(env)
    assert result.exit_code == 1
    db_line = line_for(result.output, "Database")
    assert db_line.startswith("✗") and f"cannot create {blocker / 'sub' / 'deletetags.db'}" in db_line
    # No refresh without a place to save the rotated refresh token.
    assert "not checked: needs a writable database" in line_for(result.output, "Constant Contact token")
    assert granted.cc.token_requests() == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write to a read-only file")
def test_a_read_only_database_fails(granted: World, tmp_path: Path) -> None:
    copy = tmp_path / "readonly.db"
    shutil.copy(granted.store.path, copy)
    copy.chmod(0o400)
    tmp_path.chmod(0o500)
    try:
        result = check(dict(granted.env, DELETETAGS_DB=str(copy)))
    finally:
        tmp_path.chmod(0o700)
    assert result.exit_code == 1
    assert f"cannot write to {copy}: check file permissions" in result.output


def test_a_database_others_can_read_fails(granted: World) -> None:
    granted.store.path.chmod(0o644)
    result = check(granted.env)
    assert result.exit_code == 1
    assert f"chmod 600 {granted.store.path}" in result.output


def test_an_approval_channel_without_the_bot_fails(granted: World) -> None:
    granted.slack.add_channel("C0ELSEWHERE", "elsewhere", members=[granted.people.requester])
    result = check(dict(granted.env, APPROVAL_CHANNEL="C0ELSEWHERE"))
    assert result.exit_code == 1
    assert "the bot is not a member of C0ELSEWHERE" in line_for(result.output, "Approval channel")
    assert "/invite @deletetags" in result.output

    result = check(dict(granted.env, APPROVAL_CHANNEL="C0NOSUCH"))
    assert "cannot see a channel C0NOSUCH" in line_for(result.output, "Approval channel")


def test_a_plan_without_user_groups_is_flagged(granted: World) -> None:
    granted.slack.usergroups_enabled = False
    result = check(granted.env)
    assert result.exit_code == 1
    approvers = line_for(result.output, "Approvers")
    assert approvers.startswith("✗") and "no user groups" in approvers
    assert "list the approvers in APPROVER_IDS" in result.output


def test_a_group_handle_gets_its_id_suggested(granted: World) -> None:
    result = check(dict(granted.env, APPROVER_GROUP="@team-leads"))
    assert result.exit_code == 1
    assert f"set APPROVER_GROUP={LEADS_GROUP}" in result.output


def test_too_few_approvers_for_the_required_approvals(granted: World) -> None:
    env = dict(granted.env, REQUIRED_APPROVALS="4")
    result = check(env)
    assert result.exit_code == 1
    assert "3 approver(s)" in line_for(result.output, "Approvers")


def test_missing_settings_are_listed_and_connections_still_checked(granted: World) -> None:
    env = {k: v for k, v in granted.env.items() if k not in ("APPROVER_IDS", "APPROVER_GROUP", "SLACK_SIGNING_SECRET")}
    result = check(env)
    assert result.exit_code == 1
    assert line_for(result.output, "Settings (HTTP mode)").startswith("✗ Settings (HTTP mode): 2 setting(s) need attention")
    assert "\n    - SLACK_SIGNING_SECRET is missing" in result.output
    assert "\n    - APPROVER_IDS or APPROVER_GROUP is missing" in result.output
    assert line_for(result.output, "Slack bot token").startswith("✓")


def test_a_user_without_contacts_write_is_flagged(granted: World) -> None:
    granted.cc.privileges = ["account:read", "contacts:read"]
    result = check(granted.env)
    assert result.exit_code == 1
    assert "lacks the contacts:write privilege" in line_for(result.output, "Constant Contact user")


def test_run_checks_returns_results_a_program_can_read(granted: World) -> None:
    results, secrets = run_checks(granted.env)
    assert [r.ok for r in results] == [True] * len(results)
    assert granted.env["SLACK_BOT_TOKEN"] in secrets
    assert {r.name for r in results} >= {"Database", "Slack scopes", "Constant Contact tags"}


def test_check_counts_its_own_calls_and_shows_the_quota(granted: World) -> None:
    """check's calls go into the ledger (the token refresh does not: the token endpoint is not part of
    the API quota), and the line shows used and left today, matching the simulator's own count."""
    env = dict(granted.env, APPROVAL_CHANNEL=granted.channel)
    result = check(env)
    assert result.exit_code == 0, result.output
    used = granted.cc.quota_used_today()
    assert used == 2  # GET /account/user/privileges, one page of GET /contact_tags
    line = line_for(result.output, "Constant Contact daily quota")
    assert line.startswith(f"✓ Constant Contact daily quota: {used} of 10,000 used today, {10_000 - used:,} left; "
                           "500 kept for running deletions; resets at 00:00 UTC (in "), line


def test_check_fails_when_nothing_is_left_for_new_requests(granted: World) -> None:
    env = dict(granted.env, APPROVAL_CHANNEL=granted.channel, CC_DAILY_QUOTA="600", QUOTA_RESERVE="598")
    result = check(env)
    assert result.exit_code == 1
    line = line_for(result.output, "Constant Contact daily quota")
    assert line.startswith("✗ Constant Contact daily quota: 2 of 600 used today, 598 left; 598 kept"), line
    assert "fix: new requests wait until 00:00 UTC" in result.output
