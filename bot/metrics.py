"""Metrics in Prometheus' text format, written by prometheus_client.

Counters and the ack histogram move as things happen; the gauges (requests by state, activities in
flight, quota, outbox depth) are read from their source at each scrape, so they cannot drift.
Each process (and each test world) has a registry of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from slack_sdk import WebClient
from slack_sdk.http_retry.handler import RetryHandler

__all__ = ["CONTENT_TYPE_LATEST", "Gauges", "Metrics", "SlackCallCounter"]

# Slack wants an ack within 3 s; the buckets are finest below that.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


@dataclass(frozen=True)
class Gauges:
    """Where each scraped gauge comes from; every callable is cheap (one SQL count or a length)."""

    requests_by_state: Callable[[], Mapping[str, int]]
    activities_in_flight: Callable[[], int]
    quota_today: Callable[[], tuple[int, int]]  # calls used today, and left (one read of the ledger)
    quota_limit: int
    outbox_depth: Callable[[], int]
    oldest_in_flight_seconds: Callable[[], float]


class _ScrapedGauges(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        g = self.gauges
        states = GaugeMetricFamily("deletetags_requests", "Deletion requests by state.", labels=["state"])
        for state, count in sorted(g.requests_by_state().items()):
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily("deletetags_activities_in_flight",
                                "Constant Contact activities submitted and not yet ended.", g.activities_in_flight())
        used, left = g.quota_today()
        yield GaugeMetricFamily("deletetags_cc_quota_used_today",
                                "Constant Contact calls counted today (UTC day) by the quota ledger.", used)
        yield GaugeMetricFamily("deletetags_cc_quota_left_today",
                                "Constant Contact calls left today before the daily quota.", left)
        yield GaugeMetricFamily("deletetags_cc_quota_limit", "Constant Contact calls allowed per UTC day.",
                                g.quota_limit)
        yield GaugeMetricFamily("deletetags_oldest_in_flight_seconds",
                                "Age of the oldest approved or running request not held for the quota (0: none).",
                                g.oldest_in_flight_seconds())
        yield GaugeMetricFamily("deletetags_slack_outbox_depth",
                                "Thread posts, DMs and card edits waiting to be sent to Slack.", g.outbox_depth())


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cc_calls = Counter("deletetags_cc_calls", "Constant Contact API calls sent.",
                                ["method", "endpoint"], registry=r)
        self.cc_errors = Counter("deletetags_cc_errors", "Constant Contact answers that were not 2xx "
                                 "(status 'none': no answer came back).", ["endpoint", "status"], registry=r)
        self.cc_rate_limited = Counter("deletetags_cc_rate_limited", "Constant Contact 429 answers, by kind "
                                       "(throttled, quota_exceeded, other).", ["endpoint", "kind"], registry=r)
        self.slack_calls = Counter("deletetags_slack_calls", "Slack Web API calls (each attempt), by method.",
                                   ["method"], registry=r)
        self.slack_errors = Counter("deletetags_slack_errors", "Slack Web API calls refused (ok: false, or an "
                                    "HTTP error other than 429), by method and error.", ["method", "error"],
                                    registry=r)
        self.slack_rate_limited = Counter("deletetags_slack_rate_limited", "Slack 429 answers, by method.",
                                          ["method"], registry=r)
        self.ack_seconds = Histogram("deletetags_slack_ack_seconds", "Time to answer (ack) a Slack request.",
                                     buckets=ACK_BUCKETS, registry=r)
        self.snapshot_pages = Counter("deletetags_snapshot_pages", "Pages of GET /contacts recorded in the "
                                      "snapshots taken before deleting.", registry=r)

    def watch(self, gauges: Gauges) -> None:
        self.registry.register(_ScrapedGauges(gauges))

    def cc_call(self, method: str, endpoint: str, status: int | None, error_key: str | None) -> None:
        self.cc_calls.labels(method, endpoint).inc()
        if status is not None and 200 <= status < 300:
            return
        self.cc_errors.labels(endpoint, str(status) if status is not None else "none").inc()
        if status == 429:
            self.cc_rate_limited.labels(endpoint, error_key or "other").inc()

    def watch_slack(self, client: WebClient) -> WebClient:
        """Count every HTTP attempt the client makes, and its 429s, without changing its retries."""
        client.retry_handlers.insert(0, SlackCallCounter(self))
        return client

    def text(self) -> bytes:
        return generate_latest(self.registry)


class SlackCallCounter(RetryHandler):
    """A retry handler that never retries: slack_sdk shows every answer to its retry handlers, the
    first one first, so this one sees each attempt (and the 429s that later handlers wait out)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=1 << 30)
        self.metrics = metrics

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Exception | None = None) -> bool:
        if response is None:
            return False  # no answer: nothing reached Slack that we can name
        method = str(request.url).rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        self.metrics.slack_calls.labels(method).inc()
        if response.status_code == 429:
            self.metrics.slack_rate_limited.labels(method).inc()
        elif response.status_code != 200:
            self.metrics.slack_errors.labels(method, str(response.status_code)).inc()
        elif isinstance(response.body, dict) and response.body.get("ok") is False:
            # Slack refuses most calls with HTTP 200 and {"ok": false, "error": "not_in_channel"}.
            self.metrics.slack_errors.labels(method, str(response.body.get("error") or "unknown")).inc()
        return False
