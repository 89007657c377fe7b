"""Background Slack calls, sent by one thread at the pace Slack allows.

Slack paces `chat.postMessage` per channel (about one message a second, with a short burst) and
`chat.update` per workspace (tier 3, about 50 a minute), and answers 429 with `Retry-After` beyond
that. Scheduler jobs and listeners hand their thread posts, DMs and card edits to this outbox and
return at once, so nothing that also drives Constant Contact ever sleeps on Slack. Posts to one
thread (or DM) leave in the order they came; across threads an urgent post (a summary) goes before
routine ones, so a burst of 'Submitted' notes in a busy channel never holds a summary back. Card
edits are merged per card (the edit renders the card when it is sent, so only the latest state goes
out) and spaced a few seconds apart per card.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from pyrate_limiter import InMemoryBucket, Limiter, Rate, SingleBucketFactory
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

EDIT_LANE = "chat.update"
# A sliding window of N calls per N/r seconds never outruns a token bucket of N refilled at r/s.
POST_RATES = ((3, 3.3),)  # chat.postMessage: ~1/s per channel, bursts of 3: (calls, seconds)
EDIT_RATES = ((3, 3.3), (45, 60.0))  # chat.update: tier 3, 50/min per workspace
URGENT, ROUTINE = 0, 1
CARD_EDIT_SECONDS = 3.0  # at most one edit of a card this often: people read it as it changes
MAX_ATTEMPTS = 5
IDLE_WAIT = 0.5
PACED_WAIT = 0.05


Send = Callable[[], None]


@dataclass
class Outgoing:
    lane: str  # what Slack paces the call by: a channel for posts, the method for edits
    group: Hashable  # calls of one group leave in order: a thread, a DM, one card
    send: Send  # makes the call; raises SlackApiError (or a network error) when it did not land
    what: str  # for logs: never the message text
    priority: int = ROUTINE
    merge_key: Hashable | None = None
    on_give_up: Callable[[], None] | None = None
    attempts: int = 0
    not_before: float = 0.0
    seq: int = 0


@dataclass
class _Lane:
    limiter: Limiter
    bucket: InMemoryBucket
    blocked_until: float = 0.0

    def admits(self, now: float) -> bool:
        if now < self.blocked_until:
            return False
        self.bucket.leak(self.bucket.now())
        return bool(self.limiter.try_acquire("slack", blocking=False))


def _new_lane(rates: tuple[tuple[int, float], ...], speedup: float) -> _Lane:
    bucket = InMemoryBucket([Rate(calls, max(1, round(1000 * seconds / speedup))) for calls, seconds in rates])
    # No background leaker thread per lane: `admits` leaks old entries itself.
    return _Lane(Limiter(SingleBucketFactory(bucket, schedule_leak=False)), bucket)


def _retry_after(error: Exception) -> float | None:
    """Seconds Slack asked us to wait, when it answered 429."""
    response = getattr(error, "response", None)
    if response is None or getattr(response, "status_code", None) != 429:
        return None
    try:
        return max(1.0, float(response.headers.get("Retry-After", "1")))
    except (TypeError, ValueError):
        return 1.0


def slack_error(error: Exception) -> str:
    """Slack's error code (`not_in_channel`, `ratelimited`…), or the kind of network failure."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or error.response.status_code)
    return type(error).__name__


