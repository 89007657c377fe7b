"""Work after an ack waits for the requests being answered, but never longer than the cap."""

from __future__ import annotations

import threading
import time

from bot.ack_gate import AckGate


def started_after(gate: AckGate) -> tuple[threading.Thread, list[float]]:
    started: list[float] = []
    queued_at = gate.clock()
    worker = threading.Thread(target=lambda: (gate.wait_for_quiet(queued_at), started.append(time.monotonic())))
    worker.start()
    return worker, started


def test_work_waits_while_a_request_is_being_answered() -> None:
    gate = AckGate(quiet_seconds=0.02, max_wait_seconds=5)
    with gate.answering():
        worker, started = started_after(gate)
        time.sleep(0.2)
        assert not started
        answered_at = time.monotonic()
    worker.join(timeout=2)
    assert started and started[0] - answered_at >= 0.02


def test_work_starts_at_once_when_nothing_is_in_flight() -> None:
    gate = AckGate(quiet_seconds=0.02, max_wait_seconds=5)
    before = time.monotonic()
    worker, started = started_after(gate)
    worker.join(timeout=2)
    assert started and started[0] - before < 0.5


def test_a_stream_of_requests_holds_work_back_no_longer_than_the_cap() -> None:
    gate = AckGate(quiet_seconds=0.05, max_wait_seconds=0.3)
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            with gate.answering():
                time.sleep(0.01)

    traffic = threading.Thread(target=busy)
    traffic.start()
    try:
        before = time.monotonic()
        worker, started = started_after(gate)
        worker.join(timeout=2)
        assert started and 0.3 <= started[0] - before < 1.0
    finally:
        stop.set()
        traffic.join()
