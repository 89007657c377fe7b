"""Drives requests through the bot as people would: signed commands and clicks, many at a time.

The Slack emulator's list properties deep-copy everything they hold, so nothing here polls them in
a tight loop: waiting uses the bot's database (read-only) or a slow poll of one snapshot.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.slack import DriverResponse, Ephemeral, Message, SlackDriver, SlackEmulator
from bot.sandbox.slack_emulator import iter_buttons
from bot.sandbox.world import OPS_CHANNEL, PEOPLE, SIGNING_SECRET, start_outside_world

from benchmarks.harness import REPO_ROOT, ServerProcess, bot_process, wait_until
from benchmarks.loadgen import Answer

T = TypeVar("T")
R = TypeVar("R")

CONFIRM = "request_approval"
APPROVE = "approve_request"
TERMINAL = ("completed", "completed_with_errors", "failed")


@dataclass
class Scene:
    """The simulator and the emulator in this process, `deletetags-bot run` as a child process."""

    cc: ConstantContactSimulator
    slack: SlackEmulator
    env: dict[str, str]
    bot: ServerProcess
    driver: SlackDriver

    @property
    def db_path(self) -> Path:
        return Path(self.env["DELETETAGS_DB"])

    def close(self) -> None:
        """Stop the emulator and the simulator first (the bot cannot leave them writing to a dead socket),
        then SIGKILL the bot: a benchmark that is done with it need not wait for its shutdown."""
        for stop in (self.slack.stop, self.cc.stop, self.bot.kill):
            try:
                stop()
            except Exception:  # noqa: BLE001 - tear everything down regardless
                pass


def start_scene(directory: Path, *, tags: int = 0, activity_seconds: float = 1.0,
                env: Mapping[str, str] | None = None, before_bot: Callable[[ConstantContactSimulator], None] | None = None,
                ) -> Scene:
    cc, slack, environment = start_outside_world(directory, tags=tags, activity_seconds=activity_seconds, env=env)
    if before_bot is not None:
        before_bot(cc)
    bot = bot_process(environment, directory / "bot.log")
    try:
        bot.start()
    except Exception:
        slack.stop()
        cc.stop()
        raise
    driver = SlackDriver(slack, f"{bot.url}/slack/events", SIGNING_SECRET, http_timeout=30.0)
    return Scene(cc, slack, environment, bot, driver)


def in_parallel(work: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-client") as pool:
        return list(pool.map(work, items))


def request_text(tag_ids: Sequence[str], reason: str = "benchmark clean-up") -> str:
    return " ".join(tag_ids) + f" reason: {reason}"


def send_commands(driver: SlackDriver, texts: Sequence[str], workers: int,
                  user: str = PEOPLE.requester, channel: str = OPS_CHANNEL) -> list[DriverResponse]:
    return in_parallel(lambda text: driver.slash_command(user, channel, text), texts, workers)


# --- requests built here, sent from a lean client process ------------------------------------------


@dataclass(frozen=True)
class Captured:
    body: bytes
    content_type: str


class CapturingDriver(SlackDriver):
    """Builds each request exactly as the driver would send it, and keeps it instead of sending it."""

    def __init__(self, emulator: SlackEmulator) -> None:
        super().__init__(emulator, "http://127.0.0.1:9/not-sent", SIGNING_SECRET)
        self.captured: list[Captured] = []
        self._captured_lock = threading.Lock()

    def send_raw(self, body: bytes, headers: dict[str, str]) -> DriverResponse:
        with self._captured_lock:
            self.captured.append(Captured(body, headers["Content-Type"]))
        return DriverResponse(200, "", 0.0)

    def take(self) -> list[Captured]:
        with self._captured_lock:
            taken, self.captured = self.captured, []
        return taken


def replay(url: str, requests: Sequence[Captured], workers: int, work_dir: Path, label: str) -> list[Answer]:
    """Send `requests` (re-signed at send time) from benchmarks/loadgen.py, `workers` at a time."""
    spec_path, out_path = work_dir / f"{label}.requests.json", work_dir / f"{label}.answers.json"
    spec = {"url": url, "workers": workers, "requests": [
        {"body_b64": base64.b64encode(r.body).decode(), "content_type": r.content_type} for r in requests]}
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-m", "benchmarks.loadgen", str(spec_path), str(out_path)], env=env,
                   cwd=REPO_ROOT, check=True, timeout=900)
    return [Answer(**a) for a in json.loads(out_path.read_text())]


def button_value(blocks: list[dict], action_id: str) -> int | None:
    for _, button in iter_buttons(blocks):
        if button.get("action_id") == action_id and str(button.get("value", "")).isdigit():
            return int(button["value"])
    return None


def previews(slack: SlackEmulator) -> dict[int, Ephemeral]:
    """Request id -> the preview (with its Request approval button) currently shown."""
    found: dict[int, Ephemeral] = {}
    for shown in slack.ephemerals:
        request_id = button_value(shown.blocks, CONFIRM)
        if request_id is not None and not shown.deleted:
            found[request_id] = shown
    return found


def cards(slack: SlackEmulator, channel: str = OPS_CHANNEL) -> dict[int, Message]:
    """Request id -> its card, while it still shows the Approve button."""
    found: dict[int, Message] = {}
    for message in slack.messages(channel):
        request_id = button_value(message.blocks, APPROVE)
        if request_id is not None:
            found[request_id] = message
    return found


def wait_for_count(snapshot: Callable[[], dict[int, T]], count: int, what: str, timeout: float) -> dict[int, T]:
    return wait_until(lambda: (found if len(found := snapshot()) >= count else None), timeout=timeout, what=what,
                      interval=0.5)


def click_all(driver: SlackDriver, user: str, targets: Sequence[Message | Ephemeral], label: str,
              workers: int) -> list[DriverResponse]:
    return in_parallel(lambda target: driver.click(user, target, label), targets, workers)


# --- the bot's database, read-only ------------------------------------------------------------------


def query(db_path: Path, sql: str, *args: object) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(sql, args).fetchall()


def count_in_states(db_path: Path, states: Sequence[str], ids: Sequence[int] | None = None) -> int:
    marks = ",".join("?" * len(states))
    rows = query(db_path, f"SELECT id FROM requests WHERE state IN ({marks})", *states)
    if ids is None:
        return len(rows)
    wanted = set(ids)
    return sum(1 for (request_id,) in rows if request_id in wanted)


def summaries_posted(db_path: Path) -> int:
    return query(db_path, "SELECT count(*) FROM notices WHERE key = 'summary' AND state = 'posted'")[0][0]
