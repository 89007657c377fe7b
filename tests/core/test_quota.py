"""The daily-quota rules (pure), the ledger in a real SQLite file, and the client's call hook."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx

from bot.core import quota
from bot.constant_contact import CallSeen
from bot.quota_ledger import QuotaLedger
from bot.store import Store
from tests.test_constant_contact import FakeConstantContact, api_json, make_client

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_the_estimate_counts_checks_deletes_polls_and_no_snapshot_pages() -> None:
    few = quota.estimate([10, 20, None], account_tags=1_200, poll_min=2, poll_max=60)
    assert (few.checks, few.deletes, few.snapshot_pages) == (3, 1, 0)  # one GET per tag for up to 5 tags
    # 10 s expected: polls after 2, 6, 14 s, plus the margin.
    assert few.polls == 3 + quota.POLLS_MARGIN and few.total == 3 + 1 + few.polls
    many = quota.estimate([1] * 501, account_tags=1_200, poll_min=2, poll_max=60)
    # Two batches: the first re-read by listing the account (3 pages), the second's single tag by one GET.
    assert (many.checks, many.deletes) == (3 + 1, 2)
    large = quota.estimate([500_000], account_tags=10, poll_min=2, poll_max=60)
    assert large.polls > few.polls  # more contacts, a longer activity, more polls


def test_what_is_left_keeps_the_reserve_and_honours_constant_contacts_word() -> None:
    day = quota.QuotaDay("2026-03-01", limit=100, used=40, reserve=20)
    assert (day.left, day.left_for_new) == (60, 40)
    assert day.admits(quota.Estimate(10, 10, 20)) and not day.admits(quota.Estimate(10, 10, 21))
    assert not day.could_ever_admit(quota.Estimate(0, 1, 80))
    assert quota.QuotaDay("2026-03-01", 100, 40, 20, exhausted=True).left == 0


def test_the_reset_is_midnight_utc() -> None:
    assert quota.next_reset(NOON) == datetime(2026, 3, 2, tzinfo=timezone.utc)
    assert quota.until_reset(NOON) == "in 12 h 00 min"
    assert quota.utc_day(NOON) == "2026-03-01"


def test_the_ledger_counts_what_constant_contact_counts(tmp_path: Path) -> None:
    store = Store(tmp_path / "ledger.db")
    clock = [NOON]
    ledger = QuotaLedger(store, lambda: clock[0], limit=10_000, reserve=500)
    for status in (200, 201, 404, 500, None):  # answered, whatever the answer, or sent without an answer
        ledger.record(CallSeen("GET", "/contact_tags", status))
    ledger.record(CallSeen("GET", "/contact_tags", 429, "throttled"))  # refused: not counted
    assert (ledger.today().used, ledger.today().exhausted) == (5, False)
    ledger.record(CallSeen("GET", "/contact_tags", 429, "quota_exceeded"))
    assert ledger.today().exhausted and ledger.today().left == 0
    clock[0] = datetime(2026, 3, 2, 0, 0, 1, tzinfo=timezone.utc)
    assert (ledger.today().used, ledger.today().left) == (0, 10_000)
    store.close()


def test_the_client_reports_every_call_by_endpoint() -> None:
    answers = iter([api_json(401, {"error_key": "unauthorized"}),
                    api_json(200, {"activity_id": "a-1", "state": "processing"}),
                    api_json(429, {"error_key": "throttled"}), api_json(200, {"tags": []})])
    fake = FakeConstantContact(lambda request: next(answers))
    seen: list[CallSeen] = []
    with make_client(fake, on_call=seen.append) as client:
        client.get_activity("a-1")  # 401, a refresh (the token endpoint is not the API), 200
        client.list_tags()  # 429 throttled, waited out, 200
    activity = "/activities/{activity_id}"
    assert seen == [CallSeen("GET", activity, 401), CallSeen("GET", activity, 200),
                    CallSeen("GET", "/contact_tags", 429, "throttled"), CallSeen("GET", "/contact_tags", 200)]
    assert len(fake.token_requests) == 2  # the first token and the refresh after the 401: neither is in `seen`


def test_a_failing_hook_never_fails_the_call() -> None:
    fake = FakeConstantContact(lambda request: httpx.Response(200, json={"tags": []}))

    def broken(call: CallSeen) -> None:
        raise RuntimeError("database is locked")

    with make_client(fake, on_call=broken) as client:
        assert client.list_tags() == []
