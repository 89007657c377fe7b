"""Acknowledgements first: work that follows an ack waits while Slack requests are being answered.

Slack drops a request that is not answered within 3 s, and one Python process has one interpreter
lock: CPU-heavy work after an ack (resolving 500 tags, building a preview card) slows down the acks
of the requests that arrive meanwhile. So work handed to the after-ack pool starts once no Slack
request has been in flight for a moment, or once it has waited `max_wait_seconds`: a burst of
commands is acknowledged first and previewed right after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

QUIET_SECONDS = 0.02  # no request in flight for this long: a burst is over
MAX_WAIT_SECONDS = 2.0  # never hold work back longer than this (the person waits for a preview)


@dataclass
class AckGate:
    quiet_seconds: float = QUIET_SECONDS
    max_wait_seconds: float = MAX_WAIT_SECONDS
    clock: Callable[[], float] = time.monotonic
    _in_flight: int = 0
    _last_answered: float = float("-inf")
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one request from Slack, up to its answer."""
        with self._cond:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._last_answered = self.clock()
                if self._in_flight == 0:  # waking the waiters at every answer would slow the acks
                    self._cond.notify_all()

    def wait_for_quiet(self, queued_at: float) -> None:
        """Block until no request has been in flight for `quiet_seconds`, or until `max_wait_seconds`
        after `queued_at` (a `clock()` reading taken when the work was handed over)."""
        deadline = queued_at + self.max_wait_seconds
        with self._cond:
            while True:
                now = self.clock()
                if now >= deadline:
                    return
                wait = deadline - now  # while requests are in flight: until the last one is answered
                if self._in_flight == 0:
                    quiet_for = now - self._last_answered
                    if quiet_for >= self.quiet_seconds:
                        return
                    wait = min(wait, self.quiet_seconds - quiet_for)
                self._cond.wait(max(0.001, wait))
