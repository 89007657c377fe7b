"""5. Slack cost at a human pace: messages, card edits and 429s with the emulator's rate limits on.

A request every few seconds (command, Request approval, Approve), some of them large enough for
three batches, activities of tens of seconds so progress edits happen; the emulator enforces
Slack's published limits from the first call (chat.postMessage about 1/s per channel with a short
burst, chat.update 50/min and the other tiers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.world import OPS_CHANNEL, PEOPLE

from benchmarks import flows, slack_cost
from benchmarks.harness import Outcome, Row, log_rows, wait_until


@dataclass(frozen=True)
class SlackSizes:
    requests: int = 8
    large_every: int = 4  # every n-th request has large_tags tags (3 batches)
    small_tags: int = 5
    large_tags: int = 1100
    seconds_between: float = 3.0
    activity_seconds: float = 20.0


QUICK = SlackSizes(requests=4, large_every=4, small_tags=3, large_tags=1100, seconds_between=2.0, activity_seconds=8.0)


def tag_counts(sizes: SlackSizes) -> list[int]:
    return [sizes.large_tags if (i + 1) % sizes.large_every == 0 else sizes.small_tags for i in range(sizes.requests)]


def run(directory: Path, sizes: SlackSizes) -> Outcome:
    outcome = Outcome("slack cost (steady)")
    counts = tag_counts(sizes)
    scene = flows.start_scene(directory, tags=sum(counts), activity_seconds=sizes.activity_seconds)
    scene.slack.rate_limits = True
    try:
        tag_ids = [t["tag_id"] for t in scene.cc.tags()]
        card_ts, missing = {}, 0
        for index, count in enumerate(counts):
            slot = time.monotonic() + sizes.seconds_between
            start = sum(counts[:index])
            posted = one_request(scene, tag_ids[start:start + count])
            if posted is None:
                missing += 1
            else:
                card_ts[posted[0]] = posted[1]
            time.sleep(max(0.0, slot - time.monotonic()))
        wait_until(lambda: flows.summaries_posted(scene.db_path) >= len(card_ts), timeout=300,
                   what="every summary", interval=0.5)
        cost = slack_cost.analyse(scene.slack.calls, card_ts, OPS_CHANNEL)
    finally:
        scene.close()
    label = f"{sizes.requests} requests, one every {sizes.seconds_between:g} s"
    outcome.rows.append(Row("slack cost", f"{label}: cards posted", f"{len(card_ts)} of {sizes.requests}",
                            target="all", met=missing == 0))
    outcome.rows += slack_cost.cost_rows(label, cost, reply_bound=5)
    outcome.rows += log_rows("slack cost", label, (directory / "bot.log").read_text())
    outcome.notes.append(
        f"{label}: {sizes.small_tags} tags each, every {sizes.large_every}th with {sizes.large_tags} (3 batches); "
        f"activities of {sizes.activity_seconds:g} s; Slack rate limits on from the first call. Thread replies "
        "allowed: 'submitted', one per finished batch when there are several, the summary.")
    return outcome


def one_request(scene: flows.Scene, tag_ids: list[str]) -> tuple[int, str] | None:
    """Command, Request approval, Approve; the request id and card ts, or None if no card appeared."""
    before = set(flows.previews(scene.slack))
    scene.driver.slash_command(PEOPLE.requester, OPS_CHANNEL, flows.request_text(tag_ids))
    shown = wait_until(lambda: {k: v for k, v in flows.previews(scene.slack).items() if k not in before},
                       timeout=30, what="the preview", interval=0.1)
    request_id, preview = next(iter(shown.items()))
    scene.driver.click(PEOPLE.requester, preview, "Request approval")
    try:
        card = wait_until(lambda: flows.cards(scene.slack).get(request_id), timeout=10, what="the card", interval=0.1)
    except TimeoutError:
        return None
    scene.driver.click(PEOPLE.approver, card, "Approve")
    return request_id, card.ts
