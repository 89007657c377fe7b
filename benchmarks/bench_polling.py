"""3. Polling economy and freshness: status calls per activity and how late the summary appears.

Two measurements of the same policy (`bot.core.polling.next_delay` as the `Runner` uses it):

* end to end, at 1/SCALE of real time: the real bot (Runner, scheduler, store, notifier) in this
  process, approving 50 one-tag requests whose activities last 10 s to 10 min divided by SCALE, with
  POLL_MIN/POLL_MAX and the 4/s rate limit (client and simulator) scaled the same way. Calls are
  the simulator's `GET /v3/activities/{id}` count; delay is from the activity's end to the summary's
  ts in the thread, multiplied back by SCALE. Fixed 1 s / 30 s polling run as plain loops against
  a second simulator (no rate limit), scaled the same way; the oracle is one call, no delay.
* a deterministic full-scale model (`polling_model`): the same policy and the simulator's progress
  model, at real durations, alone and behind the shared 4-per-1.05 s limiter.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.config import NEEDS_RUN_HTTP, load_settings
from bot.core.polling import Bounds
from bot.process import BotProcess
from bot.runtime import Services, cc_client_from_settings
from bot.sandbox.constant_contact import ConstantContactSimulator
from bot.sandbox.slack import SlackDriver
from bot.sandbox.world import OPS_CHANNEL, PEOPLE, SIGNING_SECRET, start_outside_world

from benchmarks import flows, polling_model
from benchmarks.harness import Outcome, Row, log_rows, percentile, wait_until

MEDIAN_TARGET = 3.0
P95_TARGET = 10.0
POLL_MIN, POLL_MAX = 2.0, 60.0


@dataclass(frozen=True)
class PollingSizes:
    activities: int = 50
    shortest: float = 10.0
    longest: float = 600.0
    scale: float = 10.0


QUICK = PollingSizes(activities=12, shortest=10.0, longest=300.0, scale=30.0)


@dataclass(frozen=True)
class Strategy:
    """One way of polling, as seen on the activities it polled (unscaled seconds)."""

    name: str
    results: list[polling_model.Polled]

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.results)

    def delay(self, q: float) -> float:
        return percentile([r.delay for r in self.results], q)


def spread(sizes: PollingSizes, seed: int = 3) -> list[float]:
    """Durations spaced evenly on a log scale from shortest to longest, in a shuffled (seeded) order."""
    count = sizes.activities
    ratio = sizes.longest / sizes.shortest
    durations = [sizes.shortest * ratio ** (i / max(1, count - 1)) for i in range(count)]
    random.Random(seed).shuffle(durations)
    return durations


def linear_spread(sizes: PollingSizes) -> list[float]:
    step = (sizes.longest - sizes.shortest) / max(1, sizes.activities - 1)
    return [sizes.shortest + i * step for i in range(sizes.activities)]


# --- end to end, scaled ----------------------------------------------------------------------------


@dataclass
class ScaledBot:
    cc: ConstantContactSimulator
    bot: BotProcess
    driver: SlackDriver

    def stop(self) -> None:
        for stop in (self.bot.stop, self.driver.emulator.stop, self.cc.stop):
            try:
                stop()
            except Exception:  # noqa: BLE001 - tear everything down regardless
                pass


def start_scaled_bot(directory: Path, scale: float, tag_count: int) -> ScaledBot:
    """The bot in this process, with every time constant of polling and the rate limit scaled."""
    env = {"POLL_MIN_SECONDS": str(POLL_MIN / scale), "POLL_MAX_SECONDS": str(POLL_MAX / scale),
           "RECONCILE_DELAY_SECONDS": str(30 / scale), "LOG_LEVEL": "WARNING"}
    cc, slack, environment = start_outside_world(directory, tags=tag_count, env=env)
    cc.requests_per_second = int(4 * scale)
    settings = load_settings(environment, NEEDS_RUN_HTTP)
    services = Services.build(settings)
    # The client's 4/s budget is not a setting: build the client the bot would build, at the scaled rate.
    services._cc = cc_client_from_settings(settings, services.store, requests_per_second=4 * scale)
    # Slack's pace (one message a second per channel) on the same accelerated clock.
    services.notifier.outbox.speedup = scale
    bot = BotProcess(settings, services=services).start()
    assert bot.http is not None
    driver = SlackDriver(slack, f"{bot.http.url}/slack/events", SIGNING_SECRET, http_timeout=30.0)
    return ScaledBot(cc, bot, driver)


class LogCounter(logging.Handler):
    """Keeps the text of every record at WARNING or above (the bot runs in this process here)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_bot(directory: Path, sizes: PollingSizes, durations: Sequence[float], logged: LogCounter) -> Strategy:
    world = start_scaled_bot(directory, sizes.scale, len(durations))
    logging.getLogger().addHandler(logged)
    try:
        store, slack = world.bot.services.store, world.driver.emulator
        tag_ids = [t["tag_id"] for t in world.cc.tags()]
        flows.in_parallel(lambda tag: world.driver.slash_command(PEOPLE.requester, OPS_CHANNEL,
                                                                 flows.request_text([tag])), tag_ids, 8)
        shown = flows.wait_for_count(lambda: flows.previews(slack), len(tag_ids), "the previews", 120)
        flows.click_all(world.driver, PEOPLE.requester, list(shown.values()), "Request approval", 8)
        posted = flows.wait_for_count(lambda: flows.cards(slack), len(tag_ids), "the cards", 120)
        world.cc.next_activity_seconds = [d / sizes.scale for d in durations]
        flows.click_all(world.driver, PEOPLE.approver, list(posted.values()), "Approve", 16)
        wait_until(lambda: all(store.notices(i).get("summary") == "posted" for i in posted),
                   timeout=sizes.longest / sizes.scale * 3 + 60, what="every summary", interval=0.2)
        return Strategy("bot (end to end)", bot_results(world, list(posted), sizes.scale))
    finally:
        logging.getLogger().removeHandler(logged)
        world.stop()


