"""The long-lived parts of one bot process, built from settings and started/stopped together."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as SchedulerPool
from apscheduler.schedulers.background import BackgroundScheduler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler, ServerErrorRetryHandler

from bot.ack_gate import AckGate
from bot.core import tag_health
from bot.approvers import ApproverDirectory, GroupsUnavailable
from bot.config import Settings
from bot.core.lifecycle import TERMINAL_REQUEST_STATES, RequestState
from bot.decisions import Decisions
from bot.intake import Intake, TagCatalog
from bot.metrics import Gauges, Metrics
from bot.core.quota import budget_line
from bot.quota_ledger import QuotaCheck, QuotaLedger
from bot.notifier import Notifier
from bot.reports import Reports
from bot.runner import HOUSEKEEPING_EXECUTOR, POLL_EXECUTOR, Runner
from bot.slack_outbox import SlackOutbox
from bot.restores.intake import RestoreIntake
from bot.snapshots import Snapshots
from bot.store import Credentials, Store, utc_now

log = logging.getLogger(__name__)

SNAPSHOT_PURGE_HOURS = 6  # snapshots past SNAPSHOT_RETENTION_DAYS go within hours
TAG_HEALTH_MAX_AGE_SECONDS = 60.0  # App Home may show a listing this old; previews never do

EXPIRY_SWEEP_SECONDS = 30
OUTBOX_DRAIN_SECONDS = 5.0  # at shutdown; milestones still queued are posted after the restart
IN_FLIGHT_STATES = tuple(
    s.value for s in RequestState if s not in TERMINAL_REQUEST_STATES and s != RequestState.DRAFT
)


class StoreTokenStore:
    """Constant Contact tokens kept in the database (the client's TokenStore protocol)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load_tokens(self) -> Any:
        from bot.constant_contact import StoredTokens

        saved = self.store.load_credentials()
        if saved is None:
            return None
        return StoredTokens(saved.refresh_token, saved.access_token, saved.access_expires_at)

    def save_tokens(self, tokens: Any) -> None:
        self.store.save_credentials(
            Credentials(tokens.refresh_token, tokens.access_token, tokens.access_expires_at)
        )


def cc_client_from_settings(settings: Settings, store: Store, **options: Any) -> Any:
    """The Constant Contact client, with its tokens kept in the database."""
    from bot.constant_contact import ConstantContactClient

    return ConstantContactClient(
        api_url=settings.cc_api_url,
        auth_url=settings.cc_auth_url,
        client_id=settings.cc_client_id or "",
        client_secret=settings.cc_client_secret.reveal() if settings.cc_client_secret else None,
        token_store=StoreTokenStore(store),
        initial_refresh_token=settings.cc_refresh_token.reveal() if settings.cc_refresh_token else None,
        **options,
    )


def background_slack_client(settings: Settings) -> WebClient:
    """For work after the ack: it may sleep on Slack's Retry-After, listener clients must not."""
    token = settings.slack_bot_token.reveal() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(ServerErrorRetryHandler(max_retry_count=2))
    return client


def outbox_slack_client(settings: Settings) -> WebClient:
    """For the outbox, which answers a 429 by holding the channel: no sleeping retry handler."""
    token = settings.slack_bot_token.reveal() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=15)


def listener_slack_client(settings: Settings) -> WebClient:
    token = settings.slack_bot_token.reveal() if settings.slack_bot_token else None
    return WebClient(token=token, base_url=settings.slack_api_url, timeout=10)


def slack_group_lookup(client: WebClient) -> Callable[[str], list[str]]:
    def group_id(group: str) -> str:
        # usergroups.users.list takes only an id (S…); a handle is looked up first.
        if group.startswith("S") and group.upper() == group:
            return group
        groups = client.usergroups_list()["usergroups"] or []
        for candidate in groups:
            if candidate.get("handle") == group:
                return str(candidate["id"])
        raise LookupError(f"no user group with the handle @{group}")

    def lookup(group: str) -> list[str]:
        try:
            response = client.usergroups_users_list(usergroup=group_id(group))
        except SlackApiError as error:
            if error.response.get("error") == "plan_upgrade_required":
                raise GroupsUnavailable() from error
            raise
        return list(response.get("users") or [])

    return lookup


