"""Turns an approved request into Constant Contact activities and watches them to the end.

The database is the truth; APScheduler only holds in-memory one-shot jobs that the runner
re-arms after each run and rebuilds at start-up (`recover`). Each batch is marked `submitting`
before its POST, so a crash or an "outcome unknown" answer is reconciled by looking at which of
its tags still exist, never by posting blindly again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from apscheduler.schedulers.base import BaseScheduler

from bot.core import blocks, lifecycle, polling, quota, snapshot_report, tag_changes
from bot.config import Settings
from bot.constant_contact import (
    Activity,
    ConstantContactError,
    NotFound,
    OutcomeUnknown,
    QuotaExceeded,
    ServiceUnavailable,
    TooManyQueuedActivities,
)
from bot.core.lifecycle import TERMINAL_BATCH_STATES, BatchState, RequestState
from bot.core.advice import OWN_ADVICE
from bot.core.mrkdwn import outside_text, outside_text_with_advice
from bot.notifier import SUMMARY_KEY, Notifier, file_key
from bot.quota_ledger import QuotaCheck
from bot.restores import plan as restore_plan
from bot.restores import views as restore_views
from bot.restores.plan import RestoreSummary
from bot.restores.work import RestoreWork
from bot.snapshots import Snapshots
from bot.store import Batch, Request, Store
from bot.core.summary import ERROR_SHOWN, Summary, summarise
from bot.core.tag_changes import TagChange, TagFacts

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_SECONDS = 30.0
GIVE_UP_AFTER = timedelta(hours=24)
# Up to this many tags are checked one by one before their POST; more, with one listing of the account.
LOOKUPS_PER_TAG_UP_TO = quota.LOOKUPS_PER_TAG_UP_TO
# A snapshot that took longer than this gives people time to change the tags: they are read again.
RECHECK_AFTER_SNAPSHOT_SECONDS = 5.0
QUOTA_RESET_SLACK_SECONDS = 5  # after 00:00 UTC, so that Constant Contact's own day has turned too
WATCHDOG_SECONDS = 60
SHOWN_ACTIVITY_IDS = 10  # in the "Submitted" note; a restore may have hundreds
POLL_EXECUTOR = "polls"  # the scheduler executor whose workers run status polls only
HOUSEKEEPING_EXECUTOR = "housekeeping"  # periodic sweeps, never queued behind submissions


def real_now() -> datetime:
    # Scheduler run times follow the real clock, whatever clock the business rules use.
    return datetime.now(timezone.utc)


class Runner:
    def __init__(self, store: Store, cc: Callable[[], Any], notifier: Notifier, scheduler: BaseScheduler,
                 settings: Settings, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.cc = cc
        self.notifier = notifier
        self.scheduler = scheduler
        self.bounds = polling.Bounds(settings.poll_min_seconds, settings.poll_max_seconds)
        self.clock = clock
        self.reconcile_after = settings.reconcile_delay_seconds
        self.large_tag_contacts = settings.large_tag_contacts
        self.approval_ttl_hours = settings.approval_ttl_hours
        self.retention_days = settings.snapshot_retention_days
        self.restores = RestoreWork(store, cc)
        self._tracks: dict[int, polling.Track] = {}  # per batch: what its polls saw
        self._poll_due: dict[int, float] = {}  # per batch: when its latest poll was due (monotonic)
        self._lock = threading.Lock()
        self._scheduling = threading.RLock()
        self._stopping = False
        self.quota_check: QuotaCheck | None = None  # set by the runtime; None: no hold for the quota
        self.snapshots: Snapshots | None = None  # set by the runtime; None: nothing is snapshotted
        # Every tag of the account, from a listing that begins now (the runtime shares one listing
        # among the checks and previews that ask at the same moment).
        self.fresh_tags: Callable[[], Sequence[Any]] = lambda: self.cc().list_tags(include_count=True)

    # --- scheduling --------------------------------------------------------------------------

    def _schedule(self, job_id: str, func: Callable[..., None], delay: float, *args: Any,
                  executor: str = "default") -> None:
        with self._scheduling:
            if self._stopping:
                return  # the database remembers the work; recovery re-arms it at the next start
            self.scheduler.add_job(func, "date", run_date=real_now() + timedelta(seconds=delay), args=list(args),
                                   id=job_id, replace_existing=True, executor=executor)

    def _schedule_poll(self, batch_id: int, delay: float) -> None:
        with self._lock:
            self._poll_due[batch_id] = time.monotonic() + delay
        self._schedule(f"poll:{batch_id}", self.poll, delay, batch_id, executor=POLL_EXECUTOR)

    def stop_scheduling(self) -> None:
        """Call before the scheduler shuts down: APScheduler's shutdown(wait=True) holds the job
        store lock while it waits for running jobs, so a job re-arming itself would deadlock it."""
        with self._scheduling:
            self._stopping = True

    def start_request(self, request_id: int) -> None:
        """Called on approval (in a listener thread): the work happens on the scheduler's threads."""
        self._schedule(f"submit:{request_id}", self.submit_request, 0, request_id)

    def request_closed(self, request_id: int) -> None:
        """Rejected, cancelled or expired (in a listener thread): settled on the scheduler's threads."""
        if self.store.batches(request_id):
            self._schedule(f"settle:{request_id}", self.settle_stopped, 0, request_id)

    # --- submission -------------------------------------------------------------------------

    def submit_request(self, request_id: int) -> None:
        request = self.store.get_request(request_id)
        if request is None or request.state not in (RequestState.APPROVED, RequestState.RUNNING):
            return
        if self._held_for_quota(request):
            return
        if request.quota_held_until is not None:
            self.store.set_quota_hold(request_id, None)
        if not self.store.batches(request_id):
            tags = self.store.request_tags(request_id)
            if request.is_restore:
                self.store.create_restore_batches(request_id, restore_plan.chunks(
                    (t.tag_id, t.contacts_count or 0) for t in tags))
            else:
                self.store.create_batches(request_id, lifecycle.batches([t.tag_id for t in tags]))
        self.store.transition(request_id, RequestState.RUNNING, actor="runner", kind="request.started",
                              started_at=request.started_at or self.clock())  # kept when approved again
        for batch in self.store.batches(request_id):
            if batch.state == BatchState.PENDING:
                self.submit_batch(batch.id)
        self._announce_submitted(request_id)

    def _held_for_quota(self, request: Request) -> bool:
        """A request that has sent nothing yet and cannot finish within what is left of today's
        quota waits for the reset, so that it never stops half-way at midnight."""
        if self.quota_check is None or request.state != RequestState.APPROVED:
            return False
        if any(b.state != BatchState.PENDING for b in self.store.batches(request.id)):
            return False  # approved again after a change: part of it is already under way
        estimate = quota.Estimate.from_record(request.quota_estimate) or self.quota_check.estimate(
            [t.contacts_count for t in self.store.request_tags(request.id)], request.account_tag_count or 0)
        day = self.quota_check.ledger.today()
        if day.admits(estimate) or not day.could_ever_admit(estimate):
            return False  # too large for any one day: it goes, and waits on Constant Contact's 429 if need be
        now = self.clock()
        until = quota.next_reset(now)
        if self.store.set_quota_hold(request.id, until):
            log.info("held for the daily quota", extra={"request_id": str(request.id), "outcome": "held"})
            self.notifier.post_once(request.id, f"quota-hold:{quota.utc_day(now)}",
                                    quota.hold_text(request.id, estimate, day, now))
            self.notifier.refresh_card(request.id)
        delay = (until - now).total_seconds() + QUOTA_RESET_SLACK_SECONDS
        self._schedule(f"submit:{request.id}", self.submit_request, delay, request.id)
        return True

    def submit_batch(self, batch_id: int) -> None:
        batch = self.store.batch(batch_id)
        if batch is None or batch.state != BatchState.PENDING:
            return
        request = self.store.get_request(batch.request_id)
        if request is None or request.state != RequestState.RUNNING:
            return  # a request stopped for approval again keeps its remaining batches pending
        if batch.is_restore:
            self._submit_restore_batch(request, batch)
            return
        # Tags checked, snapshot recorded, and, when recording it took time, the tags checked again:
        # what goes out is what the approvers saw, and its snapshot is committed first.
        if not self._unchanged_since_approval(batch):
            return
        began = time.monotonic()
        if not self._snapshot_recorded(batch):
            return
        took_long = time.monotonic() - began > RECHECK_AFTER_SNAPSHOT_SECONDS
        if took_long and not self._unchanged_since_approval(batch):
            return
        if not self.store.transition_batch(
            batch_id, [BatchState.PENDING], BatchState.SUBMITTING, kind="batch.submitting", submitted_at=self.clock()
        ):
            return
        tag_ids = self.store.batch_tag_ids(batch.request_id, batch.batch_no)
        self._post_batch(batch, tag_ids, expect=BatchState.SUBMITTING)

    def _submit_restore_batch(self, request: Request, batch: Batch) -> None:
        """The batch's tag made (once), then its contacts tagged again."""
        try:
            read, _ = self._read_before_post(batch, lambda: self.restores.target_tag(request, batch),
                                             "the tag could not be recreated: ")
        except ValueError as error:  # a name Constant Contact would refuse
            self._batch_failed(batch, BatchState.PENDING, f"the tag could not be recreated: {error}")
            return
        if not read or not self.store.transition_batch(
            batch.id, [BatchState.PENDING], BatchState.SUBMITTING, kind="batch.submitting", submitted_at=self.clock()
        ):
            return
        self._post_restore_batch(batch)

    def _post_restore_batch(self, batch: Batch, reconciled: bool = False) -> None:
        if batch.contact_count:
            self._post_batch(batch, [], expect=BatchState.SUBMITTING, reconciled=reconciled)
            return
        # A tag on no contact: recreating it was all there was to do.
        self.store.transition_batch(batch.id, [BatchState.SUBMITTING], BatchState.COMPLETED, kind="batch.completed",
                                    percent_done=100, finished_at=self.clock())
        self.finish_if_done(batch.request_id)

    def _send(self, batch: Batch, tag_ids: list[str]) -> Activity:
        """The batch's POST: its tags deleted, or (a restore's batch, whose contacts and tag are its
        own, so `tag_ids` is unused) its contacts tagged again."""
        if batch.is_restore:
            return self.restores.post(batch)
        return self.cc().create_tags_delete(tag_ids)

    def _post_batch(self, batch: Batch, tag_ids: list[str], expect: str, reconciled: bool = False) -> None:
        try:
            activity = self._send(batch, tag_ids)
        except OutcomeUnknown as error:
            log.warning("submission outcome unknown: %s", error, extra={"request_id": str(batch.request_id)})
            self.store.add_event(batch.request_id, "runner", "batch.outcome_unknown", {"batch": batch.id})
            self._schedule(f"reconcile:{batch.id}", self.reconcile, self.reconcile_after, batch.id)
            return
        except (TooManyQueuedActivities, QuotaExceeded) as error:
            self._postpone(batch, expect, error)
            return
        except (ConstantContactError, ValueError) as error:  # ValueError: refused before it was sent
            self._batch_failed(batch, expect, str(error))
            return
        self.store.transition_batch(
            batch.id, [expect], activity.state if activity.state != "completed" else BatchState.PROCESSING,
            kind="batch.submitted", detail={"activity_id": activity.activity_id, "reconciled": reconciled},
            activity_id=activity.activity_id, percent_done=activity.percent_done,
        )
        self._schedule_poll(batch.id, self.bounds.minimum)
        # The last batch to go out announces them all, also when it went out on a retry.
        self._announce_submitted(batch.request_id)

    # --- the check right before the irreversible POST ----------------------------------------

    def _unchanged_since_approval(self, batch: Batch) -> bool:
        """Look at the batch's tags as they are now; a material change stops the request for approval
        again. Nothing goes out unchecked: when Constant Contact cannot be asked, the batch waits."""
        approved = [TagFacts(t.tag_id, t.name, t.contacts_count)
                    for t in self.store.request_tags(batch.request_id) if t.batch_no == batch.batch_no]
        read, now = self._read_before_post(batch, lambda: self._tags_now([t.tag_id for t in approved]))
        if not read or now is None:
            return False
        changes = tag_changes.material_changes(approved, now, self.large_tag_contacts)
        if changes:
            self._ask_again(batch, changes)
            return False
        return True

    def _read_before_post(self, batch: Batch, read: Callable[[], T], failing: str = "") -> tuple[bool, T | None]:
        """A Constant Contact read that must succeed before the batch's POST: when Constant Contact cannot
        be asked now the batch waits; when it refuses, the batch fails, and nothing was sent."""
        try:
            return True, read()
        except (QuotaExceeded, TooManyQueuedActivities, ServiceUnavailable, OutcomeUnknown) as error:
            self._postpone(batch, BatchState.PENDING, error)
        except ConstantContactError as error:
            self._batch_failed(batch, BatchState.PENDING, f"{failing}{error}")
        return False, None

    def _snapshot_recorded(self, batch: Batch) -> bool:
        """Whether the batch may go: its snapshot is complete and committed, or it is not snapshotted."""
        snapshots = self.snapshots
        if snapshots is None:
            return True
        read, snapshot = self._read_before_post(batch, lambda: snapshots.ensure(batch),
                                                "no snapshot could be recorded, so it was not deleted: ")
        if not read:
            return False
        if snapshot is not None:
            batch_count = len(self.store.batches(batch.request_id))
            self.notifier.post_once(batch.request_id, f"snapshot:{batch.batch_no}", snapshot_report.milestone_text(
                batch.batch_no, batch_count, batch.tag_count, snapshot.contacts or 0, snapshot.taggings or 0))
        return True

    def _tags_now(self, tag_ids: list[str]) -> dict[str, TagFacts]:
        cc = self.cc()
        if len(tag_ids) <= LOOKUPS_PER_TAG_UP_TO:
            found = [cc.get_tag(tag_id) for tag_id in tag_ids]
        else:
            wanted = set(tag_ids)
            found = [t for t in self.fresh_tags() if t.tag_id.strip().lower() in wanted]
        return {key: TagFacts(key, t.name, t.contacts_count)
                for t in found if t is not None for key in [t.tag_id.strip().lower()]}

    def _ask_again(self, batch: Batch, changes: list[TagChange]) -> None:
        expires_at = lifecycle.approval_expiry(self.clock(), self.approval_ttl_hours)
        if not self.store.reopen_for_approval(batch.request_id, [c.as_record() for c in changes],
                                              [c.describe() for c in changes], expires_at):
            return
        request_id = batch.request_id
        # Snapshots of batches not sent yet describe the old facts: they are recorded again.
        self.store.discard_snapshots(request_id, [b.batch_no for b in self.store.batches(request_id)
                                                  if b.state == BatchState.PENDING])
        log.warning("tags changed since the approval; asking again", extra={"request_id": str(request_id),
                                                                            "outcome": "changed_since_approval"})
        sent = sum(1 for b in self.store.batches(request_id) if b.state != BatchState.PENDING)
        text = blocks.changed_since_approval_text(
            request_id, batch.batch_no, sent, [c.describe() for c in changes], self.notifier.approvers.mention_text())
        rounds = len(self.store.events(request_id, kind_prefix="request.changed_since_approval"))
        self.notifier.post_once(request_id, f"changed:{rounds}", text)
        self.notifier.refresh_card(request_id)
        request = self.store.get_request(request_id)
        if request is not None:
            self.notifier.tell(request.requester_id, blocks.changed_since_approval_dm(request_id, len(changes)))

    def settle_stopped(self, request_id: int) -> None:
        """A request stopped for approval again and then rejected, cancelled or expired: the batches
        that never went out are closed, and the summary says what was deleted before the stop."""
        request = self.store.get_request(request_id)
        batches = self.store.batches(request_id)
        if request is None or not request.is_terminal or all(b.state == BatchState.PENDING for b in batches):
            return  # nothing ever reached Constant Contact: the card already says so
        why = f"never submitted: the request was {request.state} after its tags changed"
        for b in batches:
            if b.state == BatchState.PENDING:
                self.store.transition_batch(b.id, [BatchState.PENDING], BatchState.CANCELLED, kind="batch.not_submitted",
                                            detail={"why": why}, errors=[why], finished_at=self.clock())
        self.finish_if_done(request_id)

    def _postpone(self, batch: Batch, expect: str, error: ConstantContactError) -> None:
        """Nothing was queued: back to pending, and try again when Constant Contact allows."""
        self.store.transition_batch(batch.id, [expect], BatchState.PENDING, kind="batch.postponed",
                                    detail={"why": str(error)})
        delay = RETRY_SECONDS
        if isinstance(error, QuotaExceeded):
            delay = max(RETRY_SECONDS, (error.resets_at - real_now()).total_seconds() + 5)
        self.notifier.post_once(batch.request_id, f"postponed:{batch.batch_no}:{type(error).__name__}",
                                f":hourglass_flowing_sand: Batch {batch.batch_no + 1} is waiting: "
                                f"{outside_text_with_advice(str(error), OWN_ADVICE, 3 * ERROR_SHOWN)}")
        self._schedule(f"submit-batch:{batch.id}", self.submit_batch, delay, batch.id)

    def _batch_failed(self, batch: Batch, expect: str, why: str) -> None:
        self.store.transition_batch(batch.id, [expect], BatchState.FAILED, kind="batch.failed",
                                    detail={"why": why}, errors=[why], finished_at=self.clock())
        self.store.add_event(batch.request_id, "runner", "batch.not_submitted", {"why": why})
        self.finish_if_done(batch.request_id)

    def _announce_submitted(self, request_id: int) -> None:
        batches = self.store.batches(request_id)
        if any(b.state in (BatchState.PENDING, BatchState.SUBMITTING) for b in batches):
            return
        submitted = [b for b in batches if b.activity_id]
        if not submitted:
            return  # nothing reached Constant Contact; the summary says why
        ids = ", ".join(f"`{outside_text(b.activity_id)}`" for b in submitted[:SHOWN_ACTIVITY_IDS])
        if len(submitted) > SHOWN_ACTIVITY_IDS:
            ids += f" and {len(submitted) - SHOWN_ACTIVITY_IDS:,} more (`deletetags-bot audit --request {request_id}`)"
        if self.notifier.post_once(request_id, "submitted",
                                   f":rocket: Submitted to Constant Contact: {len(submitted)} "
                                   f"activit{'y' if len(submitted) == 1 else 'ies'} ({ids})."):
            self.notifier.refresh_card(request_id)

    # --- reconciliation ---------------------------------------------------------------------

    def reconcile(self, batch_id: int) -> None:
        """A batch whose POST may or may not have landed: re-submit only the tags that still exist."""
        batch = self.store.batch(batch_id)
        if batch is None or batch.state != BatchState.SUBMITTING:
            return
        if batch.is_restore:
            # Tagging contacts that already carry the tag changes nothing: send it again.
            self.store.add_event(batch.request_id, "runner", "batch.reconciling", {"batch": batch_id, "resent": True})
            self._post_restore_batch(batch, reconciled=True)
            return
        tag_ids = self.store.batch_tag_ids(batch.request_id, batch.batch_no)
        try:
            existing = {t.tag_id for t in self.cc().list_tags(include_count=False)}
        except ConstantContactError as error:
            log.warning("reconciliation postponed: %s", error, extra={"request_id": str(batch.request_id)})
            self._schedule(f"reconcile:{batch_id}", self.reconcile, RETRY_SECONDS, batch_id)
            return
        remaining = [t for t in tag_ids if t in existing]
        self.store.add_event(batch.request_id, "runner", "batch.reconciling",
                             {"batch": batch_id, "still_there": len(remaining), "gone": len(tag_ids) - len(remaining)})
        if not remaining:
            self.store.transition_batch(batch_id, [BatchState.SUBMITTING], BatchState.RECONCILED,
                                        kind="batch.reconciled", percent_done=100, finished_at=self.clock())
            self.finish_if_done(batch.request_id)
            self._announce_submitted(batch.request_id)
            return
        self._post_batch(batch, remaining, expect=BatchState.SUBMITTING, reconciled=True)
        self._announce_submitted(batch.request_id)

    # --- polling ----------------------------------------------------------------------------

    def poll(self, batch_id: int) -> None:
        batch = self.store.batch(batch_id)
        if batch is None or batch.state in TERMINAL_BATCH_STATES or not batch.activity_id:
            return
        try:
            activity = self.cc().get_activity(batch.activity_id)
        except NotFound:
            self._lost(batch, "Constant Contact no longer knows this activity (records are kept for 10 days). "
                              "Check these tags in Constant Contact.")
            return
        except QuotaExceeded as error:
            until_reset = (error.resets_at - real_now()).total_seconds() + 5
            self._schedule_poll(batch_id, max(self.bounds.maximum, until_reset))
            return
        except ConstantContactError as error:
            log.warning("poll failed: %s", error, extra={"request_id": str(batch.request_id)})
            self._schedule_poll(batch_id, self.bounds.maximum)
            return
        self._record_progress(batch, activity)

    def _record_progress(self, batch: Batch, activity: Activity) -> None:
        observation = self._observe(batch, activity)
        if activity.is_terminal:
            self._batch_ended(batch, activity)
            return
        state = activity.state if activity.state in (BatchState.INITIALIZED, BatchState.PROCESSING) else batch.state
        self.store.transition_batch(
            batch.id, [batch.state], state, kind=None, percent_done=activity.percent_done,
            items_total=activity.items_total, items_completed=activity.items_completed,
            poll_count=batch.poll_count + 1,
        )
        if self._overdue(batch):
            self._lost(batch, f"Constant Contact did not finish this activity within "
                              f"{GIVE_UP_AFTER.total_seconds() / 3600:g} h. Check these tags in Constant Contact.")
            return
        if polling.is_stalled(observation):
            self.notifier.post_once(batch.request_id, f"stalled:{batch.batch_no}",
                                    f":snail: Activity `{outside_text(batch.activity_id)}` is taking much longer "
                                    f"than expected ({activity.percent_done}% done). I will keep checking, less often.")
        self.notifier.refresh_card(batch.request_id)
        # Re-armed last: a one-shot job that comes due while this run is still going (a slow card
        # edit) would be skipped by APScheduler, and the poll lost until the watchdog.
        self._schedule_poll(batch.id, polling.next_delay(observation, self.bounds))

    def _observe(self, batch: Batch, activity: Activity) -> polling.Observation:
        now = self.clock()
        submitted = batch.submitted_at.timestamp() if batch.submitted_at else time.time()
        elapsed = max(0.0, now.timestamp() - submitted)
        since_start = polling.seconds_since(activity.started_at, now)
        since_created = polling.seconds_since(activity.created_at, now)
        with self._lock:
            track = self._tracks.get(batch.id) or polling.Track.within(self.bounds)
            self._tracks[batch.id], observation = track.seen(
                elapsed, activity.percent_done, batch.poll_count + 1, since_start, since_created)
        return observation

    def observation(self, batch: Batch) -> polling.Observation | None:
        """The latest observation of a running batch (for ETA in status answers)."""
        with self._lock:
            track = self._tracks.get(batch.id)
        if track is None or batch.submitted_at is None:
            return None
        elapsed = max(0.0, self.clock().timestamp() - batch.submitted_at.timestamp())
        return track.at(elapsed, batch.poll_count)

    def _overdue(self, batch: Batch) -> bool:
        return batch.submitted_at is not None and self.clock() - batch.submitted_at > GIVE_UP_AFTER

    def _lost(self, batch: Batch, why: str) -> None:
        self.store.transition_batch(batch.id, [batch.state], BatchState.LOST, kind="batch.lost",
                                    detail={"why": why}, errors=[why], finished_at=self.clock())
        self._forget(batch.id)
        self.finish_if_done(batch.request_id)

    def _forget(self, batch_id: int) -> None:
        with self._lock:
            self._tracks.pop(batch_id, None)
            self._poll_due.pop(batch_id, None)

    def _batch_ended(self, batch: Batch, activity: Activity) -> None:
        won = self.store.transition_batch(
            batch.id, [batch.state], activity.state, kind=f"batch.{activity.state}",
            detail={"activity_id": activity.activity_id, "errors": list(activity.errors)[:20]},
            percent_done=activity.percent_done, items_total=activity.items_total,
            items_completed=activity.items_completed, errors=list(activity.errors), finished_at=self.clock(),
            poll_count=batch.poll_count + 1,
        )
        if not won:
            return
        self._forget(batch.id)
        # A restore's deleted contacts are expected: the summary counts them.
        shown = restore_plan.unexpected_errors(activity.errors) if batch.is_restore else list(activity.errors)
        if activity.state != BatchState.COMPLETED or shown:
            errors = "; ".join(outside_text(e, ERROR_SHOWN) for e in shown[:3]) or "no details given"
            self.notifier.post_once(batch.request_id, f"batch:{batch.batch_no}:problem",
                                    f":warning: Activity `{outside_text(activity.activity_id)}` ended "
                                    f"`{activity.state}`: {errors}")
        self.finish_if_done(batch.request_id)

    # --- the end ----------------------------------------------------------------------------

    def finish_if_done(self, request_id: int) -> None:
        batches = self.store.batches(request_id)
        request = self.store.get_request(request_id)
        # A deletion has a few batches of 500 tags; a restore may have hundreds of 500 contacts,
        # and its card's progress bar counts them instead.
        if len(batches) > 1 and request is not None and not request.is_restore:
            for b in batches:
                if b.state in TERMINAL_BATCH_STATES:
                    self.notifier.post_once(request_id, f"batch:{b.batch_no}:done",
                                            f"Batch {b.batch_no + 1} of {len(batches)} finished (`{b.state}`).")
        if not batches or any(b.state not in TERMINAL_BATCH_STATES for b in batches):
            return
        if request is not None and request.is_restore:
            summary: Summary | RestoreSummary = restore_plan.summarise(self.store.request_tags(request_id), batches)
            self.store.set_tag_outcomes(request_id, summary.outcomes)
            target = RequestState(summary.final_state)
            detail = {"restored": summary.restored, "not_restored": summary.not_restored,
                      "tagged": summary.tagged, "deleted": summary.deleted}
        else:
            summary = self._verify_outcomes(request_id, batches)
            target = RequestState(summary.final_state)
            detail = {"deleted": summary.deleted, "not_deleted": summary.not_deleted}
        self.store.transition(request_id, target, actor="runner", kind=f"request.{target.value}", detail=detail,
                              expect=(RequestState.RUNNING.value,), finished_at=self.clock())
        self.post_summary(request_id, summary)

    def _verify_outcomes(self, request_id: int, batches: list[Batch]) -> Summary:
        """Ask Constant Contact which tags are really gone, unless every activity ended cleanly."""
        tags = self.store.request_tags(request_id)
        clean = all(b.state in (BatchState.COMPLETED, BatchState.RECONCILED) and not b.errors for b in batches)
        existing: set[str] | None = None
        if not clean:
            try:
                existing = {t.tag_id for t in self.cc().list_tags(include_count=False)}
            except ConstantContactError as error:
                log.warning("could not verify which tags remain: %s", error, extra={"request_id": str(request_id)})
        summary = summarise(tags, batches, existing)
        self.store.set_tag_outcomes(request_id, summary.outcomes)
        return summary

    def post_summary(self, request_id: int, summary: Summary | RestoreSummary | None = None) -> None:
        request = self.store.get_request(request_id)
        if request is None or not request.is_terminal:
            return
        self._announce_submitted(request_id)  # late rather than never, when Slack refused it at the time
        text = self._summary_text(request, summary)
        if self.notifier.post_once(request_id, SUMMARY_KEY, text):
            self.notifier.refresh_card(request_id, final=True)
        self._share_snapshot(request_id)
        # Checked again later until it is posted: the outbox gives up on a post Slack keeps
        # refusing (the bot removed from the channel, a revoked token) and releases its claim.
        if self.store.notices(request_id).get(SUMMARY_KEY) != "posted":
            self._schedule(f"summary:{request_id}", self.post_summary, RETRY_SECONDS, request_id)

    def _summary_text(self, request: Request, summary: Summary | RestoreSummary | None) -> str:
        """`summary`: what finishing the request just decided; None after a restart (decided again)."""
        approvers = self.store.approvals(request.id)
        if summary is None:
            tags, batches = self.store.request_tags(request.id), self.store.batches(request.id)
            summary = restore_plan.summarise(tags, batches) if request.is_restore else summarise(tags, batches, None)
        if isinstance(summary, RestoreSummary):
            return restore_views.summary_text(request.requester_id, request.id, request.restores_request or 0,
                                              summary, approvers, request.started_at, request.finished_at,
                                              int(request.unresolved.get("deleted_then") or 0))
        recorded = any(s.state == "complete" for s in self.store.snapshots(request.id))
        footer = restore_views.undo_hint(request.id, self.retention_days) if recorded and summary.deleted else None
        return blocks.summary_text(request.requester_id, request.id, summary, approvers,
                                   request.started_at, request.finished_at, footer=footer)

    def _share_snapshot(self, request_id: int) -> None:
        """The snapshot as a CSV file in the thread, once, after the summary."""
        recorded = [s for s in self.store.snapshots(request_id) if s.state == "complete"]
        filename = f"snapshot-request-{request_id}.csv"
        # post_summary runs again until the summary is posted: build the CSV only while it is still due.
        if not recorded or file_key(filename) in self.store.notices(request_id):
            return
        content = snapshot_report.snapshot_csv(self.store.snapshot_taggings(request_id)).encode()
        taggings = sum(s.taggings or 0 for s in recorded)
        self.notifier.upload_file_once(
            request_id, filename, content,
            f":camera_with_flash: The snapshot taken before deleting: {taggings:,} taggings (tag, contact) "
            f"(also `deletetags-bot snapshot {request_id} --csv`).")

    # --- start-up ---------------------------------------------------------------------------

    def recover(self) -> None:
        """Resume whatever a previous process left in flight."""
        for request in self.store.requests(states=(RequestState.RUNNING.value, RequestState.COMPLETED.value,
                                                   RequestState.COMPLETED_WITH_ERRORS.value,
                                                   RequestState.FAILED.value), limit=200):
            self.notifier.settle_claimed(request.id)
        for request in self.store.requests(states=(RequestState.APPROVED.value,), limit=10_000):
            self.start_request(request.id)
        for batch in self.store.batches_in_states([BatchState.PENDING.value]):
            request = self.store.get_request(batch.request_id)
            if request is not None and request.state == RequestState.RUNNING:
                self._schedule(f"submit-batch:{batch.id}", self.submit_batch, 0, batch.id)
            elif request is not None and request.is_terminal:  # stopped for approval again, then closed
                self._schedule(f"settle:{request.id}", self.settle_stopped, 0, request.id)
        for batch in self.store.batches_in_states([BatchState.SUBMITTING.value]):
            # The POST may have landed just before the crash: let its activity show its effect first.
            self._schedule(f"reconcile:{batch.id}", self.reconcile, self.reconcile_after, batch.id)
        self.watchdog()
        for request in self.store.requests(states=(RequestState.RUNNING.value,), limit=10_000):
            self.finish_if_done(request.id)
        for state in (RequestState.COMPLETED, RequestState.COMPLETED_WITH_ERRORS, RequestState.FAILED):
            for request in self.store.requests(states=(state.value,), limit=200):
                if self.store.notices(request.id).get(SUMMARY_KEY) != "posted":
                    self.post_summary(request.id)
        self.scheduler.add_job(self.watchdog, "interval", seconds=WATCHDOG_SECONDS, id="watchdog",
                               replace_existing=True, executor=HOUSEKEEPING_EXECUTOR)

    def watchdog(self) -> None:
        """Every running batch has a poll job; a job lost to an error is re-armed here."""
        for batch in self.store.running_batches():
            with self._scheduling:  # so that the poll's own re-arm cannot come between check and add
                if self._stopping:
                    return  # get_job would wait for the lock that shutdown holds while it waits for us
                if self._poll_lost(batch.id):
                    self._schedule_poll(batch.id, 0)

    def _poll_lost(self, batch_id: int) -> bool:
        # APScheduler drops a one-shot job from its store when it comes due, so a poll waiting for
        # a worker or running (it re-arms itself at the end) has no job either. Re-arming one of
        # those makes a second run that APScheduler skips, dropping it, and can replace the poll's
        # own re-arm. A poll is lost when it has no job and was due more than a sweep ago.
        if self.scheduler.get_job(f"poll:{batch_id}") is not None:
            return False
        with self._lock:
            due = self._poll_due.get(batch_id)
        return due is None or time.monotonic() - due > WATCHDOG_SECONDS
