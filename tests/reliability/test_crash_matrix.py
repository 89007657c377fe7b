"""`deletetags-bot run` is killed with SIGKILL at each point of a request's life, then started again.

After every trial: the request completed, every approved tag is gone, no tag outside the approved
request was touched, no batch made a second activity except through reconciliation (audit event
`batch.reconciling`), and the thread carries exactly one summary and at most one submission notice.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.sandbox.slack import Message, SlackDriver
from bot.sandbox.world import OPS_CHANNEL, PEOPLE, SIGNING_SECRET, start_outside_world
from tests.e2e.botproc import BotSubprocess

ENV = {"POLL_MIN_SECONDS": "0.2", "POLL_MAX_SECONDS": "0.5", "RECONCILE_DELAY_SECONDS": "1", "LOG_LEVEL": "INFO"}


class Rig:
    """The simulator and the emulator in this process; the bot as a real child process."""

    def __init__(self, directory: Path) -> None:
        self.cc, self.slack, self.env = start_outside_world(directory, activity_seconds=0.5, env=ENV)
        self.db = Path(self.env["DELETETAGS_DB"])
        self.bot = BotSubprocess(self.env, directory / "bot.log").start()
        self.driver = SlackDriver(self.slack, f"{self.bot.url}/slack/events", SIGNING_SECRET)

    def query(self, sql: str, *args: object) -> list[tuple]:
        # sqlite3's own `with` commits but does not close: a connection left open holds its file
        # until the garbage collector gets to it, and the crash matrix opens hundreds.
        with closing(sqlite3.connect(self.db, timeout=10)) as conn:
            return conn.execute(sql, args).fetchall()

    def wait(self, sql: str, what: str, timeout: float = 20.0, *args: object) -> list[tuple]:
        return self.driver.wait_for(lambda: self.query(sql, *args), timeout=timeout, what=what)

    def restart(self) -> None:
        self.bot.kill()
        self.bot = BotSubprocess(self.env, self.bot.log_path).start()
        self.driver = SlackDriver(self.slack, f"{self.bot.url}/slack/events", SIGNING_SECRET)

    def stop(self) -> None:
        self.bot.kill()
        self.slack.stop()
        self.cc.stop()

    def cards(self) -> list[Message]:
        return [m for m in self.slack.messages(OPS_CHANNEL) if "Deletion request #" in m.text]

    def to_card(self, tag_ids: list[str], user: str = PEOPLE.requester) -> tuple[int, Message]:
        known = {m.ts for m in self.cards()}
        seen = len(self.slack.ephemerals)
        self.driver.slash_command(user, OPS_CHANNEL, " ".join(tag_ids) + " reason: crash matrix")
        preview = self.driver.wait_for(lambda: next((e for e in self.slack.ephemerals[seen:]
                                                     if "Request approval" in str(e.blocks)), None), what="preview")
        self.driver.click(user, preview, "Request approval")
        card = self.driver.wait_for(lambda: next((m for m in self.cards() if m.ts not in known), None), what="card")
        return int(card.text.split("Deletion request #", 1)[1].split(" ", 1)[0]), card


@dataclass
class Trial:
    rig: Rig
    rng: random.Random
    approved: list[str]
    bystanders: list[str]
    waiting: int
    request_id: int
    card: Message

    def batch_is(self, states: str, what: str, timeout: float = 20.0) -> None:
        self.rig.wait(f"SELECT 1 FROM batches WHERE request_id = ? AND state IN ({states})", what, timeout,
                      self.request_id)

    def approve(self) -> None:
        response = self.rig.driver.click(PEOPLE.approver, self.card, "Approve")
        assert response.status == 200 and response.elapsed < 3.0


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    started = Rig(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def prepare(rig: Rig, seed: int, size: int) -> Trial:
    rng = random.Random(seed)
    approved = [rig.cc.add_tag(f"Crash {seed} tag {i}", 1) for i in range(size)]
    bystanders = [rig.cc.add_tag(f"Keep {seed} tag {i}", 5) for i in range(3)]
    waiting, _ = rig.to_card(bystanders[:1], user=PEOPLE.outsider)
    request_id, card = rig.to_card(approved)
    return Trial(rig, rng, approved, bystanders, waiting, request_id, card)


# --- the kill points ------------------------------------------------------------------------------


def after_the_click(trial: Trial) -> None:
    trial.approve()
    time.sleep(trial.rng.uniform(0, 0.3))  # a random kill moment, not a wait for anything
    trial.rig.restart()
    untouched = trial.rig.query("SELECT state FROM requests WHERE id = ? AND NOT EXISTS "
                                "(SELECT 1 FROM approvals WHERE request_id = ?)", trial.request_id, trial.request_id)
    if untouched == [("awaiting_approval",)]:
        # Killed between the ack and the decision: the approver saw no answer and clicks again.
        trial.approve()


def during_the_post(trial: Trial) -> None:
    trial.rig.cc.faults.latency_seconds = 1.0
    trial.approve()
    trial.batch_is("'submitting'", "a submission in flight")
    trial.rig.bot.kill()
    trial.rig.cc.faults.latency_seconds = 0
    trial.rig.restart()


def before_the_activity_id_is_stored(trial: Trial) -> None:
    # The create is queued but answered 503, so the bot holds no activity id until it reconciles.
    trial.rig.cc.faults.fail_after_commit = 1
    trial.rig.cc.next_activity_seconds = [trial.rng.choice([0.1, 2.5])]
    trial.approve()
    trial.rig.wait("SELECT 1 FROM events WHERE kind = 'batch.outcome_unknown' AND request_id = ?",
                   "the unknown outcome", 20, trial.request_id)
    trial.rig.restart()


def while_polling(trial: Trial) -> None:
    trial.rig.cc.next_activity_seconds = [3.0, 3.0]
    trial.approve()
    trial.batch_is("'initialized', 'processing'", "a polled activity")
    time.sleep(trial.rng.uniform(0, 1.0))  # a random kill moment, not a wait for anything
    trial.rig.restart()


def while_the_summary_is_posted(trial: Trial) -> None:
    # The emulator has no latency knob: three 429s keep the summary's post in Retry-After sleeps.
    trial.rig.cc.next_activity_seconds = [1.5]
    trial.approve()
    trial.rig.wait("SELECT 1 FROM notices WHERE request_id = ? AND key = 'submitted' AND state = 'posted'",
                   "the submission notice", 20, trial.request_id)
    trial.rig.slack.fail_next("chat.postMessage", 429, count=3)
    trial.rig.wait("SELECT 1 FROM notices WHERE request_id = ? AND key = 'summary' AND state = 'claimed'",
                   "the summary in flight", 20, trial.request_id)
    trial.rig.restart()


POINTS: dict[str, Callable[[Trial], None]] = {
    "after the approval click": after_the_click,
    "during the submission POST": during_the_post,
    "after the POST, before the activity id is stored": before_the_activity_id_is_stored,
    "while polling": while_polling,
    "while the summary is posted": while_the_summary_is_posted,
}


def assert_recovered(trial: Trial) -> None:
    rig = trial.rig
    rig.wait("SELECT 1 FROM requests WHERE id = ? AND state = 'completed'", "the request to complete", 40,
             trial.request_id)
    rig.wait("SELECT 1 FROM notices WHERE request_id = ? AND key = 'summary' AND state = 'posted'", "the summary",
             20, trial.request_id)
    assert not [t for t in trial.approved if rig.cc.tag_exists(t)], "an approved tag survived"
    assert all(rig.cc.tag_exists(t) for t in trial.bystanders), "a tag nobody approved was deleted"
    assert rig.query("SELECT state FROM requests WHERE id = ?", trial.waiting) == [("awaiting_approval",)]
    batches = rig.query("SELECT COUNT(*) FROM batches WHERE request_id = ?", trial.request_id)[0][0]
    made = [a for a in rig.cc.activities() if set(a["tag_ids"]) & set(trial.approved)]
    reconciled = rig.query("SELECT COUNT(*) FROM events WHERE request_id = ? AND kind = 'batch.reconciling'",
                           trial.request_id)[0][0]
    assert batches <= len(made) <= batches + reconciled, (len(made), batches, reconciled)
    assert not [a for a in rig.cc.activities() if set(a["tag_ids"]) & set(trial.bystanders)]
    thread = [m.text for m in rig.slack.thread(OPS_CHANNEL, trial.card.ts)]
    assert len([t for t in thread if "is finished:" in t]) == 1, thread
    assert len([t for t in thread if t.startswith(":rocket: Submitted")]) <= 1, thread


MULTI_BATCH_POINTS = ("after the approval click", "during the submission POST", "while polling")


def run_trial(rig: Rig, point: str, seed: int) -> None:
    # Every other trial at the points where batches interleave has two batches (520 tags).
    size = 520 if point in MULTI_BATCH_POINTS and seed % 2 else 3
    trial = prepare(rig, seed, size)
    POINTS[point](trial)
    assert_recovered(trial)


DEFAULT_TRIALS = [("after the POST, before the activity id is stored", 1), ("while the summary is posted", 2),
                  ("after the approval click", 3)]
ALL_TRIALS = [(point, seed) for point in POINTS for seed in range(10, 16)]


@pytest.mark.parametrize("point, seed", DEFAULT_TRIALS)
def test_a_kill_at_each_point_loses_and_duplicates_nothing(rig: Rig, point: str, seed: int) -> None:
    run_trial(rig, point, seed)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("point, seed", ALL_TRIALS)
def test_thirty_kills_lose_and_duplicate_nothing(rig: Rig, point: str, seed: int) -> None:
    run_trial(rig, point, seed)
