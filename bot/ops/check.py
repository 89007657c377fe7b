"""`deletetags-bot check`: configuration, database, Slack and Constant Contact, one line each.

Every check is a small function of a shared `CheckContext` returning a `CheckResult` (or None
when it does not apply). Later checks reuse what earlier ones built (settings, the store, the
clients) and report "not checked" when what they need failed.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import NEEDS_RUN_HTTP, NEEDS_RUN_SOCKET, Settings, SettingsError, load_settings
from bot.logs import redact
from bot.ops.scopes import UnmappedSlackUsage, required_scopes
from bot.store import Store

OK, FAILED, NOT_CHECKED = "ok", "failed", "not checked"
MARKS = {OK: "✓", FAILED: "✗", NOT_CHECKED: "–"}
TOKEN_WRONG = "SLACK_BOT_TOKEN is wrong or revoked: reinstall the app and copy the Bot User OAuth Token"
BAD_TOKEN_ERRORS = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
SCOPES_HEADER = "x-oauth-scopes"
NEEDED_PRIVILEGE = "contacts:write"
CC_TIMEOUT_SECONDS = 10.0
CC_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", OK if self.ok else FAILED)


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, detail)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, False, detail, fix)


def not_checked(name: str, why: str) -> CheckResult:
    return CheckResult(name, False, f"not checked: {why}", None, NOT_CHECKED)


@dataclass
class CheckContext:
    """What the checks share; built up as they run, closed at the end."""

    environ: Mapping[str, str]
    socket_mode: bool
    settings: Settings | None = None
    store: Store | None = None
    slack: WebClient | None = None
    granted_scopes: set[str] | None = None
    cc: Any = None
    cc_ready: bool = False
    secrets: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "Socket Mode" if self.socket_mode else "HTTP mode"

    def close(self) -> None:
        if self.cc is not None:
            self.cc.close()
        if self.store is not None:
            self.store.close()


Check = Callable[[CheckContext], CheckResult | None]


# --- settings and database ------------------------------------------------------------------------


def _listed(problems: list[str]) -> str:
    return f"{len(problems)} setting(s) need attention\n" + "\n".join(f"- {p}" for p in problems)


def check_settings(ctx: CheckContext) -> CheckResult:
    name = f"Settings ({ctx.mode})"
    needs = NEEDS_RUN_SOCKET if ctx.socket_mode else NEEDS_RUN_HTTP
    try:
        ctx.settings = load_settings(ctx.environ)
    except SettingsError as error:
        return failed(name, _listed(error.problems), "fix the values above (README.md, section Settings)")
    ctx.secrets = ctx.settings.secrets()
    try:
        load_settings(ctx.environ, needs)
    except SettingsError as error:
        return failed(name, _listed(error.problems), "set them in the environment, then run `deletetags-bot check` again")
    return passed(name, f"everything `deletetags-bot run` needs in {ctx.mode} is set")


def _describe_db_error(path: str, error: Exception) -> CheckResult:
    name = "Database"
    if isinstance(error, (FileNotFoundError, NotADirectoryError, FileExistsError, IsADirectoryError)):
        return failed(name, f"cannot create {path}: {error.strerror or type(error).__name__}",
                      "point DELETETAGS_DB at a file in a directory that exists and the bot may write to")
    if isinstance(error, PermissionError) or "readonly" in str(error) or "read-only" in str(error):
        return failed(name, f"cannot write to {path}: check file permissions",
                      f"make {path} and its directory writable by the user running the bot")
    if isinstance(error, sqlite3.DatabaseError):
        return failed(name, f"cannot use {path} as a database ({error})",
                      "point DELETETAGS_DB at the bot's SQLite file, or at a new path to start empty")
    return failed(name, f"cannot open {path} ({type(error).__name__}: {error})", "check DELETETAGS_DB")


def _probe_write(store: Store) -> None:
    """A write that is rolled back: proves the file takes writes without changing anything."""
    conn = store.db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO seen_events (event_id, at) VALUES ('check-write-probe', '')")
    finally:
        conn.rollback()


def check_database(ctx: CheckContext) -> CheckResult | None:
    if ctx.settings is None:
        return not_checked("Database", "the settings are not valid")
    path = str(ctx.settings.db_path)
    existed = os.path.exists(path)
    try:
        ctx.store = Store(ctx.settings.db_path)
        _probe_write(ctx.store)
        pending = ctx.store.pending_migrations()
        applied = ctx.store.applied_migrations()
    except (OSError, sqlite3.Error) as error:
        return _describe_db_error(path, error)
    if pending:
        return failed("Database", f"{path} lacks migrations {', '.join(pending)}",
                      "start the bot once with `deletetags-bot run`; it applies migrations at start-up")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        return failed("Database", f"{path} holds OAuth tokens but others may read it (mode {mode:o})",
                      f"chmod 600 {path}")
    verb = "opened" if existed else "created"
    return passed("Database", f"{verb} {path}: writable, {len(applied)} migration(s) applied, none pending")


# --- Slack ---------------------------------------------------------------------------------------


def slack_error_code(error: SlackApiError) -> str:
    """Slack's error code, or the HTTP status when the answer had none."""
    return str(error.response.get("error") or f"HTTP {error.response.status_code}")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _granted_scopes(headers: Mapping[str, Any]) -> set[str] | None:
    for key, value in headers.items():
        if key.lower() == SCOPES_HEADER:
            text = value[0] if isinstance(value, list) else str(value)
            return {s.strip() for s in text.split(",") if s.strip()}
    return None


