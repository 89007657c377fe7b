"""Files shared with the bot: the bot token goes only to Slack's file host, and junk files cost little.

End to end through the Slack emulator where Slack's side matters: a listener on 127.0.0.1 (another
port than the emulator's) stands for a host outside Slack and records every request it receives.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.core import resolver, tags

from bot import intake, slack_files
from bot.listeners import events
from bot.sandbox.slack import Ephemeral
from bot.sandbox.world import World
from tests.reliability.support import add_tags, next_ephemeral

INTERNAL_LINE = "INTERNAL ONLY db-backup-host"
REMOTE_REFUSAL = ("`tags.csv` is a link to a file stored outside Slack; I only read files uploaded to Slack. "
                  "Download it as CSV and upload it here.")
REDIRECT_REFUSAL = ("Slack redirected me elsewhere instead of sending `tags.csv`, so I did not follow. Upload the file "
                    "to Slack again; if this keeps happening, ask the bot's operators to run `deletetags-bot check`.")
FOREIGN_URL_REFUSAL = ("Slack gave me a link for `tags.csv` that is not on Slack's own file server, so I did not open "
                       "it. Upload the file to Slack again (as a CSV or TXT file).")
HOPELESS_START = "I stopped reading the file after 1,000 lines, none of which was a tag id or name. The first of them:"


class ForeignHost:
    """A host outside Slack: answers every GET with a plausible CSV and records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                body = f"{INTERNAL_LINE}\nsecond internal line\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def foreign() -> Iterator[ForeignHost]:
    host = ForeignHost()
    try:
        yield host
    finally:
        host.stop()


def share(world: World, files: list[dict[str, Any]], text: str = "reason: cleanup") -> int:
    """Share files in the requester's DM with the bot; the number of ephemerals before, to look from."""
    seen = len(world.slack.ephemerals)
    response = world.driver.share_files(world.people.requester, world.slack.bot_user_id, files, text=text)
    assert response.status == 200 and response.elapsed < 3.0
    return seen


def answer(world: World, seen: int) -> Ephemeral:
    return next_ephemeral(world, world.people.requester, seen)


def assert_nothing_leaked(world: World, foreign: ForeignHost) -> None:
    assert foreign.requests == []
    shown = " ".join(e.text + str(e.blocks) for e in world.slack.ephemerals)
    assert INTERNAL_LINE not in shown and world.slack.bot_token not in shown


# --- the token goes only to Slack's file host ----------------------------------------------------------


def test_a_remote_file_is_refused_and_its_link_never_opened(world: World, foreign: ForeignHost) -> None:
    remote = world.slack.add_remote_file(world.people.requester, "tags.csv", foreign.url("/tags.csv"))
    seen = share(world, [remote])
    assert answer(world, seen).text == REMOTE_REFUSAL
    assert_nothing_leaked(world, foreign)
    assert world.store.requests() == []


def test_a_redirect_from_the_file_host_is_not_followed(world: World, foreign: ForeignHost) -> None:
    [tag_id] = add_tags(world, 1)
    hosted = world.slack.add_file(world.people.requester, "tags.csv", f"{tag_id}\n".encode())
    world.slack.redirect_file_downloads(hosted["id"], foreign.url("/elsewhere.csv"))
    seen = share(world, [hosted])
    assert answer(world, seen).text == REDIRECT_REFUSAL
    assert_nothing_leaked(world, foreign)
    assert [(d.file_id, d.authorized) for d in world.slack.downloads] == [(hosted["id"], True)]


def test_a_file_url_on_another_host_is_never_requested(world: World, foreign: ForeignHost) -> None:
    hosted = world.slack.add_file(world.people.requester, "tags.csv", b"whatever")
    pointed = world.slack.point_file_at(hosted["id"], foreign.url("/files-pri/T1-F1/download/tags.csv"))
    seen = share(world, [pointed])
    assert answer(world, seen).text == FOREIGN_URL_REFUSAL
    assert_nothing_leaked(world, foreign)
    assert world.slack.downloads == []


