"""The bot process is killed with SIGKILL at lifecycle points, restarted, and finishes the job."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bot.sandbox.slack import SlackDriver
from bot.sandbox.world import PEOPLE, SIGNING_SECRET, start_outside_world
from tests.e2e.botproc import BotSubprocess

ENV = {"POLL_MIN_SECONDS": "0.2", "POLL_MAX_SECONDS": "1", "RECONCILE_DELAY_SECONDS": "2", "LOG_LEVEL": "INFO"}


class Scene:
    def __init__(self, tmp_path: Path) -> None:
        self.cc, self.slack, self.env = start_outside_world(tmp_path, activity_seconds=0.5, env=ENV)
        self.db = Path(self.env["DELETETAGS_DB"])
        self.bot = BotSubprocess(self.env, tmp_path / "bot.log").start()
        self.driver = SlackDriver(self.slack, f"{self.bot.url}/slack/events", SIGNING_SECRET)

    def query(self, sql: str, *args: object) -> list[tuple]:
        with closing(sqlite3.connect(self.db, timeout=10)) as conn:
            return conn.execute(sql, args).fetchall()

    def restart(self) -> None:
        self.bot.kill()
        self.bot = BotSubprocess(self.env, self.bot.log_path).start()

    def stop(self) -> None:
        self.bot.kill()
        self.slack.stop()
        self.cc.stop()

    def card(self):  # noqa: ANN201
        return self.driver.wait_for(lambda: next((m for m in self.slack.messages("C0MKTOPS")
                                                  if "Deletion request #" in m.text), None), what="the card")

    def request_and_approve(self, tag_ids: list[str], before_approval=lambda: None) -> None:  # noqa: ANN001
        self.driver.slash_command(PEOPLE.requester, "C0MKTOPS", " ".join(tag_ids) + " reason: crash test")
        preview = self.driver.wait_for(lambda: next((e for e in self.slack.ephemerals
                                                     if "Request approval" in str(e.blocks)), None), what="preview")
        self.driver.click(PEOPLE.requester, preview, "Request approval")
        card = self.card()
        before_approval()
        self.driver.click(PEOPLE.approver, card, "Approve")

    def wait_state(self, sql: str, what: str, timeout: float = 20.0) -> None:
        self.driver.wait_for(lambda: self.query(sql), timeout=timeout, what=what)

    def assert_finished_once(self, tag_ids: list[str]) -> None:
        self.wait_state("SELECT 1 FROM requests WHERE state = 'completed'", "the request to complete", 40)
        self.wait_state("SELECT 1 FROM notices WHERE key = 'summary' AND state = 'posted'", "the summary")
        assert not any(self.cc.tag_exists(t) for t in tag_ids)
        card = self.card()
        summaries = [m for m in self.slack.thread("C0MKTOPS", card.ts) if "is finished" in m.text]
        assert len(summaries) == 1, [m.text for m in self.slack.thread("C0MKTOPS", card.ts)]
        submitted = [m for m in self.slack.thread("C0MKTOPS", card.ts) if "Submitted to Constant Contact" in m.text]
        assert len(submitted) <= 1


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    started = Scene(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def test_killed_while_the_submission_post_is_in_flight(scene: Scene) -> None:
    tags = [scene.cc.add_tag(f"Crash tag {i}", 1) for i in range(3)]
    scene.request_and_approve(tags, before_approval=lambda: setattr(scene.cc.faults, "latency_seconds", 1.5))
    scene.wait_state("SELECT 1 FROM batches WHERE state = 'submitting'", "the batch to be submitting")
    scene.bot.kill()
    scene.cc.faults.latency_seconds = 0
    scene.restart()
    scene.assert_finished_once(tags)
    activities = scene.cc.activities()
    # The POST landed while the process died; reconciliation found the tags gone and posted nothing again.
    assert len(activities) <= 2
    if len(activities) == 2:
        assert scene.query("SELECT 1 FROM events WHERE kind = 'batch.reconciling'")


def test_killed_while_polling(scene: Scene) -> None:
    tags = [scene.cc.add_tag(f"Slow tag {i}", 1) for i in range(2)]
    scene.cc.next_activity_seconds = [3.0]
    scene.request_and_approve(tags)
    scene.wait_state("SELECT 1 FROM batches WHERE state IN ('initialized', 'processing') AND activity_id IS NOT NULL",
                     "the batch to be polled")
    scene.restart()
    scene.assert_finished_once(tags)
    assert len(scene.cc.activities()) == 1


def test_killed_just_after_the_approval_click(scene: Scene) -> None:
    tags = [scene.cc.add_tag(f"Quick tag {i}", 1) for i in range(2)]
    scene.request_and_approve(tags)
    scene.wait_state("SELECT 1 FROM requests WHERE state IN ('approved', 'running', 'completed')", "the approval")
    scene.restart()
    scene.assert_finished_once(tags)
    assert len(scene.cc.activities()) == 1


def test_sigterm_shuts_down_cleanly(scene: Scene) -> None:
    assert scene.bot.terminate() == 0
    assert "shutting down" in scene.bot.log_path.read_text()