def check_slack_token(ctx: CheckContext) -> CheckResult:
    name = "Slack bot token"
    settings = ctx.settings
    if settings is None or not settings.slack_bot_token:
        return not_checked(name, "SLACK_BOT_TOKEN is not set")
    client = WebClient(token=settings.slack_bot_token.reveal(), base_url=settings.slack_api_url, timeout=10)
    try:
        response = client.auth_test()
    except SlackApiError as error:
        code = slack_error_code(error)
        if code in BAD_TOKEN_ERRORS:
            return failed(name, f"Slack refused the token ({code})", TOKEN_WRONG)
        return failed(name, f"auth.test failed ({code})", "check SLACK_API_URL and SLACK_BOT_TOKEN")
    except OSError as error:
        return failed(name, f"cannot reach Slack at {_host(settings.slack_api_url)} ({type(error).__name__})",
                      "check the network and SLACK_API_URL")
    ctx.slack = client
    ctx.granted_scopes = _granted_scopes(response.headers)
    return passed(name, f"bot @{response.get('user')} ({response.get('user_id')}) "
                        f"in workspace {response.get('team')} ({response.get('team_id')})")


def check_slack_app_token(ctx: CheckContext) -> CheckResult | None:
    name = "Slack app-level token (Socket Mode)"
    if not ctx.socket_mode:
        return None
    settings = ctx.settings
    if settings is None or not settings.slack_app_token:
        return not_checked(name, "SLACK_APP_TOKEN is not set")
    client = WebClient(token=settings.slack_app_token.reveal(), base_url=settings.slack_api_url, timeout=10)
    try:
        # Only asks for a WebSocket URL; nothing connects to it.
        client.apps_connections_open(app_token=settings.slack_app_token.reveal())
    except SlackApiError as error:
        return failed(name, f"Slack refused SLACK_APP_TOKEN ({slack_error_code(error)})",
                      "create an app-level token with the connections:write scope (Basic Information page) "
                      "and enable Socket Mode for the app")
    except OSError as error:
        return failed(name, f"cannot reach Slack ({type(error).__name__})", "check the network and SLACK_API_URL")
    return passed(name, "valid; Socket Mode connections can be opened")


def check_slack_scopes(ctx: CheckContext) -> CheckResult:
    name = "Slack scopes"
    if ctx.slack is None:
        return not_checked(name, "needs a valid Slack bot token")
    try:
        needed = required_scopes()
    except (OSError, UnmappedSlackUsage) as error:
        return failed(name, f"cannot work out the scopes the bot needs ({error})", "reinstall deletetags-bot")
    if ctx.granted_scopes is None:
        return failed(name, f"Slack did not say which scopes the token has (no {SCOPES_HEADER} header on auth.test)",
                      "check that SLACK_API_URL points at Slack's Web API (https://slack.com/api/)")
    missing = sorted(needed - ctx.granted_scopes)
    if missing:
        return failed(name, f"the token lacks {', '.join(missing)}",
                      "add them under oauth_config.scopes.bot (manifest.yml lists them all), reinstall the app "
                      "to the workspace, and update SLACK_BOT_TOKEN if it changed")
    return passed(name, f"all {len(needed)} scopes in manifest.yml granted")


