"""Background Slack calls, sent by one thread at the pace Slack allows.

Slack paces `chat.postMessage` per channel (about one message a second, with a short burst) and
`chat.update` per workspace (tier 3, about 50 a minute), and answers 429 with `Retry-After` beyond
that. Scheduler jobs and listeners hand their thread posts, DMs and card edits to this outbox and
return at once, so nothing that also drives Constant Contact ever sleeps on Slack. Posts to one
channel leave in the order they came; card edits are merged per card (the edit renders the card
when it is sent, so only the latest state goes out) and spaced a few seconds apart per card.
"""

from __future__ import annotations

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
POST_RATES = (Rate(3, 3_300),)  # chat.postMessage: ~1/s per channel, bursts of 3
EDIT_RATES = (Rate(3, 3_300), Rate(45, 60_000))  # chat.update: tier 3, 50/min per workspace
CARD_EDIT_SECONDS = 3.0  # at most one edit of a card this often: people read it as it changes
MAX_ATTEMPTS = 5
IDLE_WAIT = 0.5
PACED_WAIT = 0.05


Send = Callable[[], None]


@dataclass
class Outgoing:
    lane: str  # what Slack paces the call by: a channel for posts, the method for edits
    send: Send  # makes the call; raises SlackApiError (or a network error) when it did not land
    what: str  # for logs: never the message text
    merge_key: Hashable | None = None
    on_give_up: Callable[[], None] | None = None
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class _Lane:
    limiter: Limiter
    bucket: InMemoryBucket
    blocked_until: float = 0.0
    ordered: bool = True

    def admits(self, now: float) -> bool:
        if now < self.blocked_until:
            return False
        self.bucket.leak(self.bucket.now())
        return bool(self.limiter.try_acquire("slack", blocking=False))


def _new_lane(rates: tuple[Rate, ...], ordered: bool) -> _Lane:
    bucket = InMemoryBucket(list(rates))
    # No background leaker thread per lane: `admits` leaks old entries itself.
    return _Lane(Limiter(SingleBucketFactory(bucket, schedule_leak=False)), bucket, ordered=ordered)


def _retry_after(error: Exception) -> float | None:
    """Seconds Slack asked us to wait, when it answered 429."""
    response = getattr(error, "response", None)
    if response is None or getattr(response, "status_code", None) != 429:
        return None
    try:
        return max(1.0, float(response.headers.get("Retry-After", "1")))
    except (TypeError, ValueError):
        return 1.0


def _failure_code(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or error.response.status_code)
    return type(error).__name__


@dataclass
class SlackOutbox:
    clock: Callable[[], float] = time.monotonic
    card_edit_seconds: float = CARD_EDIT_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    retry_seconds: float = 2.0  # the first wait after a refusal; doubled after each one
    _pending: list[Outgoing] = field(default_factory=list)
    _lanes: dict[str, _Lane] = field(default_factory=dict)
    _last_edit: dict[Hashable, float] = field(default_factory=dict)
    _sending: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    _stopping: bool = False

    # --- handing work over ------------------------------------------------------------------

    def post(self, channel: str, send: Send, what: str, on_give_up: Callable[[], None] | None = None) -> None:
        """A message to a channel (or a user id, for a DM), after the ones already queued for it."""
        self._enqueue(Outgoing(f"post:{channel}", send, what, on_give_up=on_give_up))

    def edit(self, merge_key: Hashable, send: Send, what: str) -> None:
        """An edit that renders its message when sent: one already waiting for `merge_key` covers it."""
        with self._cond:
            if any(item.merge_key == merge_key for item in self._pending):
                return
            not_before = self._last_edit.get(merge_key, -1e9) + self.card_edit_seconds
        self._enqueue(Outgoing(EDIT_LANE, send, what, merge_key=merge_key, not_before=not_before))

    def _enqueue(self, item: Outgoing) -> None:
        with self._cond:
            if self._stopping:
                log.warning("Slack outbox stopped; dropped %s", item.what)
                return
            self._pending.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="slack-outbox", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    # --- waiting and stopping ---------------------------------------------------------------

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
        """The first queued call its lane lets go now; removed from the queue."""
        now = self.clock()
        held: set[str] = set()
        for index, item in enumerate(self._pending):
            if item.lane in held:
                continue
            lane = self._lane(item.lane)
            if item.not_before > now:
                if lane.ordered:
                    held.add(item.lane)  # later posts to this channel wait behind this one
                continue
            if not lane.admits(now):
                held.add(item.lane)
                continue
            del self._pending[index]
            if item.merge_key is not None:
                self._last_edit[item.merge_key] = now
            return item
        return None

    def _lane(self, name: str) -> _Lane:
        lane = self._lanes.get(name)
        if lane is None:
            edits = name == EDIT_LANE
            lane = self._lanes[name] = _new_lane(EDIT_RATES if edits else POST_RATES, ordered=not edits)
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
                self._lane(item.lane).blocked_until = self.clock() + wait
                self._pending.insert(0, item)
                return
            item.attempts += 1
            if item.attempts < self.max_attempts and not self._stopping:
                item.not_before = self.clock() + min(60.0, self.retry_seconds * 2.0 ** (item.attempts - 1))
                self._pending.insert(0, item)
                return
        log.warning("Slack refused %s %d times (%s); giving up", item.what, item.attempts, _failure_code(error),
                    extra={"outcome": "slack_gave_up"})
        if item.on_give_up is not None:
            item.on_give_up()