@dataclass
class SlackOutbox:
    clock: Callable[[], float] = time.monotonic
    card_edit_seconds: float = CARD_EDIT_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    retry_seconds: float = 2.0  # the first wait after a refusal; doubled after each one
    speedup: float = 1.0  # Slack's pace divided by this (benchmarks on an accelerated clock)
    _seq: itertools.count = field(default_factory=itertools.count)
    _pending: list[Outgoing] = field(default_factory=list)
    _lanes: dict[str, _Lane] = field(default_factory=dict)
    _last_edit: dict[Hashable, float] = field(default_factory=dict)
    _sending: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    _stopping: bool = False

    # --- handing work over ------------------------------------------------------------------

    def post(self, channel: str, send: Send, what: str, *, thread_ts: str | None = None, urgent: bool = False,
             on_give_up: Callable[[], None] | None = None) -> None:
        """A message to a channel (or a user id, for a DM), after those already queued for its thread."""
        self._enqueue(Outgoing(f"post:{channel}", (channel, thread_ts), send, what,
                               priority=URGENT if urgent else ROUTINE, on_give_up=on_give_up))

    def edit(self, merge_key: Hashable, send: Send, what: str, *, urgent: bool = False) -> None:
        """An edit that renders its message when sent: one already waiting for `merge_key` covers it."""
        self._enqueue(Outgoing(EDIT_LANE, merge_key, send, what, priority=URGENT if urgent else ROUTINE,
                               merge_key=merge_key))

    def _enqueue(self, item: Outgoing) -> None:
        with self._cond:
            if self._stopping:
                log.warning("Slack outbox stopped; dropped %s", item.what)
                return
            if item.merge_key is not None:
                waiting = next((queued for queued in self._pending if queued.merge_key == item.merge_key), None)
                if waiting is not None:
                    waiting.priority = min(waiting.priority, item.priority)
                    return
                last = self._last_edit.get(item.merge_key, float("-inf"))
                item.not_before = last + self.card_edit_seconds / self.speedup
            item.seq = next(self._seq)
            self._pending.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slack-outbox", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    # --- waiting and stopping ---------------------------------------------------------------

    def depth(self) -> int:
        """Calls queued or being sent."""
        with self._cond:
            return len(self._pending) + self._sending

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._sending

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued has been sent (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Send what Slack allows within `timeout`, then stop. Milestones left unsent are still
        claimed in the database and are settled and posted again at the next start."""
        self.drain(timeout)
        with self._cond:
            self._stopping = True
            left = len(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        if left:
            log.warning("Slack outbox stopped with %d call(s) unsent", left)
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    # --- the sending thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                item = self._next_ready()
                while item is None:
                    if self._stopping:
                        return
                    self._cond.wait(PACED_WAIT if self._pending else IDLE_WAIT)
                    item = self._next_ready()
                self._sending += 1
            try:
                self._deliver(item)
            finally:
                with self._cond:
                    self._sending -= 1
                    self._cond.notify_all()

    def _next_ready(self) -> Outgoing | None:
        """The most urgent call that is first in its group and that its lane lets go now; removed
        from the queue. A group is as urgent as its most urgent call (a summary waiting behind its
        own thread's 'Submitted' note speeds that note up)."""
        now = self.clock()
        heads: dict[Hashable, Outgoing] = {}
        urgency: dict[Hashable, int] = {}
        for item in self._pending:
            heads.setdefault(item.group, item)
            urgency[item.group] = min(urgency.get(item.group, item.priority), item.priority)
        refused: set[str] = set()
        for item in sorted(heads.values(), key=lambda head: (urgency[head.group], head.seq)):
            if item.not_before > now or item.lane in refused:
                continue
            if not self._lane(item.lane).admits(now):
                refused.add(item.lane)
                continue
            self._pending.remove(item)
            if item.merge_key is not None:
                self._last_edit[item.merge_key] = now
            return item
        return None

    def _lane(self, name: str) -> _Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _new_lane(EDIT_RATES if name == EDIT_LANE else POST_RATES, self.speedup)
        return lane

    def _deliver(self, item: Outgoing) -> None:
        try:
            item.send()
        except Exception as error:  # noqa: BLE001 - any failure is retried, then given up and logged
            self._failed(item, error)

    def _failed(self, item: Outgoing, error: Exception) -> None:
        wait = _retry_after(error)
        with self._cond:
            if wait is not None:
                # Slack's own pace was exceeded (other calls share it): hold the whole lane.
                self._lane(item.lane).blocked_until = self.clock() + wait / self.speedup
                self._pending.insert(0, item)
                return
            item.attempts += 1
            if item.attempts < self.max_attempts and not self._stopping:
                backoff = min(60.0, self.retry_seconds * 2.0 ** (item.attempts - 1))
                item.not_before = self.clock() + backoff / self.speedup
                self._pending.insert(0, item)
                return
        log.warning("Slack refused %s %d times (%s); giving up", item.what, item.attempts, slack_error(error),
                    extra={"outcome": "slack_gave_up"})
        if item.on_give_up is not None:
            item.on_give_up()