def check_approval_channel(ctx: CheckContext) -> CheckResult:
    name = "Approval channel"
    settings = ctx.settings
    if settings is None or not settings.approval_channel:
        return passed(name, "APPROVAL_CHANNEL not set: cards go to the channel each command came from")
    channel = settings.approval_channel
    if ctx.slack is None:
        return not_checked(name, "needs a valid Slack bot token")
    try:
        # conversations.history needs only the *:history scopes the bot holds anyway (conversations.info
        # would need channels:read and groups:read too), and fails unless the bot is a member.
        ctx.slack.conversations_history(channel=channel, limit=1)
    except SlackApiError as error:
        code = slack_error_code(error)
        if code == "not_in_channel":
            return failed(name, f"the bot is not a member of {channel}",
                          "invite it: type `/invite @deletetags` in that channel")
        if code == "channel_not_found":
            return failed(name, f"the bot cannot see a channel {channel}",
                          "set APPROVAL_CHANNEL to the channel id (C…, under the channel name → About) "
                          "and, for a private channel, invite the bot")
        return failed(name, f"cannot read {channel} ({code})", "check the Slack scopes above")
    return passed(name, f"{channel}: the bot is a member")


def _group_id_for(client: WebClient, handle: str) -> str | None:
    try:
        groups = client.usergroups_list().get("usergroups") or []
    except SlackApiError:
        return None
    return next((g.get("id") for g in groups if g.get("handle") == handle), None)


def _group_members(ctx: CheckContext, group: str) -> tuple[set[str] | None, CheckResult | None]:
    name = "Approvers"
    assert ctx.slack is not None
    try:
        response = ctx.slack.usergroups_users_list(usergroup=group)
    except SlackApiError as error:
        code = slack_error_code(error)
        if code == "plan_upgrade_required":
            return None, failed(name, f"this Slack plan has no user groups: APPROVER_GROUP={group} is ignored",
                                "remove APPROVER_GROUP and list the approvers in APPROVER_IDS")
        if code == "no_such_subteam":
            found = _group_id_for(ctx.slack, group)
            hint = (f"set APPROVER_GROUP={found} (the id of @{group})" if found
                    else "set APPROVER_GROUP to the user group's id (S…)")
            return None, failed(name, f"Slack knows no user group {group}", hint)
        return None, failed(name, f"cannot list the members of {group} ({code})", "check the Slack scopes above")
    return set(response.get("users") or []), None


def check_approvers(ctx: CheckContext) -> CheckResult:
    name = "Approvers"
    settings = ctx.settings
    if settings is None:
        return not_checked(name, "the settings are not valid")
    approvers = set(settings.approver_ids)
    where = f"{len(approvers)} in APPROVER_IDS"
    if settings.approver_group:
        if ctx.slack is None:
            return not_checked(name, "needs a valid Slack bot token to look up APPROVER_GROUP")
        members, problem = _group_members(ctx, settings.approver_group)
        if problem is not None:
            return problem
        approvers |= members or set()
        where += f", {len(members or ())} in {settings.approver_group}"
    if len(approvers) < settings.required_approvals:
        return failed(name, f"{len(approvers)} approver(s) ({where}) but REQUIRED_APPROVALS={settings.required_approvals}",
                      "add approvers or lower REQUIRED_APPROVALS; nobody can approve their own request")
    return passed(name, f"{len(approvers)} people may approve ({where}); {settings.required_approvals} approval(s) needed")


# --- Constant Contact ------------------------------------------------------------------------------


def _ledger(ctx: CheckContext) -> Any:
    from bot.quota_ledger import QuotaLedger
    from bot.store import utc_now

    assert ctx.settings is not None and ctx.store is not None
    return QuotaLedger(ctx.store, utc_now, ctx.settings.cc_daily_quota, ctx.settings.quota_reserve)


def _cc_client(ctx: CheckContext) -> Any:
    from bot.runtime import cc_client_from_settings

    assert ctx.settings is not None and ctx.store is not None
    # check's own calls count against the daily quota like the bot's.
    return cc_client_from_settings(ctx.settings, ctx.store, timeout=CC_TIMEOUT_SECONDS,
                                   max_retry_seconds=CC_RETRY_SECONDS, on_call=_ledger(ctx).record)