def bot_results(world: ScaledBot, request_ids: list[int], scale: float) -> list[polling_model.Polled]:
    store, slack = world.bot.services.store, world.driver.emulator
    activities = {a["activity_id"]: a for a in world.cc.activities()}
    gets: dict[str, int] = {}
    for record in list(world.cc.request_log):
        if record.method == "GET" and record.path.startswith("/v3/activities/"):
            key = record.path.rsplit("/", 1)[-1]
            gets[key] = gets.get(key, 0) + 1
    results = []
    for request_id in request_ids:
        request = store.get_request(request_id)
        activity_id = store.batches(request_id)[0].activity_id
        activity = activities[activity_id]
        ended = activity["created_at"] + activity["duration"]
        summary = next(m for m in slack.thread(OPS_CHANNEL, request.card_ts) if "is finished" in m.text)
        results.append(polling_model.Polled(activity["duration"] * scale, gets.get(activity_id, 0),
                                            (float(summary.ts) - ended) * scale))
    return results


# --- fixed-period loops, scaled ----------------------------------------------------------------------


def run_fixed_loops(durations: Sequence[float], periods: Sequence[float], scale: float) -> list[Strategy]:
    """Plain loops: poll each activity every period from its creation until it ends.

    One period at a time (two sets of loops together would slow each other down): create the
    activities, then one loop per activity, all at once.
    """
    cc = ConstantContactSimulator(requests_per_second=1_000_000, daily_quota=10**9).start()
    try:
        token = access_token(cc)
        strategies = []
        for period in periods:
            cc.next_activity_seconds = [d / scale for d in durations]
            with httpx.Client(base_url=cc.base_url, headers={"Authorization": f"Bearer {token}"}) as http:
                ids = [http.post("/activities/contacts_tags_delete",
                                 json={"tag_ids": [cc.add_tag(f"loop {period:g} {i}")]}).json()["activity_id"]
                       for i in range(len(durations))]
            strategies.append(Strategy(f"fixed {period:g} s (end to end)",
                                       poll_every(cc, token, ids, period / scale, scale)))
        return strategies
    finally:
        cc.stop()


def poll_every(cc: ConstantContactSimulator, token: str, activity_ids: list[str], period: float,
               scale: float) -> list[polling_model.Polled]:
    """One loop per activity, all at once (one period at a time: two loops together would slow each other)."""
    records = {a["activity_id"]: a for a in cc.activities()}
    limits = httpx.Limits(max_connections=len(activity_ids), max_keepalive_connections=len(activity_ids))
    with httpx.Client(base_url=cc.base_url, headers={"Authorization": f"Bearer {token}"}, limits=limits) as http:
        return flows.in_parallel(lambda i: poll_until_done(cc, http, records[i], period, scale), activity_ids,
                                 len(activity_ids))


def access_token(cc: ConstantContactSimulator) -> str:
    form = {"grant_type": "refresh_token", "refresh_token": cc.issue_refresh_token(),
            "client_id": cc.client_id, "client_secret": cc.client_secret}
    return str(httpx.post(f"{cc.auth_url}/token", data=form).json()["access_token"])


