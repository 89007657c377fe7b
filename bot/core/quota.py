"""Constant Contact's daily call quota: what a request will cost, what is left today, and the words
for both. Pure: the ledger itself lives in the store, the counting in the client's call hook.

Constant Contact allows 10,000 calls a day per API key, counted by UTC day and reset at 00:00 UTC,
then answers 429 `quota_exceeded`. The token endpoint (authz.constantcontact.com) is not part of
that quota: it has a rate of its own (1 request a second), so token refreshes are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MAX_TAG_IDS = 500  # tags per delete activity, and tags per listing page
LOOKUPS_PER_TAG_UP_TO = 5  # the runner re-reads up to this many tags one GET each before a POST
# How long Constant Contact takes for one delete activity is not documented. The guess: a fixed
# start-up plus a pace in contacts un-tagged per second; the reserve absorbs a wrong guess.
ACTIVITY_START_SECONDS = 10.0
CONTACTS_PER_SECOND = 500.0
POLL_GROWTH = 2.0  # the poll delay roughly doubles while an activity shows no pace yet
POLLS_MARGIN = 2  # the poll that sees the end, and one for a slow start


@dataclass(frozen=True)
class Estimate:
    """Constant Contact calls one request will make from approval to summary."""

    checks: int  # re-reading the batch's tags right before each delete POST
    deletes: int  # one POST per batch of up to 500 tags
    polls: int  # status polls until every activity ends (expected, not guaranteed)
    snapshot_pages: int = 0  # GET /contacts pages of the snapshot taken before deleting (bot/snapshots.py)
    # A restore (bot/restores): `checks` are then the tags it creates, `deletes` its tagging activities.
    restore: bool = False

    @property
    def total(self) -> int:
        return self.checks + self.deletes + self.polls + self.snapshot_pages

    def as_record(self) -> dict[str, int]:
        return {"checks": self.checks, "deletes": self.deletes, "polls": self.polls,
                "snapshot_pages": self.snapshot_pages, **({"restore": 1} if self.restore else {})}

    @classmethod
    def from_record(cls, record: dict[str, int] | None) -> Estimate | None:
        if not record:
            return None
        return cls(int(record.get("checks", 0)), int(record.get("deletes", 0)), int(record.get("polls", 0)),
                   int(record.get("snapshot_pages", 0)), bool(record.get("restore", 0)))


@dataclass(frozen=True)
class QuotaDay:
    """One UTC day of the quota as the ledger saw it."""

    day: str  # YYYY-MM-DD, UTC
    limit: int
    used: int
    reserve: int  # kept for status polls of deletions already running
    exhausted: bool = False  # Constant Contact itself said quota_exceeded today (another user of the key?)

    @property
    def left(self) -> int:
        return 0 if self.exhausted else max(0, self.limit - self.used)

    @property
    def left_for_new(self) -> int:
        """What a request not yet started may use: what is left, less the reserve."""
        return max(0, self.left - self.reserve)

    def admits(self, estimate: Estimate) -> bool:
        return estimate.total <= self.left_for_new

    def could_ever_admit(self, estimate: Estimate) -> bool:
        return estimate.total <= max(0, self.limit - self.reserve)


def utc_day(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d")


def next_reset(moment: datetime) -> datetime:
    midnight = moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=1)


# --- the estimate ---------------------------------------------------------------------------------


def batches_of(contact_counts: Sequence[int | None]) -> list[list[int]]:
    counts = [c or 0 for c in contact_counts]
    return [counts[i:i + MAX_TAG_IDS] for i in range(0, len(counts), MAX_TAG_IDS)]


def check_calls(batch_size: int, account_tags: int) -> int:
    """The re-read before one batch's POST: a GET per tag for a few, else one listing of the account."""
    if batch_size <= LOOKUPS_PER_TAG_UP_TO:
        return batch_size
    return max(1, math.ceil(account_tags / MAX_TAG_IDS))


def expected_polls(contacts: int, poll_min: float, poll_max: float) -> int:
    """Polls of one activity: delays from `poll_min` growing to `poll_max` until its expected end."""
    duration = ACTIVITY_START_SECONDS + contacts / CONTACTS_PER_SECOND
    polls, waited, delay = 0, 0.0, poll_min
    while waited < duration:
        waited += delay
        polls += 1
        delay = min(poll_max, delay * POLL_GROWTH)
    return polls + POLLS_MARGIN


def estimate(contact_counts: Sequence[int | None], account_tags: int, poll_min: float, poll_max: float,
             snapshot: bool = False) -> Estimate:
    batches = batches_of(contact_counts)
    return Estimate(
        checks=sum(check_calls(len(b), account_tags) for b in batches),
        deletes=len(batches),
        polls=sum(expected_polls(sum(b), poll_min, poll_max) for b in batches),
        snapshot_pages=sum(snapshot_pages(b) for b in batches) if snapshot else 0,
    )


