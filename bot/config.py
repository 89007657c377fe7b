"""Settings: the only reader of the process environment.

`load_settings(environ, needs=...)` parses every variable, then checks only those the calling
command needs, and raises one `SettingsError` naming every problem at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_CC_API_URL = "https://api.cc.email/v3"
DEFAULT_CC_AUTH_URL = "https://authz.constantcontact.com/oauth2/default/v1"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
# Base URLs whose requests carry a token: plain http is accepted only on this machine.
TOKEN_URLS = (("slack_api_url", "SLACK_API_URL"), ("cc_api_url", "CC_API_URL"), ("cc_auth_url", "CC_AUTH_URL"))


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Setting:
    """Documentation of one environment variable (used for errors, README and `check`)."""

    name: str
    default: str | None
    looks_like: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("SLACK_BOT_TOKEN", None, "the Bot User OAuth Token, xoxb-…", secret=True),
    Setting("SLACK_SIGNING_SECRET", None, "the app's Signing Secret (Basic Information page)", secret=True),
    Setting("SLACK_APP_TOKEN", None, "an app-level token with connections:write, xapp-… (Socket Mode only)", secret=True),
    Setting("SLACK_API_URL", DEFAULT_SLACK_API_URL, "an https URL ending in /api/ (http only on 127.0.0.1, ::1 or localhost)"),
    Setting("CC_CLIENT_ID", None, "the API key (client id) of your Constant Contact application"),
    Setting("CC_CLIENT_SECRET", None, "the client secret of that application (not needed for the device flow)", secret=True),
    Setting("CC_REFRESH_TOKEN", None, "a refresh token, first run only (or run `deletetags-bot cc-auth`)", secret=True),
    Setting("CC_API_URL", DEFAULT_CC_API_URL, "an https URL such as https://api.cc.email/v3 (http only on 127.0.0.1, ::1 or localhost)"),
    Setting("CC_AUTH_URL", DEFAULT_CC_AUTH_URL, "an https URL; the token endpoint is $CC_AUTH_URL/token (http only on 127.0.0.1, ::1 or localhost)"),
    Setting("DELETETAGS_DB", "deletetags.db", "a path to the SQLite file"),
    Setting("APPROVER_IDS", "", "comma-separated Slack user ids such as U012ABCDEF,U034GHIJKL"),
    Setting("APPROVER_GROUP", "", "a Slack user group id (S…) or handle such as @team-leads"),
    Setting("REQUIRED_APPROVALS", "1", "a whole number from 1 to 5"),
    Setting("APPROVAL_CHANNEL", "", "a channel id such as C012ABCDEF (default: where the command came from)"),
    Setting("APPROVAL_TTL_HOURS", "24", "a number of hours greater than 0, such as 24 or 0.5"),
    Setting("PORT", "3000", "a TCP port number from 1 to 65535 (0: any free port)"),
    Setting("HOST", "0.0.0.0", "the address the HTTP server listens on, such as 0.0.0.0 or 127.0.0.1"),
    Setting("HEALTH_DETAILS", "false", "true or false: /healthz shows its full report to any client, not only to this host"),
    Setting("LOG_LEVEL", "INFO", "one of " + ", ".join(LOG_LEVELS)),
    Setting("LOG_FORMAT", "text", "text or json"),
    Setting("POLL_MIN_SECONDS", "2", "seconds between activity polls at the shortest, a number > 0"),
    Setting("POLL_MAX_SECONDS", "60", "seconds between activity polls at the longest, >= POLL_MIN_SECONDS"),
    Setting("RECONCILE_DELAY_SECONDS", "30", "seconds to wait before checking a submission whose outcome is unknown, a number > 0"),
    Setting("MAX_FILE_MB", "5", "the largest uploaded file accepted, in MB, a number > 0"),
    Setting("MAX_ENTRIES", "5000", "the most tag entries one request may carry, a whole number > 0"),
    Setting("MAX_FILES_PER_MESSAGE", "3", "the most files read from one message, a whole number > 0"),
    Setting("LARGE_TAG_CONTACTS", "10000", "contacts from which a tag is flagged as large on the card, a whole number > 0"),
    Setting("SNAPSHOTS", "true", "true or false: record which contacts carry each tag before deleting it"),
    Setting("SNAPSHOT_MAX_CONTACTS", "500000", "the most contacts a request's tags may carry and still be snapshotted, a whole number > 0"),
    Setting("SNAPSHOT_RETENTION_DAYS", "90", "days a snapshot is kept before it is purged, a whole number > 0"),
    Setting("CC_DAILY_QUOTA", "10000", "Constant Contact calls allowed per UTC day for this API key, a whole number > 0"),
    Setting("QUOTA_RESERVE", "500", "calls of the daily quota kept for status polls of running deletions, a whole number >= 0"),
    Setting("METRICS_PORT", "", "Socket Mode only: a TCP port for /metrics and /healthz (0: any free port; empty: none)"),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}

# What each command needs, beyond what has a default.
NEEDS_SLACK = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
NEEDS_CONSTANT_CONTACT = ("CC_CLIENT_ID",)
NEEDS_APPROVERS = ("APPROVER_IDS|APPROVER_GROUP",)
NEEDS_RUN_HTTP = NEEDS_SLACK + NEEDS_CONSTANT_CONTACT + NEEDS_APPROVERS
NEEDS_RUN_SOCKET = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN") + NEEDS_CONSTANT_CONTACT + NEEDS_APPROVERS


class SettingsError(Exception):
    """Every missing or invalid setting, each with what it should look like."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} setting(s) need attention:\n{lines}")