def poll_until_done(cc: ConstantContactSimulator, http: httpx.Client, record: dict, period: float,
                    scale: float) -> polling_model.Polled:
    """GET the activity at created + k * period (k = 1, 2, ...) until it has ended."""
    calls = 0
    while True:
        calls += 1
        time.sleep(max(0.0, record["created_at"] + calls * period - cc.now()))
        state = http.get(f"/activities/{record['activity_id']}").json()["state"]
        if state in ("completed", "failed", "cancelled", "timed_out"):
            late = cc.now() - record["created_at"] - record["duration"]
            return polling_model.Polled(record["duration"] * scale, calls, late * scale)


# --- the table ---------------------------------------------------------------------------------------


def strategy_rows(label: str, strategies: list[Strategy], targeted: Strategy | None, fixed30: Strategy | None,
                  ) -> list[Row]:
    rows = []
    for strategy in strategies:
        is_target = strategy is targeted
        calls_met = strategy.calls <= fixed30.calls if is_target and fixed30 else None
        rows.append(Row("polling", f"{label}: {strategy.name} status calls", str(strategy.calls),
                        str(fixed30.calls) if is_target and fixed30 else "",
                        f"{strategy.calls / fixed30.calls:.2f}x" if is_target and fixed30 else "",
                        "<= fixed 30 s" if is_target else "", calls_met))
        rows.append(Row("polling", f"{label}: {strategy.name} delay p50 / p95 / max",
                        f"{strategy.delay(50):.1f} / {strategy.delay(95):.1f} / {strategy.delay(100):.1f} s",
                        target=f"p50 < {MEDIAN_TARGET:g} s, p95 < {P95_TARGET:g} s" if is_target else "",
                        met=(strategy.delay(50) < MEDIAN_TARGET and strategy.delay(95) < P95_TARGET)
                        if is_target else None))
    return rows


def model_strategies(durations: Sequence[float]) -> tuple[Strategy, Strategy, list[Strategy]]:
    bounds = Bounds(POLL_MIN, POLL_MAX)
    alone = Strategy("bot policy, activities polled alone", polling_model.adaptive(
        durations, bounds, polling_model.Limiter(None)))
    shared = Strategy("bot policy, 4/s shared by all, polls before waiting POSTs", polling_model.adaptive(
        durations, bounds, polling_model.Limiter(4)))
    first_come = Strategy("bot policy, 4/s shared by all, first come first served", polling_model.adaptive(
        durations, bounds, polling_model.Limiter(4), max_overtakes=0))
    others = [first_come,
              Strategy("fixed 1 s", polling_model.fixed(durations, 1.0)),
              Strategy("fixed 30 s", polling_model.fixed(durations, 30.0)),
              Strategy("oracle", polling_model.oracle(durations))]
    return alone, shared, others


def worst(strategy: Strategy, count: int = 3) -> str:
    late = sorted(strategy.results, key=lambda r: -r.delay)[:count]
    return ", ".join(f"{r.duration:.0f} s activity seen {r.delay:.1f} s late after {r.calls} calls" for r in late)


def run(directory: Path, sizes: PollingSizes) -> Outcome:
    outcome = Outcome("polling")
    durations = spread(sizes)
    started = time.monotonic()
    logged = LogCounter()
    bot = run_bot(directory, sizes, durations, logged)
    fixed1, fixed30 = run_fixed_loops(durations, (1.0, 30.0), sizes.scale)
    oracle = Strategy("oracle", polling_model.oracle(durations))
    label = f"e2e 1/{sizes.scale:g} scale"
    outcome.rows += strategy_rows(label, [bot, fixed1, fixed30, oracle], bot, fixed30)
    outcome.rows += log_rows("polling", label, "\n".join(logged.lines))
    for name, spacing in (("log-spaced", durations), ("linear", linear_spread(sizes))):
        alone, shared, others = model_strategies(spacing)
        fixed30_model = next(o for o in others if o.name == "fixed 30 s")
        outcome.rows += strategy_rows(f"model, {name}", [alone, shared], alone, fixed30_model)
        outcome.rows += strategy_rows(f"model, {name}", others, None, None)
        outcome.notes.append(f"model, {name}: latest summaries of the policy alone: {worst(alone)}.")
    outcome.notes.append(f"e2e: latest summaries: {worst(bot)}.")
    outcome.notes.append(
        f"{sizes.activities} activities of {sizes.shortest:g} s to {sizes.longest:g} s (log-spaced, shuffled); "
        f"end to end took {time.monotonic() - started:.0f} s of wall time at 1/{sizes.scale:g} scale. "
        f"Fixed delays of the machinery (scheduler, HTTP, Slack post) are multiplied by {sizes.scale:g} too.")
    return outcome
