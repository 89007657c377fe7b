"""4. Quota under load (and 5. Slack cost in a burst): one-batch requests approved all at once.

Each request is one signed command, one Request approval click and one Approve click on
`deletetags-bot run`; the Approve clicks go out 16 at a time, so all the deletions are in flight
together. The simulator's request log says how fast the bot used Constant Contact's 4 requests per
second while submissions were still queued, and whether it was ever throttled. Two bursts: 100
requests with the Slack emulator's rate limits off (Constant Contact alone), and a smaller one with
them on (switched on after the approvals, so the burst's own set-up is not throttled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.constant_contact import RequestRecord
from bot.sandbox.world import OPS_CHANNEL, PEOPLE

from benchmarks import flows, slack_cost
from benchmarks.harness import Outcome, Row, log_rows, wait_until

LIMIT_PER_SECOND = 4
SHARE_TARGET = 0.90
CREATE_PATH = "/v3/activities/contacts_tags_delete"


@dataclass(frozen=True)
class QuotaSizes:
    requests: int = 100
    activity_seconds: float = 5.0
    slack_burst: int = 30  # with Slack's limits on, each request's thread posts wait ~1 s apiece


QUICK = QuotaSizes(requests=24, activity_seconds=3.0, slack_burst=8)


@dataclass(frozen=True)
class Usage:
    api_calls: int
    posts: int
    backlog_seconds: float
    backlog_calls: int
    busiest_second: int
    throttled: int
    drained_seconds: float

    @property
    def backlog_rate(self) -> float:
        """Calls per second over the backlog; the limit allows LIMIT_PER_SECOND * (span + 1 s) in a span."""
        return self.backlog_calls / (self.backlog_seconds + 1.0)


def usage(log: list[RequestRecord], approvals_started: float) -> Usage:
    """Backlog: from the first tag-delete POST to the last one, when every submission was queued at once."""
    api = sorted((r for r in log if r.path.startswith("/v3/") and r.at >= approvals_started), key=lambda r: r.at)
    posts = [r for r in api if r.method == "POST" and r.path == CREATE_PATH]
    first, last = posts[0].at, posts[-1].at
    in_backlog = [r for r in api if first <= r.at <= last and r.status != 429]
    return Usage(len(api), len(posts), last - first, len(in_backlog), busiest_second([r.at for r in api]),
                 sum(1 for r in api if r.status == 429), api[-1].at - approvals_started)


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any one second."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_burst(directory: Path, count: int, activity_seconds: float, slack_limits: bool,
              ) -> tuple[Usage, slack_cost.SlackCost]:
    scene = flows.start_scene(directory, tags=count, activity_seconds=activity_seconds)
    try:
        tag_ids = [t["tag_id"] for t in scene.cc.tags()]
        flows.send_commands(scene.driver, [flows.request_text([tag]) for tag in tag_ids], 8)
        shown = flows.wait_for_count(lambda: flows.previews(scene.slack), len(tag_ids), "the previews", 120)
        flows.click_all(scene.driver, PEOPLE.requester, list(shown.values()), "Request approval", 8)
        posted = flows.wait_for_count(lambda: flows.cards(scene.slack), len(tag_ids), "the cards", 120)
        card_ts = {request_id: card.ts for request_id, card in posted.items()}
        approvals_started = scene.cc.request_log[-1].at if scene.cc.request_log else 0.0
        flows.click_all(scene.driver, PEOPLE.approver, list(posted.values()), "Approve", 16)
        scene.slack.rate_limits = slack_limits
        wait_until(lambda: flows.summaries_posted(scene.db_path) >= len(tag_ids),
                   timeout=count * 4 + 180, what="every summary", interval=0.5)
        cost = slack_cost.analyse(scene.slack.calls, card_ts, OPS_CHANNEL)
        return usage(list(scene.cc.request_log), approvals_started), cost
    finally:
        scene.close()


def quota_rows(label: str, used: Usage) -> list[Row]:
    share = used.backlog_rate / LIMIT_PER_SECOND
    return [
        Row("quota", f"{label}: rate while submissions were queued",
            f"{used.backlog_rate:.2f}/s over {used.backlog_seconds:.1f} s ({used.backlog_calls} calls)",
            f"{LIMIT_PER_SECOND}/s", f"{share:.0%}", f">= {SHARE_TARGET:.0%} of the limit", share >= SHARE_TARGET),
        Row("quota", f"{label}: throttled answers (429)", str(used.throttled), target="0", met=used.throttled == 0),
        Row("quota", f"{label}: most requests in any 1 s", str(used.busiest_second), target=f"<= {LIMIT_PER_SECOND}",
            met=used.busiest_second <= LIMIT_PER_SECOND),
        Row("quota", f"{label}: API calls, approvals to the last call",
            f"{used.api_calls} in {used.drained_seconds:.1f} s ({used.posts} POSTs)"),
    ]


def run(directory: Path, sizes: QuotaSizes) -> Outcome:
    outcome = Outcome("quota and slack cost (burst)")
    for count, slack_limits in ((sizes.requests, False), (sizes.slack_burst, True)):
        where = directory / ("slack-limits-on" if slack_limits else "slack-limits-off")
        where.mkdir(parents=True, exist_ok=True)
        used, cost = run_burst(where, count, sizes.activity_seconds, slack_limits)
        label = f"burst of {count}, Slack limits {'on' if slack_limits else 'off'}"
        outcome.rows += quota_rows(label, used)
        outcome.rows += slack_cost.cost_rows(label, cost, reply_bound=3)
        outcome.rows += log_rows("slack cost", label, (where / "bot.log").read_text())
    outcome.notes.append(
        f"Requests of one tag each, activities of {sizes.activity_seconds:g} s; the backlog window runs from the "
        "first to the last tag-delete POST, when submissions were waiting for the rate limit; its rate is "
        "calls / (span + 1 s), the most the limit admits in that span being 4 * (span + 1 s).")
    return outcome
