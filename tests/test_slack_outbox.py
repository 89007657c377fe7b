"""The outbox on its own: order, Slack's pace, merged card edits, 429s and giving up.

`send` here is a plain function standing in for one Web API call (the outbox only calls it);
the whole path through the Slack emulator is covered by tests/reliability/test_slack_faults.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from bot.slack_outbox import SlackOutbox


def refusal(error: str, status: int = 200, retry_after: str | None = None) -> SlackApiError:
    headers = {"Retry-After": retry_after} if retry_after else {}
    response = SlackResponse(client=None, http_verb="POST", api_url="chat.postMessage", req_args={},
                             data={"ok": False, "error": error}, headers=headers, status_code=status)
    return SlackApiError(error, response)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def call(self, name: str, fail: list[Exception] | None = None) -> Callable[[], None]:
        def send() -> None:
            with self.lock:
                if fail:
                    raise fail.pop(0)
                self.sent.append((name, time.monotonic()))
        return send

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]

    def at(self, name: str) -> float:
        return next(at for sent, at in self.sent if sent == name)


SPEEDUP = 10  # Slack's pace, ten times faster: the same rules in a tenth of the time


@pytest.fixture
def outbox() -> SlackOutbox:
    box = SlackOutbox(retry_seconds=0.05, speedup=SPEEDUP)
    yield box
    box.stop(timeout=1)


def test_posts_to_one_channel_keep_their_order_and_slacks_pace(outbox: SlackOutbox) -> None:
    recorder = Recorder()
    for n in range(5):
        outbox.post("C1", recorder.call(f"c1-{n}"), "post")
    outbox.post("U9", recorder.call("dm"), "dm")
    assert outbox.drain(timeout=10)
    c1 = [n for n in recorder.names() if n.startswith("c1")]
    assert c1 == [f"c1-{n}" for n in range(5)]
    # Three at once (Slack tolerates a short burst), then the channel waits its turn;
    # a DM to another channel does not wait behind them.
    assert recorder.at("c1-3") - recorder.at("c1-0") >= 3.0 / SPEEDUP
    assert recorder.at("dm") < recorder.at("c1-3")


def test_an_urgent_post_overtakes_other_threads_but_not_its_own(outbox: SlackOutbox) -> None:
    recorder = Recorder()
    for n in range(6):
        outbox.post("C1", recorder.call(f"submitted-{n}"), "post", thread_ts=f"t{n}")
    outbox.post("C1", recorder.call("status-answer"), "post", thread_ts="t9", urgent=True)
    outbox.post("C1", recorder.call("summary-5"), "post", thread_ts="t5", urgent=True)
    assert outbox.drain(timeout=20)
    sent = recorder.names()
    assert sent.index("status-answer") < sent.index("submitted-3")
    # Thread t5's own earlier post still goes first, and is hurried along with its summary.
    assert sent.index("submitted-5") < sent.index("summary-5") < sent.index("submitted-4")


def test_a_faster_clock_paces_proportionally() -> None:
    outbox = SlackOutbox(speedup=20)
    recorder = Recorder()
    for n in range(8):
        outbox.post("C1", recorder.call(f"m{n}"), "post")
    assert outbox.drain(timeout=5)
    outbox.stop(timeout=1)
    assert recorder.names() == [f"m{n}" for n in range(8)]
    assert 2 * 3.3 / 20 <= recorder.at("m7") - recorder.at("m0") < 2.0


def test_a_429_holds_the_channel_for_retry_after_and_resends_in_order(outbox: SlackOutbox) -> None:
    recorder = Recorder()
    outbox.post("C1", recorder.call("first", fail=[refusal("ratelimited", 429, "1")]), "post")
    outbox.post("C1", recorder.call("second"), "post")
    assert outbox.drain(timeout=10)
    assert recorder.names() == ["first", "second"]


def test_edits_of_one_card_merge_and_are_spaced(outbox: SlackOutbox) -> None:
    outbox.card_edit_seconds = 0.5 * SPEEDUP
    renders: list[float] = []
    for _ in range(10):
        outbox.edit(("card", 1), lambda: renders.append(time.monotonic()), "edit")
    assert outbox.drain(timeout=5)
    time.sleep(0.05)
    for _ in range(10):
        outbox.edit(("card", 1), lambda: renders.append(time.monotonic()), "edit")
    assert outbox.drain(timeout=5)
    # An edit asked for while one is being sent goes out after it: at most two per round.
    assert 2 <= len(renders) <= 4
    assert all(later - earlier >= 0.5 for earlier, later in zip(renders, renders[1:]))


def test_edits_of_other_cards_do_not_wait_for_each_other(outbox: SlackOutbox) -> None:
    outbox.card_edit_seconds = 30 * SPEEDUP
    recorder = Recorder()
    outbox.edit(("card", 1), recorder.call("one"), "edit")
    outbox.edit(("card", 2), recorder.call("two"), "edit")
    assert outbox.drain(timeout=5)
    assert sorted(recorder.names()) == ["one", "two"]


def test_a_refusal_is_retried_then_given_up_with_the_callback(outbox: SlackOutbox,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    gave_up: list[str] = []
    failures = [refusal("not_in_channel") for _ in range(outbox.max_attempts)]
    recorder = Recorder()
    outbox.post("C1", recorder.call("never", fail=failures), "thread post 'summary' of #1",
                on_give_up=lambda: gave_up.append("released"))
    outbox.post("C1", recorder.call("after"), "post")
    assert outbox.drain(timeout=10)
    assert gave_up == ["released"] and not failures
    assert recorder.names() == ["after"]
    assert "giving up" in caplog.text and "not_in_channel" in caplog.text


def test_a_transient_refusal_is_sent_on_the_next_attempt(outbox: SlackOutbox) -> None:
    recorder = Recorder()
    outbox.post("C1", recorder.call("late", fail=[refusal("internal_error", 500), ConnectionError()]), "post")
    assert outbox.drain(timeout=10)
    assert recorder.names() == ["late"]


def test_stop_sends_what_it_can_then_drops_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    outbox = SlackOutbox()
    recorder = Recorder()
    for n in range(6):
        outbox.post("C1", recorder.call(f"m{n}"), "post")
    outbox.stop(timeout=0.5)
    assert recorder.names() == ["m0", "m1", "m2"]
    assert "3 call(s) unsent" in caplog.text
    outbox.post("C1", recorder.call("late"), "post")
    assert "late" not in recorder.names()