def check_cc_token(ctx: CheckContext) -> CheckResult:
    from bot.constant_contact import ConstantContactError, ReauthorizationRequired, ServiceUnavailable

    name = "Constant Contact token"
    settings = ctx.settings
    if settings is None or not settings.cc_client_id:
        return not_checked(name, "CC_CLIENT_ID is not set")
    if ctx.store is None:
        # A refresh rotates the refresh token; the new one must be saved or the old one is lost.
        return not_checked(name, "needs a writable database to save the rotated refresh token")
    ctx.cc = _cc_client(ctx)
    try:
        ctx.cc.refresh_now()
    except ReauthorizationRequired as error:
        return failed(name, str(error), "run `deletetags-bot cc-auth` (it stores a new refresh token in the database)")
    except ServiceUnavailable as error:
        return failed(name, str(error), "check the network and CC_AUTH_URL")
    except ConstantContactError as error:
        return failed(name, str(error), "check CC_CLIENT_ID and CC_CLIENT_SECRET, or run `deletetags-bot cc-auth`")
    ctx.cc_ready = True
    return passed(name, f"refreshed at {_host(settings.cc_auth_url)}; the new refresh token is saved")


def check_cc_privileges(ctx: CheckContext) -> CheckResult:
    from bot.constant_contact import ConstantContactError

    name = "Constant Contact user"
    if not ctx.cc_ready:
        return not_checked(name, "needs a working Constant Contact token")
    try:
        privileges = ctx.cc.user_privileges()
    except ConstantContactError as error:
        return failed(name, str(error), "run `deletetags-bot cc-auth` as an Account Owner or Account Manager")
    if NEEDED_PRIVILEGE not in privileges:
        return failed(name, f"the connected user lacks the {NEEDED_PRIVILEGE} privilege",
                      "run `deletetags-bot cc-auth` signed in as an Account Owner or Account Manager")
    return passed(name, f"holds {NEEDED_PRIVILEGE}")


def check_cc_tags(ctx: CheckContext) -> CheckResult:
    from bot.constant_contact import ConstantContactError

    name = "Constant Contact tags"
    if not ctx.cc_ready:
        return not_checked(name, "needs a working Constant Contact token")
    try:
        tags = ctx.cc.list_tags(include_count=True)
    except ConstantContactError as error:
        return failed(name, str(error), "check CC_API_URL and that the authorisation has the contact_data scope")
    return passed(name, f"{len(tags):,} tag(s) listed at {_host(ctx.settings.cc_api_url if ctx.settings else '')}")


def check_cc_quota(ctx: CheckContext) -> CheckResult | None:
    from bot.core.quota import budget_line
    from bot.store import utc_now

    name = "Constant Contact daily quota"
    if ctx.settings is None or ctx.store is None:
        return not_checked(name, "needs the database, where the bot counts its calls")
    day = _ledger(ctx).today()
    line = budget_line(day, utc_now())
    if day.left_for_new == 0:
        return failed(name, line, "new requests wait until 00:00 UTC; running deletions keep their reserve")
    return passed(name, line)


CHECKS: tuple[Check, ...] = (
    check_settings,
    check_database,
    check_slack_token,
    check_slack_app_token,
    check_slack_scopes,
    check_approval_channel,
    check_approvers,
    check_cc_token,
    check_cc_privileges,
    check_cc_tags,
    check_cc_quota,
)


def run_checks(environ: Mapping[str, str], socket_mode: bool = False,
               checks: Iterable[Check] = CHECKS) -> tuple[list[CheckResult], list[str]]:
    """Every check's result, plus the secrets to keep out of anything printed."""
    ctx = CheckContext(environ, socket_mode)
    results: list[CheckResult] = []
    try:
        for check in checks:
            result = check(ctx)
            if result is not None:
                results.append(result)
    finally:
        ctx.close()
    return results, ctx.secrets


def uses_socket_mode(environ: Mapping[str, str], socket_flag: bool) -> bool:
    """The same rule as `deletetags-bot run`."""
    return socket_flag or bool(environ.get("SLACK_APP_TOKEN", "").strip())


def format_report(results: list[CheckResult], secrets: Iterable[str] = ()) -> str:
    lines = []
    for result in results:
        first, *more = result.detail.splitlines() or [""]
        lines.append(f"{MARKS[result.status]} {result.name}: {first}")
        lines.extend(f"    {line}" for line in more)
        if result.fix and result.status == FAILED:
            lines.append(f"    fix: {result.fix}")
    counts = {status: sum(r.status == status for r in results) for status in MARKS}
    summary = f"{counts[OK]} passed, {counts[FAILED]} failed"
    if counts[NOT_CHECKED]:
        summary += f", {counts[NOT_CHECKED]} not checked"
    lines.append(summary)
    return redact("\n".join(lines), list(secrets))


def all_passed(results: list[CheckResult]) -> bool:
    return not any(r.status == FAILED for r in results)