def new_scheduler(workers: int = 16, poll_workers: int = 8) -> BackgroundScheduler:
    # The database is the truth; jobs live in memory and are rebuilt at start-up. A generous
    # misfire grace time keeps a busy pool from silently skipping polls. Status polls have
    # workers of their own: a burst of approvals would otherwise hold every worker while the
    # submissions wait for the rate limit, and finished deletions would go unseen meanwhile.
    return BackgroundScheduler(
        timezone="UTC",
        executors={"default": SchedulerPool(workers), POLL_EXECUTOR: SchedulerPool(poll_workers),
                   HOUSEKEEPING_EXECUTOR: SchedulerPool(2)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )


@dataclass
class Services:
    settings: Settings
    store: Store
    slack: WebClient
    approvers: ApproverDirectory
    scheduler: BackgroundScheduler
    clock: Callable[[], datetime] = utc_now
    started_at: float = field(default_factory=time.time)
    notifier: Notifier = field(init=False)
    decisions: Decisions = field(init=False)
    intake: Intake = field(init=False)
    restore_intake: RestoreIntake = field(init=False)
    catalog: TagCatalog = field(init=False)
    runner: Runner = field(init=False)
    reports: Reports = field(init=False)
    snapshots: Snapshots = field(init=False)
    metrics: Metrics = field(default_factory=Metrics)
    ledger: QuotaLedger = field(init=False)
    _cc: Any = None
    _cc_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False
    # Work that follows an ack runs here, not on Bolt's listener threads: fewer threads competing
    # for the interpreter keeps the next request's ack fast (see benchmarks/README.md).
    after_ack: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="after-ack")
    )
    # ... and it starts once the acks in flight are answered (see bot/ack_gate.py).
    ack_gate: AckGate = field(default_factory=AckGate)

    @classmethod
    def build(cls, settings: Settings, clock: Callable[[], datetime] = utc_now) -> "Services":
        store = Store(settings.db_path, clock=clock)
        slack = background_slack_client(settings)
        approvers = ApproverDirectory(
            settings.approver_ids, settings.approver_group, slack_group_lookup(listener_slack_client(settings))
        )
        return cls(settings, store, slack, approvers, new_scheduler(), clock)

    def __post_init__(self) -> None:
        self.ledger = QuotaLedger(self.store, self.clock, self.settings.cc_daily_quota, self.settings.quota_reserve,
                                  self.metrics)
        self.metrics.watch_slack(self.slack)
        self.notifier = Notifier(self.store, self.slack, self.approvers, outbox=SlackOutbox(),
                                 outbox_client=self.metrics.watch_slack(outbox_slack_client(self.settings)),
                                 large_tag_contacts=self.settings.large_tag_contacts)
        self.runner = Runner(self.store, lambda: self.cc, self.notifier, self.scheduler, self.settings, self.clock)
        self.notifier.progress = self.card_progress
        self.reports = Reports(self.store, self.notifier, self.approvers, self.runner.observation)
        self.decisions = Decisions(
            self.store, self.notifier, self.approvers, self.settings, self.clock, on_approved=self.on_approved,
            on_closed=self.runner.request_closed,
        )
        self.catalog = TagCatalog(lambda: self.cc.list_tags(include_count=True))
        self.reports.tag_health = self.tag_health
        self.runner.fresh_tags = lambda: self.catalog.listing().account_tags
        self.intake = Intake(self.store, self.catalog, self.clock, self.settings.required_approvals,
                             self.settings.large_tag_contacts, self.settings.max_entries)
        self.restore_intake = RestoreIntake(self.store, self.catalog, self.clock, self.settings.required_approvals)
        self.decisions.confirm_refusal = self.restore_intake.confirm_refusal
        self.snapshots = Snapshots(self.store, lambda: self.cc, self.settings, self.clock)
        self.runner.snapshots = self.snapshots
        self.snapshots.on_page = self._snapshot_page
        self.intake.snapshot_plan = self.snapshots.plan
        self.notifier.snapshot_plan = self.snapshots.plan
        self._watch_quota()

    def _watch_quota(self) -> None:
        check = QuotaCheck(self.ledger, self.settings.poll_min_seconds, self.settings.poll_max_seconds)
        self.intake.quota_check = check
        self.restore_intake.quota_check = check
        self.runner.quota_check = check
        self.reports.quota_today = lambda: budget_line(self.ledger.today(), self.clock())
        self.metrics.watch(Gauges(
            requests_by_state=self.store.count_requests_by_state,
            activities_in_flight=lambda: len(self.store.running_batches()),
            quota_today=self._quota_today,
            quota_limit=self.settings.cc_daily_quota,
            outbox_depth=self.notifier.outbox.depth,
            oldest_in_flight_seconds=self._oldest_in_flight_seconds,
        ))

    def _quota_today(self) -> tuple[int, int]:
        day = self.ledger.today()
        return day.used, day.left

    def _oldest_in_flight_seconds(self) -> float:
        since = self.store.oldest_in_flight_since()
        return max(0.0, (self.clock() - since).total_seconds()) if since else 0.0

    def tag_health(self) -> tag_health.TagHealth | None:
        try:
            return tag_health.health_of(self.catalog.recent(TAG_HEALTH_MAX_AGE_SECONDS).account_tags)
        except Exception as error:  # noqa: BLE001 - App Home shows "unavailable" rather than nothing at all
            log.warning("tag health unavailable: %s", type(error).__name__)
            return None

    def on_approved(self, request_id: int) -> None:
        log.info("approved", extra={"request_id": str(request_id), "outcome": "approved"})
        self.runner.start_request(request_id)

    def _snapshot_page(self, request_id: int) -> None:
        """A page of a snapshot recorded: counted, and the card's progress shows the recording."""
        self.metrics.snapshot_pages.inc()
        self.notifier.refresh_card(request_id)

    def card_progress(self, request_id: int) -> Any:
        request = self.store.get_request(request_id)
        return self.reports.progress(request) if request is not None else None

    @property
    def cc(self) -> Any:
        """The Constant Contact client, built on first use (only commands that need it pay for it)."""
        with self._cc_lock:
            if self._cc is None:
                self._cc = cc_client_from_settings(self.settings, self.store, on_call=self.ledger.record)
            return self._cc

    def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()
        self.decisions.finish_reached()
        self.decisions.expire_overdue()
        self.runner.recover()
        self.scheduler.add_job(
            self.decisions.expire_overdue, "interval", seconds=EXPIRY_SWEEP_SECONDS, id="expire-overdue",
            replace_existing=True, executor=HOUSEKEEPING_EXECUTOR,
        )
        self.snapshots.purge_expired()
        self.scheduler.add_job(
            self.snapshots.purge_expired, "interval", hours=SNAPSHOT_PURGE_HOURS, id="purge-snapshots",
            replace_existing=True, executor=HOUSEKEEPING_EXECUTOR,
        )

    def stop(self) -> None:
        """Idempotent: the signal handler and the normal exit path may both call it."""
        if self._stopped:
            return
        self._stopped = True
        self.after_ack.shutdown(wait=True)
        self.runner.stop_scheduling()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.notifier.outbox.stop(timeout=OUTBOX_DRAIN_SECONDS)
        if self._cc is not None:
            self._cc.close()
        self.store.close()

    def health(self) -> dict[str, Any]:
        try:
            database = "ok" if self.store.ping() and not self.store.pending_migrations() else "not migrated"
        except Exception as error:  # noqa: BLE001 - the health report must always answer
            database = f"error: {type(error).__name__}"
        in_flight = self.store.count_requests(IN_FLIGHT_STATES)
        last_cc = getattr(self._cc, "last_success_at", None) if self._cc is not None else None
        healthy = database == "ok" and self.scheduler.running
        return {
            "status": "ok" if healthy else "degraded",
            "database": database,
            "scheduler": "running" if self.scheduler.running else "stopped",
            "scheduled_jobs": len(self.scheduler.get_jobs()) if self.scheduler.running else 0,
            "in_flight_requests": in_flight,
            "last_constant_contact_success": (
                datetime.fromtimestamp(last_cc).astimezone().isoformat() if last_cc else None
            ),
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "constant_contact_quota": self._quota_report(),
        }

    def _quota_report(self) -> dict[str, Any] | str:
        try:
            day = self.ledger.today()
        except Exception as error:  # noqa: BLE001 - the health report must always answer
            return f"error: {type(error).__name__}"
        return {"day": day.day, "used": day.used, "left": day.left, "limit": day.limit, "reserve": day.reserve,
                "exhausted": day.exhausted}