PRODUCTION_API = "https://slack.com/api/"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL urllib is asked to open; none is (these tests must never leave 127.0.0.1)."""
    urls: list[str] = []

    def refuse(self: urllib.request.OpenerDirector, request: Any, *args: Any, **kwargs: Any) -> None:
        urls.append(request.full_url if isinstance(request, urllib.request.Request) else str(request))
        raise AssertionError(f"the bot tried to open {urls[-1]}")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse)
    return urls


@pytest.mark.parametrize("url", [
    "http://files.slack.com/files-pri/T1-F1/download/tags.csv",
    "https://files.slack.com.evil.example/files-pri/T1-F1/download/tags.csv",
    "https://files.slack.com@evil.example/files-pri/T1-F1/download/tags.csv",
    "https://files.slack.com:8443/files-pri/T1-F1/download/tags.csv",
    "https://a.slack-edge.com/files-pri/T1-F1/download/tags.csv",
    "https://slack.com/files-pri/T1-F1/download/tags.csv",
    "http://127.0.0.1:9/files-pri/T1-F1/download/tags.csv",
    "file:///etc/passwd",
])
def test_in_production_only_https_files_slack_com_gets_the_token(url: str, opened: list[str]) -> None:
    file = {"id": "F1", "name": "tags.csv", "filetype": "csv", "size": 10, "mode": "hosted",
            "url_private": url, "url_private_download": url}
    with pytest.raises(slack_files.FileProblem, match="not on Slack's own file server") as refused:
        slack_files.fetch(file, WebClient(base_url=PRODUCTION_API), "xoxb-secret", 1000)
    assert "xoxb-secret" not in str(refused.value)
    assert opened == []


def test_production_and_emulator_file_origins() -> None:
    assert slack_files.file_origins(PRODUCTION_API) == {("https", "files.slack.com", 443)}
    assert slack_files.file_origins("http://127.0.0.1:5000/api/") == {("http", "127.0.0.1", 5000)}
    assert slack_files.origin_of("https://files.slack.com/files-pri/T1-F1/x.csv") == ("https", "files.slack.com", 443)


def test_a_loopback_file_is_refused_when_the_api_is_not_local(foreign: ForeignHost) -> None:
    url = foreign.url("/files-pri/T1-F1/download/tags.csv")
    file = {"id": "F1", "name": "tags.csv", "filetype": "csv", "size": 10, "url_private_download": url}
    with pytest.raises(slack_files.FileProblem, match="not on Slack's own file server"):
        slack_files.fetch(file, WebClient(base_url=PRODUCTION_API), "xoxb-secret", 1000)
    assert foreign.requests == []


# --- junk costs little ---------------------------------------------------------------------------------


def test_a_hopeless_file_is_given_up_early(world: World) -> None:
    hosted = world.slack.add_file(world.people.requester, "notes.txt", b"just some words\n" * 50_000)
    text = answer(world, share(world, [hosted])).text
    assert text.startswith(HOPELESS_START)
    assert "• line 1: `just some words`" in text and "…and 996 more" in text
    assert world.store.requests() == []


def test_junk_is_counted_in_full_but_only_a_few_examples_are_kept() -> None:
    data = ("tag_id\n00000000-0000-4000-8000-000000000001\n" + "not-an-id-0000\n" * 5_000).encode()
    selection = tags.parse_file(data, filename="tags.csv")
    assert selection.junk_count == 5_000
    assert len(selection.junk) == tags.JUNK_EXAMPLES
    assert selection.junk_summary().endswith("…and 4,995 more")


def test_combining_files_keeps_the_true_junk_count() -> None:
    one = tags.parse_file(b"00000000-0000-4000-8000-000000000001\n" + b"nope\n" * 30, filename="a.txt")
    two = tags.parse_file(b"00000000-0000-4000-8000-000000000002\n" + b"nope\n" * 40, filename="b.txt")
    combined = tags.combine(one, two)
    assert combined.junk_count == 70 and len(combined.junk) == tags.JUNK_EXAMPLES
    assert combined.junk_summary().endswith("…and 65 more")


def test_a_file_whose_junk_outnumbers_twice_the_entry_limit_is_given_up() -> None:
    data = b"00000000-0000-4000-8000-000000000001\n" + b"nope\n" * 2_000
    with pytest.raises(tags.InputError) as gave_up:
        tags.parse_file(data, filename="a.txt", max_entries=100)
    assert gave_up.value.message.startswith("I stopped reading the file at line 1,002: more than 1,000 entries in it "
                                            "are not tag ids or names")


def test_what_a_request_records_and_shows_uses_the_true_junk_count() -> None:
    data = b"00000000-0000-4000-8000-000000000001\n" + b"nope\n" * 500
    selection = tags.parse_file(data, filename="tags.txt")
    assert len(selection.junk) == tags.JUNK_EXAMPLES
    resolution = resolver.resolve(selection, [])
    assert intake._unresolved(selection, resolution)["junk"] == 500
    shown = intake.preview_of(1, selection, resolution, None).junk_summary
    assert shown is not None and shown.endswith("…and 495 more")


def test_files_beyond_the_per_message_limit_are_skipped_and_named(world: World) -> None:
    tag_ids = add_tags(world, 5)
    files = [world.slack.add_file(world.people.requester, f"{letter}.csv", f"{tag_id}\n".encode())
             for letter, tag_id in zip("abcde", tag_ids)]
    seen = share(world, files)
    note = next_ephemeral(world, world.people.requester, seen, lambda e: e.text.startswith(":warning:"))
    assert note.text == (":warning: I read at most 3 files per message, so I skipped `d.csv` and `e.csv`. "
                         "Upload them in another message.")
    preview = next_ephemeral(world, world.people.requester, seen, lambda e: "Request approval" in str(e.blocks))
    assert all(t in str(preview.blocks) for t in tag_ids[:3]) and not any(t in str(preview.blocks) for t in tag_ids[3:])
    assert sorted(d.file_id for d in world.slack.downloads) == sorted(f["id"] for f in files[:3])


@pytest.mark.parametrize("world_env", [{"MAX_FILE_MB": "0.1"}])
def test_files_of_one_message_are_capped_in_bytes_together(world: World) -> None:
    tag_ids = add_tags(world, 2)
    padding = b"# padding\n" * 6_000
    files = [world.slack.add_file(world.people.requester, name, f"{tag_id}\n".encode() + padding)
             for name, tag_id in zip(("a.csv", "b.csv"), tag_ids)]
    seen = share(world, files)
    note = next_ephemeral(world, world.people.requester, seen, lambda e: e.text.startswith(":warning:"))
    assert note.text == (":warning: The files of one message may add up to 0.1 MB, so I skipped `b.csv`. "
                         "Upload it in another message.")
    preview = next_ephemeral(world, world.people.requester, seen, lambda e: "Request approval" in str(e.blocks))
    assert tag_ids[0] in str(preview.blocks) and tag_ids[1] not in str(preview.blocks)
    assert [d.file_id for d in world.slack.downloads] == [files[0]["id"]]


def test_the_upload_plan_reads_the_first_file_whatever_its_size() -> None:
    files = [{"id": "F1", "name": "big.csv", "size": 9_000_000}, {"id": "F2", "name": "small.csv", "size": 10}]
    plan = events.plan_upload(files, max_files=3, max_total_bytes=5_000_000)
    assert [f["id"] for f in plan.to_read] == ["F1"]
    assert plan.skipped_note is not None and "`small.csv`" in plan.skipped_note