@dataclass(frozen=True)
class Settings:
    slack_bot_token: Secret | None = None
    slack_signing_secret: Secret | None = None
    slack_app_token: Secret | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    cc_client_id: str | None = None
    cc_client_secret: Secret | None = None
    cc_refresh_token: Secret | None = None
    cc_api_url: str = DEFAULT_CC_API_URL
    cc_auth_url: str = DEFAULT_CC_AUTH_URL
    db_path: Path = Path("deletetags.db")
    approver_ids: tuple[str, ...] = ()
    approver_group: str | None = None
    required_approvals: int = 1
    approval_channel: str | None = None
    approval_ttl_hours: float = 24.0
    port: int = 3000
    host: str = "0.0.0.0"
    health_details: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    poll_min_seconds: float = 2.0
    poll_max_seconds: float = 60.0
    reconcile_delay_seconds: float = 30.0
    max_file_mb: float = 5.0
    max_entries: int = 5000
    max_files_per_message: int = 3
    large_tag_contacts: int = 10_000
    snapshots: bool = True
    snapshot_max_contacts: int = 500_000
    snapshot_retention_days: int = 90
    cc_daily_quota: int = 10_000
    quota_reserve: int = 500
    metrics_port: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        values = [getattr(self, f.name) for f in fields(self)]
        return [v.reveal() for v in values if isinstance(v, Secret) and v.reveal()]


def _text(value: str) -> str:
    return value.strip()


def _url(value: str) -> str:
    value = value.strip()
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError
    return value


def _secret(value: str) -> Secret:
    return Secret(value.strip())


def _positive_int(value: str) -> int:
    number = int(value.strip().replace("_", ""))
    if number <= 0:
        raise ValueError
    return number


def _approvals(value: str) -> int:
    number = int(value.strip())
    if not 1 <= number <= 5:
        raise ValueError
    return number


def _positive_float(value: str) -> float:
    number = float(value.strip())
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError
    return number


def _whole_number(value: str) -> int:
    number = int(value.strip())
    if number < 0:
        raise ValueError
    return number


def _port(value: str) -> int:
    number = int(value.strip())
    if not 0 <= number <= 65535:
        raise ValueError
    return number