def restore_estimate(activity_contacts: Sequence[int], tags: int, poll_min: float, poll_max: float,
                     names_taken: int = 0, account_tags: int = 0) -> Estimate:
    """A restore: one POST /contact_tags per tag, and for each name already taken (409) a listing of
    the account to find that tag; one tagging activity per entry of `activity_contacts` that has
    contacts (a tag on none posts nothing), each polled like a delete."""
    posted = [c for c in activity_contacts if c > 0]
    lookups = names_taken * max(1, math.ceil(account_tags / MAX_TAG_IDS))
    return Estimate(checks=tags + lookups, deletes=len(posted),
                    polls=sum(expected_polls(c, poll_min, poll_max) for c in posted), restore=True)


SNAPSHOT_PAGE_CONTACTS = 500  # GET /contacts answers up to 500 contacts a page
SNAPSHOT_TAGS_PER_LISTING = 50  # and filters on up to 50 tags a listing


def snapshot_pages(batch_counts: Sequence[int]) -> int:
    """Pages of GET /contacts to snapshot one batch: each group of 50 tags is listed on its own; a contact
    carrying several tags of a group is listed once, so this is an upper bound."""
    groups = [batch_counts[i:i + SNAPSHOT_TAGS_PER_LISTING] for i in range(0, len(batch_counts), SNAPSHOT_TAGS_PER_LISTING)]
    return sum(max(1, math.ceil(sum(group) / SNAPSHOT_PAGE_CONTACTS)) for group in groups)


# --- words ----------------------------------------------------------------------------------------


def until_reset(now: datetime) -> str:
    minutes = max(1, math.ceil((next_reset(now) - now).total_seconds() / 60))
    if minutes < 60:
        return f"in {minutes} min"
    return f"in {minutes // 60} h {minutes % 60:02d} min"


def estimate_line(estimate: Estimate) -> str:
    if estimate.restore:
        return (f"About {estimate.total:,} Constant Contact calls: {estimate.checks:,} to create the tags "
                "(and find those whose name is taken), "
                f"{estimate.deletes:,} tagging {'request' if estimate.deletes == 1 else 'requests'}, "
                f"~{estimate.polls:,} status polls.")
    return (f"About {estimate.total:,} Constant Contact calls: {estimate.checks:,} to re-read the tags before "
            f"deleting, {estimate.deletes:,} delete {'request' if estimate.deletes == 1 else 'requests'}, "
            f"~{estimate.polls:,} status polls, {estimate.snapshot_pages:,} snapshot pages.")


def budget_line(day: QuotaDay, now: datetime) -> str:
    return (f"{day.used:,} of {day.limit:,} used today, {day.left:,} left"
            + (" (Constant Contact says the quota is used up)" if day.exhausted else "")
            + f"; {day.reserve:,} kept for running deletions; resets at 00:00 UTC ({until_reset(now)})")


def refusal_text(estimate: Estimate, day: QuotaDay, now: datetime) -> str:
    """Why a preview is refused: the request cannot finish within today's quota."""
    need = f"This {'restore' if estimate.restore else 'request'} needs about {estimate.total:,} Constant Contact calls"
    nothing = "Nothing was recorded or changed." if estimate.restore else "Nothing was recorded or deleted."
    if not day.could_ever_admit(estimate):
        return (f":no_entry: {need}, more than one day's quota allows ({day.limit:,} a day, "
                f"{day.reserve:,} of them kept for running deletions). Split it into smaller requests. {nothing}")
    return (f":no_entry: {need}, but only {day.left_for_new:,} are left for new requests today "
            f"({budget_line(day, now)}). Try again after the reset, or ask for fewer tags. {nothing}")


def hold_text(request_id: int, estimate: Estimate, day: QuotaDay, now: datetime) -> str:
    return (f":hourglass_flowing_sand: Request #{request_id} is held until 00:00 UTC ({until_reset(now)}): it needs "
            f"about {estimate.total:,} Constant Contact calls and only {day.left_for_new:,} are left for new "
            f"requests today ({day.used:,} of {day.limit:,} used, {day.reserve:,} kept for running deletions). "
            f"Nothing has been {'changed' if estimate.restore else 'deleted'}; it starts by itself after the reset.")


def hold_line(held_until: datetime, restore: bool = False) -> str:
    return (f":hourglass_flowing_sand: Held for Constant Contact's daily quota until "
            f"{held_until.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC; nothing {'changed' if restore else 'deleted'} yet.")
