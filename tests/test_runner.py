"""The runner's retries re-arm jobs that can run: the right function, the right batch, the right pool."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from bot.config import Settings
from bot.constant_contact import Activity, ServiceUnavailable, Tag
from bot.core.lifecycle import BatchState
from bot.runner import POLL_EXECUTOR, WATCHDOG_SECONDS, Runner
from bot.runtime import new_scheduler
from bot.store import NewTag, Store

TAG = NewTag("0b9c5d8e-2a9f-4d38-9c51-7f1f1b3e0a01", "Spring Promo", 120)


class UnreachableConstantContact:
    """Every call fails the way an outage does, and is counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def list_tags(self, include_count: bool = True) -> list[Tag]:
        self.calls.append("list_tags")
        raise ServiceUnavailable("Constant Contact did not answer.", "api.test")

    def get_activity(self, activity_id: str) -> Activity:
        self.calls.append(f"get_activity {activity_id}")
        raise ServiceUnavailable("Constant Contact did not answer.", "api.test")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "bot.db")
    yield opened
    opened.close()


def submitting_batch(store: Store, activity_id: str | None = None) -> int:
    request_id = store.create_request(requester_id="U0REQ", team_id="T1", origin_channel="C1", source="text",
                                      reason="cleanup", required_approvals=1, tags=[TAG])
    store.create_batches(request_id, [[TAG.tag_id]])
    batch_id = store.batches(request_id)[0].id
    assert store.transition_batch(batch_id, [BatchState.PENDING], BatchState.SUBMITTING, kind="batch.submitting",
                                  activity_id=activity_id)
    return batch_id


def running_batch(store: Store, activity_id: str) -> int:
    batch_id = submitting_batch(store)
    assert store.transition_batch(batch_id, [BatchState.SUBMITTING], BatchState.INITIALIZED, kind="batch.submitted",
                                  activity_id=activity_id)
    return batch_id


def runner_for(store: Store, cc: UnreachableConstantContact, scheduler: BackgroundScheduler) -> Runner:
    # The scheduler is never started: add_job keeps the jobs pending, where get_job finds them.
    return Runner(store, lambda: cc, cast(Any, None), scheduler, Settings(), lambda: datetime.now(UTC))


def run_job(scheduler: BackgroundScheduler, job_id: str) -> None:
    job = scheduler.get_job(job_id)
    assert job is not None, job_id
    scheduler.remove_job(job_id)
    job.func(*job.args, **job.kwargs)


def test_a_postponed_reconciliation_runs_again_for_the_same_batch(store: Store) -> None:
    cc, scheduler = UnreachableConstantContact(), new_scheduler()
    batch_id = submitting_batch(store)
    runner = runner_for(store, cc, scheduler)
    runner.reconcile(batch_id)
    run_job(scheduler, f"reconcile:{batch_id}")
    assert cc.calls == ["list_tags", "list_tags"]
    assert scheduler.get_job(f"reconcile:{batch_id}") is not None  # still down: postponed again
    assert store.batch(batch_id).state == BatchState.SUBMITTING


def test_a_failed_poll_is_retried_on_the_poll_workers(store: Store) -> None:
    cc, scheduler = UnreachableConstantContact(), new_scheduler()
    batch_id = submitting_batch(store, activity_id="activity-1")
    runner = runner_for(store, cc, scheduler)
    runner.poll(batch_id)
    job = scheduler.get_job(f"poll:{batch_id}")
    assert job is not None and job.executor == POLL_EXECUTOR
    run_job(scheduler, f"poll:{batch_id}")
    assert cc.calls == ["get_activity activity-1", "get_activity activity-1"]


def test_the_watchdog_rearms_a_lost_poll_and_leaves_one_in_flight(store: Store) -> None:
    """APScheduler drops a one-shot job when it comes due: a poll waiting for a worker or running has
    no job. A second one armed then would be skipped as a duplicate and could replace the first's
    own re-arm, so only a poll that has had no job for a whole sweep counts as lost."""
    cc, scheduler = UnreachableConstantContact(), new_scheduler()
    never_armed, in_flight, stale = (running_batch(store, f"activity-{n}") for n in (1, 2, 3))
    runner = runner_for(store, cc, scheduler)
    for batch_id, due in ((in_flight, 0.0), (stale, -WATCHDOG_SECONDS - 1)):
        runner._schedule_poll(batch_id, due)
        scheduler.remove_job(f"poll:{batch_id}")  # came due and was handed to a worker
    runner.watchdog()
    assert scheduler.get_job(f"poll:{never_armed}") is not None  # e.g. after a restart
    assert scheduler.get_job(f"poll:{in_flight}") is None
    assert scheduler.get_job(f"poll:{stale}") is not None