def _user_ids(value: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    if any(not SLACK_USER_ID.match(i) for i in ids):
        raise ValueError
    return ids


def _group(value: str) -> str | None:
    return value.strip().lstrip("@") or None


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError
    return level


def _log_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError
    return fmt


def _flag(value: str) -> bool:
    word = value.strip().lower()
    if word not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError
    return word in ("true", "1", "yes")


def _optional_channel(value: str) -> str | None:
    return value.strip().lstrip("#") or None


_PARSERS: dict[str, tuple[str, Callable[[str], object]]] = {
    "SLACK_BOT_TOKEN": ("slack_bot_token", _secret),
    "SLACK_SIGNING_SECRET": ("slack_signing_secret", _secret),
    "SLACK_APP_TOKEN": ("slack_app_token", _secret),
    "SLACK_API_URL": ("slack_api_url", _url),
    "CC_CLIENT_ID": ("cc_client_id", _text),
    "CC_CLIENT_SECRET": ("cc_client_secret", _secret),
    "CC_REFRESH_TOKEN": ("cc_refresh_token", _secret),
    "CC_API_URL": ("cc_api_url", _url),
    "CC_AUTH_URL": ("cc_auth_url", _url),
    "DELETETAGS_DB": ("db_path", lambda v: Path(v.strip())),
    "APPROVER_IDS": ("approver_ids", _user_ids),
    "APPROVER_GROUP": ("approver_group", _group),
    "REQUIRED_APPROVALS": ("required_approvals", _approvals),
    "APPROVAL_CHANNEL": ("approval_channel", _optional_channel),
    "APPROVAL_TTL_HOURS": ("approval_ttl_hours", _positive_float),
    "PORT": ("port", _port),
    "HOST": ("host", _text),
    "HEALTH_DETAILS": ("health_details", _flag),
    "LOG_LEVEL": ("log_level", _log_level),
    "LOG_FORMAT": ("log_format", _log_format),
    "POLL_MIN_SECONDS": ("poll_min_seconds", _positive_float),
    "POLL_MAX_SECONDS": ("poll_max_seconds", _positive_float),
    "RECONCILE_DELAY_SECONDS": ("reconcile_delay_seconds", _positive_float),
    "MAX_FILE_MB": ("max_file_mb", _positive_float),
    "MAX_ENTRIES": ("max_entries", _positive_int),
    "MAX_FILES_PER_MESSAGE": ("max_files_per_message", _positive_int),
    "LARGE_TAG_CONTACTS": ("large_tag_contacts", _positive_int),
    "SNAPSHOTS": ("snapshots", _flag),
    "SNAPSHOT_MAX_CONTACTS": ("snapshot_max_contacts", _positive_int),
    "SNAPSHOT_RETENTION_DAYS": ("snapshot_retention_days", _positive_int),
    "CC_DAILY_QUOTA": ("cc_daily_quota", _positive_int),
    "QUOTA_RESERVE": ("quota_reserve", _whole_number),
    "METRICS_PORT": ("metrics_port", _port),
}


def _describe_bad(name: str) -> str:
    setting = SETTINGS_BY_NAME[name]
    # A secret's value is never echoed back, even when it is wrong.
    return f"{name} is not valid: it should be {setting.looks_like}"


def _check_token_prefix(values: dict[str, object], problems: list[str]) -> None:
    prefixes = {"slack_bot_token": ("SLACK_BOT_TOKEN", "xoxb-"), "slack_app_token": ("SLACK_APP_TOKEN", "xapp-")}
    for attr, (name, prefix) in prefixes.items():
        value = values.get(attr)
        if isinstance(value, Secret) and value and not value.reveal().startswith(prefix):
            problems.append(f"{name} does not start with {prefix}: it should be {SETTINGS_BY_NAME[name].looks_like}")


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost: the only hosts a token may reach over plain http."""
    name = (host or "").strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, as a dual-stack socket reports it
    return bool((mapped or address).is_loopback)


def _check_token_urls(values: dict[str, object], problems: list[str]) -> None:
    for attr, name in TOKEN_URLS:
        value = values.get(attr)
        if not isinstance(value, str):
            continue
        parts = urlsplit(value)
        if parts.scheme.lower() != "https" and not is_loopback_host(parts.hostname):
            default = SETTINGS_BY_NAME[name].default
            problems.append(f"{name} uses http:// on a host other than this machine, so tokens would travel "
                            f"unencrypted: it should be an https:// URL such as {default} "
                            "(http:// is accepted only on 127.0.0.1, ::1 or localhost)")


def _missing(needs: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    problems = []
    for need in needs:
        names = need.split("|")
        if not any(environ.get(n, "").strip() for n in names):
            wanted = " or ".join(names)
            looks = "; ".join(f"{n}: {SETTINGS_BY_NAME[n].looks_like}" for n in names)
            problems.append(f"{wanted} is missing ({looks})")
    return problems


def load_settings(environ: Mapping[str, str], needs: Iterable[str] = ()) -> Settings:
    """Parse the environment; raise SettingsError listing every problem at once."""
    values: dict[str, object] = {}
    problems = _missing(needs, environ)
    for name, (attr, parse) in _PARSERS.items():
        raw = environ.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[attr] = parse(raw)
        except ValueError:
            problems.append(_describe_bad(name))
    _check_token_prefix(values, problems)
    _check_token_urls(values, problems)
    low, high = values.get("poll_min_seconds", 2.0), values.get("poll_max_seconds", 60.0)
    if isinstance(low, float) and isinstance(high, float) and high < low:
        problems.append("POLL_MAX_SECONDS is smaller than POLL_MIN_SECONDS: it should be at least as large")
    quota, reserve = values.get("cc_daily_quota", 10_000), values.get("quota_reserve", 500)
    if isinstance(quota, int) and isinstance(reserve, int) and reserve >= quota:
        problems.append("QUOTA_RESERVE is not smaller than CC_DAILY_QUOTA: it should leave room for new requests")
    if problems:
        raise SettingsError(problems)
    return Settings(**values)  # type: ignore[arg-type]
