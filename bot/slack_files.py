"""Fetching a file someone shared with the bot, with the checks Slack makes necessary.

Slack answers a download without the right bearer token (or without `files:read`) with its HTML
sign-in page and status 200, so the content type is checked before anything is parsed.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

ACCEPTED_TYPES = ("csv", "txt", "tsv", "text")
UNREADABLE_MARKERS = {"tombstone", "hidden_by_limit"}


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


def describe(file: dict[str, Any], client: WebClient) -> SharedFile:
    """The file's details; stubs (Slack Connect, hidden or deleted files) are looked up or refused."""
    if file.get("file_access") == "check_file_info" or not file.get("url_private_download"):
        try:
            file = client.files_info(file=file["id"])["file"]
        except SlackApiError as error:
            raise FileProblem(f"I could not read that file ({error.response.get('error')}). Try uploading it again.") from error
    if file.get("mode") in UNREADABLE_MARKERS or file.get("file_access") == "access_denied":
        raise FileProblem("Slack does not let me read that file (it is hidden or was deleted). Upload it again.")
    name = str(file.get("name") or file.get("title") or "file")
    filetype = str(file.get("filetype") or name.rsplit(".", 1)[-1]).lower()
    return SharedFile(str(file["id"]), name, int(file.get("size") or 0),
                      str(file.get("url_private_download") or file.get("url_private")), filetype)


def check_before_download(shared: SharedFile, max_bytes: int) -> None:
    extension = shared.name.rsplit(".", 1)[-1].lower() if "." in shared.name else ""
    # Slack calls any file without an extension "binary"; its content is checked when parsed.
    if extension and shared.filetype not in ACCEPTED_TYPES and extension not in ACCEPTED_TYPES:
        raise FileProblem(
            f"`{shared.name}` is {'a .' + shared.filetype + ' file' if shared.filetype else 'a file of unknown type'}; I read only CSV or TXT files "
            "(one tag id or name per line, or a CSV with a `tag_id` or `name` column)."
        )
    if shared.size > max_bytes:
        raise FileProblem(
            f"`{shared.name}` is {_mb(shared.size)}; the limit is {_mb(max_bytes)}. Split it into smaller files."
        )


def download(shared: SharedFile, bot_token: str, max_bytes: int, timeout: float = 20.0) -> bytes:
    request = urllib.request.Request(shared.url, headers={"Authorization": f"Bearer {bot_token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - Slack's file URL
            content_type = response.headers.get("Content-Type", "")
            data = response.read(max_bytes + 1)
    except (urllib.error.URLError, TimeoutError) as error:
        raise FileProblem(f"I could not download `{shared.name}` from Slack ({type(error).__name__}). Try again in a minute.") from error
    if "text/html" in content_type.lower():
        raise FileProblem(
            f"Slack sent me a sign-in page instead of `{shared.name}`: I am not allowed to read it. "
            "The bot needs the `files:read` scope; ask the bot's operators to run `deletetags-bot check`."
        )
    if len(data) > max_bytes:
        raise FileProblem(f"`{shared.name}` is larger than {_mb(max_bytes)}. Split it into smaller files.")
    return data


def fetch(file: dict[str, Any], client: WebClient, bot_token: str, max_bytes: int) -> tuple[str, bytes]:
    shared = describe(file, client)
    check_before_download(shared, max_bytes)
    return shared.name, download(shared, bot_token, max_bytes)
