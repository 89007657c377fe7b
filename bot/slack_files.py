"""Fetching a file someone shared with the bot, with the checks Slack makes necessary.

Slack answers a download without the right bearer token (or without `files:read`) with its HTML
sign-in page and status 200, so the content type is checked before anything is parsed.

The bearer token goes only to Slack's own file host, over HTTPS (see `file_origins`); a file object
naming any other URL, a remote file (a link to a file stored outside Slack) and a redirect are all
refused before or instead of sending it anywhere else.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import is_loopback_host
from bot.core.mrkdwn import outside_text
from bot.core.tags import quote_for_slack

log = logging.getLogger(__name__)

ACCEPTED_TYPES = ("csv", "txt", "tsv", "text")
UNREADABLE_MARKERS = {"tombstone", "hidden_by_limit"}
# Every hosted file's `url_private` and `url_private_download` is on files.slack.com (Slack's docs and
# every payload sample). *.slack-edge.com is Slack's CDN for public assets (avatars, emoji, app icons):
# it never serves private files and needs no token, so it is not trusted with one.
SLACK_FILE_ORIGINS = frozenset({("https", "files.slack.com", 443)})

Origin = tuple[str, str, int]


class FileProblem(Exception):
    """A file the bot cannot use; the message is written for the person who shared it."""


@dataclass(frozen=True)
class SharedFile:
    file_id: str
    name: str
    size: int
    url: str
    filetype: str


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of a URL without user info, else None."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    if not parts.hostname or "@" in parts.netloc or "\\" in url:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def file_origins(slack_api_url: str) -> frozenset[Origin]:
    """Where a file may be downloaded with the token: Slack's file host, or the local emulator's origin."""
    api = origin_of(slack_api_url)
    if api is not None and is_loopback_host(api[1]):
        # The Slack emulator (tests, sandbox) serves its files itself, over http on 127.0.0.1.
        return frozenset({api})
    return SLACK_FILE_ORIGINS


def is_remote(file: dict[str, Any]) -> bool:
    return file.get("mode") == "external" or bool(file.get("is_external"))


def _refuse_remote(file: dict[str, Any]) -> None:
    if is_remote(file):
        name = str(file.get("name") or file.get("title") or "file")
        raise FileProblem(
            f"{quote_for_slack(name)} is a link to a file stored outside Slack; I only read files uploaded to Slack. "
            "Download it as CSV and upload it here."
        )


def describe(file: dict[str, Any], client: WebClient) -> SharedFile:
    """The file's details; stubs (Slack Connect, hidden or deleted files) are looked up or refused."""
    _refuse_remote(file)
    if file.get("file_access") == "check_file_info" or not file.get("url_private_download"):
        try:
            file = client.files_info(file=file["id"])["file"]
        except SlackApiError as error:
            raise FileProblem(f"I could not read that file ({outside_text(str(error.response.get('error')))}). "
                              "Try uploading it again.") from error
        _refuse_remote(file)
    if file.get("mode") in UNREADABLE_MARKERS or file.get("file_access") == "access_denied":
        raise FileProblem("Slack does not let me read that file (it is hidden or was deleted). Upload it again.")
    name = str(file.get("name") or file.get("title") or "file")
    filetype = str(file.get("filetype") or name.rsplit(".", 1)[-1]).lower()
    return SharedFile(str(file["id"]), name, int(file.get("size") or 0),
                      str(file.get("url_private_download") or file.get("url_private")), filetype)


def check_before_download(shared: SharedFile, max_bytes: int) -> None:
    extension = shared.name.rsplit(".", 1)[-1].lower() if "." in shared.name else ""
    shown = quote_for_slack(shared.name)
    # Slack calls any file without an extension "binary"; its content is checked when parsed.
    if extension and shared.filetype not in ACCEPTED_TYPES and extension not in ACCEPTED_TYPES:
        kind = f"a .{shared.filetype} file" if shared.filetype else "a file of unknown type"
        raise FileProblem(
            f"{shown} is {kind}; I read only CSV or TXT files "
            "(one tag id or name per line, or a CSV with a `tag_id` or `name` column)."
        )
    if shared.size > max_bytes:
        raise FileProblem(f"{shown} is {_mb(shared.size)}; the limit is {_mb(max_bytes)}. Split it into smaller files.")


def check_origin(shared: SharedFile, allowed: frozenset[Origin]) -> None:
    origin = origin_of(shared.url)
    if origin not in allowed:
        log.warning("file URL refused: not on Slack's file host",
                    extra={"outcome": "refused", "event": f"file {shared.file_id} on {origin[1] if origin else '?'}"})
        raise FileProblem(
            f"Slack gave me a link for {quote_for_slack(shared.name)} that is not on Slack's own file server, "
            "so I did not open it. Upload the file to Slack again (as a CSV or TXT file)."
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would copy the Authorization header (or a file's bytes) to wherever a redirect points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# Every transfer of a file to or from Slack's file host goes through this: a 3xx is an HTTPError.
NO_REDIRECTS = urllib.request.build_opener(_NoRedirects)


def download(shared: SharedFile, bot_token: str, max_bytes: int, timeout: float = 20.0) -> bytes:
    shown = quote_for_slack(shared.name)
    request = urllib.request.Request(shared.url, headers={"Authorization": f"Bearer {bot_token}"})
    try:
        with NO_REDIRECTS.open(request, timeout=timeout) as response:  # noqa: S310 - origin checked by fetch
            content_type = response.headers.get("Content-Type", "")
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        error.close()
        raise _http_problem(shared, error.code) from None
    except OSError as error:  # URLError and TimeoutError are OSErrors
        problem = type(error).__name__
        raise FileProblem(f"I could not download {shown} from Slack ({problem}). Try again in a minute.") from None
    if "text/html" in content_type.lower():
        raise FileProblem(
            f"Slack sent me a sign-in page instead of {shown}: I am not allowed to read it. "
            "The bot needs the `files:read` scope; ask the bot's operators to run `deletetags-bot check`."
        )
    if len(data) > max_bytes:
        raise FileProblem(f"{shown} is larger than {_mb(max_bytes)}. Split it into smaller files.")
    return data


def _http_problem(shared: SharedFile, status: int) -> FileProblem:
    shown = quote_for_slack(shared.name)
    if 300 <= status < 400:
        return FileProblem(
            f"Slack redirected me elsewhere instead of sending {shown}, so I did not follow. Upload the file to "
            "Slack again; if this keeps happening, ask the bot's operators to run `deletetags-bot check`."
        )
    return FileProblem(f"I could not download {shown} from Slack (HTTP {status}). Try again in a minute.")


def fetch(file: dict[str, Any], client: WebClient, bot_token: str, max_bytes: int,
          slack_api_url: str | None = None) -> tuple[str, bytes]:
    """The file's name and bytes; `slack_api_url` (default: the client's base URL) sets where files may come from."""
    shared = describe(file, client)
    check_before_download(shared, max_bytes)
    check_origin(shared, file_origins(slack_api_url or client.base_url))
    return shared.name, download(shared, bot_token, max_bytes)
