"""6. Memory: resident memory of `deletetags-bot run` idle, after 1,000 requests, after 2,000.

A round is `per_round` signed commands (3 tags each); most previews are cancelled with a click on
their Cancel button, every `approve_every`-th goes through Request approval and Approve and is
deleted for real (on its own tags, so later previews still match). RSS is read from
/proc/<pid>/status (VmRSS) once the round's deletions have finished and the process has been
quiet for a moment.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.world import PEOPLE

from benchmarks import flows
from benchmarks.harness import Outcome, Row, rss_mb, wait_until

RSS_LIMIT_MB = 150.0
GROWTH_LIMIT = 0.10
SETTLE_SECONDS = 3.0
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class MemorySizes:
    per_round: int = 1000
    approve_every: int = 10
    tags_per_request: int = 3
    shared_tags: int = 300
    concurrency: int = 8


QUICK = MemorySizes(per_round=150, approve_every=10, tags_per_request=3, shared_tags=100, concurrency=8)


@dataclass(frozen=True)
class Round:
    cancelled: int
    approved: int
    rss_mb: float
    seconds: float


def settled_rss(pid: int) -> float:
    time.sleep(SETTLE_SECONDS)
    return rss_mb(pid)


def run_round(scene: flows.Scene, sizes: MemorySizes, shared: list[str], own: list[str], offset: int) -> Round:
    started = time.monotonic()
    approving = set(range(0, sizes.per_round, sizes.approve_every))
    texts, own_used = [], 0
    for index in range(sizes.per_round):
        if index in approving:
            chosen = own[own_used:own_used + sizes.tags_per_request]
            own_used += sizes.tags_per_request
        else:
            start = (offset + index * sizes.tags_per_request) % (len(shared) - sizes.tags_per_request)
            chosen = shared[start:start + sizes.tags_per_request]
        texts.append(flows.request_text(chosen))
    known = set(flows.previews(scene.slack))
    flows.send_commands(scene.driver, texts, sizes.concurrency)
    shown = flows.wait_for_count(lambda: {k: v for k, v in flows.previews(scene.slack).items() if k not in known},
                                 sizes.per_round, "the round's previews", 300)
    # Request ids follow arrival order, not the order the texts were written in: go by the tags shown.
    own_set = set(own[:own_used])
    to_approve = [p for p in shown.values() if own_set & set(UUID.findall(str(p.blocks)))]
    to_cancel = [p for p in shown.values() if not own_set & set(UUID.findall(str(p.blocks)))]
    flows.click_all(scene.driver, PEOPLE.requester, to_cancel, "Cancel", sizes.concurrency)
    flows.click_all(scene.driver, PEOPLE.requester, to_approve, "Request approval", sizes.concurrency)
    approved_ids = [int(flows.button_value(p.blocks, flows.CONFIRM) or 0) for p in to_approve]
    posted = flows.wait_for_count(lambda: {k: v for k, v in flows.cards(scene.slack).items() if k in approved_ids},
                                  len(approved_ids), "the round's cards", 120)
    flows.click_all(scene.driver, PEOPLE.approver, list(posted.values()), "Approve", sizes.concurrency)
    wait_until(lambda: flows.count_in_states(scene.db_path, flows.TERMINAL, approved_ids) >= len(approved_ids),
               timeout=300, what="the round's deletions", interval=0.5)
    cancelled = flows.count_in_states(scene.db_path, ("cancelled",), sorted(shown))
    return Round(cancelled, len(approved_ids), settled_rss(scene.bot.pid), time.monotonic() - started)


def run(directory: Path, sizes: MemorySizes) -> Outcome:
    outcome = Outcome("memory")
    own_count = 2 * len(range(0, sizes.per_round, sizes.approve_every)) * sizes.tags_per_request
    scene = flows.start_scene(directory, tags=sizes.shared_tags + own_count, activity_seconds=1.0)
    try:
        tag_ids = [t["tag_id"] for t in scene.cc.tags()]
        shared, own = tag_ids[:sizes.shared_tags], tag_ids[sizes.shared_tags:]
        idle = settled_rss(scene.bot.pid)
        half = len(own) // 2
        first = run_round(scene, sizes, shared, own[:half], 0)
        second = run_round(scene, sizes, shared, own[half:], 1)
    finally:
        scene.close()
    growth = (second.rss_mb - first.rss_mb) / first.rss_mb
    n = sizes.per_round
    outcome.rows += [
        Row("memory", "RSS idle (started, healthy, no request yet)", f"{idle:.1f} MB"),
        Row("memory", f"RSS after {n:,} requests", f"{first.rss_mb:.1f} MB", target=f"< {RSS_LIMIT_MB:g} MB",
            met=first.rss_mb < RSS_LIMIT_MB),
        Row("memory", f"RSS after {2 * n:,} requests", f"{second.rss_mb:.1f} MB", target=f"< {RSS_LIMIT_MB:g} MB",
            met=second.rss_mb < RSS_LIMIT_MB),
        Row("memory", f"growth across the second {n:,}", f"{growth:+.1%}", target=f"<= {GROWTH_LIMIT:.0%}",
            met=growth <= GROWTH_LIMIT),
    ]
    for label, done in (("first", first), ("second", second)):
        outcome.notes.append(f"{label} round: {done.cancelled} cancelled, {done.approved} approved and deleted, "
                             f"{done.seconds:.0f} s.")
    return outcome
