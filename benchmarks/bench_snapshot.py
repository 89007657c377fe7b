"""8. Snapshots: the recording before a batch's delete POST, and the delay it adds before that POST.

Recording: `bot.snapshots.Snapshots.ensure(batch)` with a real `Store` (a fresh SQLite file) and the
`ConstantContactClient` that `cc_client_from_settings` builds (its own 4/s limiter, tokens in the
store), in a child process of its own (`python -m benchmarks.bench_snapshot record SPEC OUT`), against
the simulator in this process with its real 4/s limit. The account holds 500 tags carrying 200,000
taggings (Zipf-like sizes, contacts shared between tags, a few deleted or unsubscribed); the batch is
those 500 tags in a shuffled order. From the simulator's request log: pages used against the least
number of 500-contact pages the bot's 50-tag listings could use; the share of the 4/s budget used
while `ensure` ran. From the child's /proc: its peak resident memory while recording, above what it
held before.

Delay: `deletetags-bot run` as a child process (as the Procfile starts it); a one-batch request whose
tags carry 5,000 taggings goes through command -> Request approval -> Approve, with SNAPSHOTS=true and,
as the baseline, SNAPSHOTS=false; the delay is from the Approve click to the arrival of the first
tag-delete POST in the simulator's request log.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.constant_contact import ConstantContactSimulator, RequestRecord
from bot.sandbox.world import PEOPLE

from benchmarks import flows
from benchmarks.harness import REPO_ROOT, Outcome, Row, median, ratio, secs, times, wait_until

PAGE = 500  # contacts a page of GET /contacts, the most Constant Contact sends
TAGS_PER_LISTING = 50  # tags named in one GET /contacts
LIMIT_PER_SECOND = 4
PAGES_TARGET = 1.1
SHARE_TARGET = 0.90
MEMORY_TARGET_MB = 150.0
CREATE_PATH = "/v3/activities/contacts_tags_delete"
# Contacts of the shared pool by status (the rest of a tag's contacts are its own, and active).
POOL_STATUSES = (("active", 0.94), ("unsubscribed", 0.03), ("deleted", 0.02), ("temp_hold", 0.01))
OWN_SHARE = 0.3  # of each tag's contacts, carried by no other tag (an import, an event sign-up)
POOL_PER_TAGGING = 0.5  # shared pool size per tagging drawn from it


@dataclass(frozen=True)
class SnapshotSizes:
    tags: int = 500
    taggings: int = 200_000
    delay_tags: int = 50
    delay_taggings: int = 5_000
    delay_repeats: int = 3
    # The simulator answers a page in a few ms over loopback; Constant Contact will not. The recording
    # again, smaller, with this much latency added to every answer (an assumption, not a measurement).
    slow_taggings: int = 50_000
    slow_latency: float = 0.4


QUICK = SnapshotSizes(tags=500, taggings=50_000, delay_repeats=1, slow_taggings=12_500)


# --- the account ------------------------------------------------------------------------------------


def tag_sizes(tags: int, taggings: int, rng: random.Random) -> list[int]:
    """Zipf-like (1/rank) sizes summing to `taggings`: a few tags of tens of thousands, many of tens."""
    weights = [1 / (rank + 1) for rank in range(tags)]
    scale = taggings / sum(weights)
    sizes = [max(1, int(w * scale)) for w in weights]
    while (short := taggings - sum(sizes)) != 0:  # make the total exact
        index = rng.randrange(tags)
        sizes[index] += 1 if short > 0 else (-1 if sizes[index] > 1 else 0)
    return sizes


@dataclass(frozen=True)
class Account:
    tag_ids: list[str]  # in the order the request names them
    members: dict[str, frozenset[str]]  # tag id -> every contact carrying it, deleted ones included

    @property
    def taggings(self) -> int:
        return sum(len(m) for m in self.members.values())

    @property
    def contacts(self) -> int:
        return len(set().union(*self.members.values()))

    def least_pages(self) -> int:
        """Per 50-tag listing in the bot's order, ceil(distinct contacts of the listing / 500)."""
        total = 0
        for start in range(0, len(self.tag_ids), TAGS_PER_LISTING):
            union = set().union(*(self.members[t] for t in self.tag_ids[start:start + TAGS_PER_LISTING]))
            total += math.ceil(len(union) / PAGE)
        return total

    def tags_per_contact(self) -> tuple[float, int]:
        carried = Counter(c for m in self.members.values() for c in m)
        return self.taggings / len(carried), max(carried.values())


def populate(cc: ConstantContactSimulator, tags: int, taggings: int, seed: int, prefix: str) -> Account:
    """`tags` tags carrying `taggings` taggings: each tag's contacts are OWN_SHARE its own (made by
    `add_tag(name, n)`), the rest drawn from a shared pool, so that many contacts carry several tags."""
    rng = random.Random(seed)
    sizes = tag_sizes(tags, taggings, rng)
    shared = [size - round(size * OWN_SHARE) for size in sizes]
    pool: list[str] = []
    pool_size = max(max(shared), int(sum(shared) * POOL_PER_TAGGING))
    for status, share in POOL_STATUSES:
        pool += cc.add_contacts(None, round(pool_size * share) if status != "active" else 0, status)
    pool += cc.add_contacts(None, pool_size - len(pool), "active")
    tag_ids = []
    for index, (size, from_pool) in enumerate(zip(sizes, shared)):
        tag_id = cc.add_tag(f"{prefix} {index:03d}", size - from_pool)
        cc.tag_contacts([tag_id], rng.sample(pool, from_pool))
        tag_ids.append(tag_id)
    rng.shuffle(tag_ids)  # a request names big and small tags in no particular order
    members = {tag_id: frozenset(cc.contacts_with_tag(tag_id)) for tag_id in tag_ids}  # materialises them
    return Account(tag_ids, members)


# --- 1. the recording, in a child process ------------------------------------------------------------


def record(spec_path: Path, out_path: Path) -> None:
    """The child: a request of one batch, then `Snapshots.ensure(batch)`, timed and measured."""
    from bot.config import Secret, Settings
    from bot.runtime import cc_client_from_settings
    from bot.snapshots import Snapshots
    from bot.store import NewTag, Store, utc_now

    spec = json.loads(spec_path.read_text())
    settings = Settings(cc_client_id=spec["client_id"], cc_client_secret=Secret(spec["client_secret"]),
                        cc_refresh_token=Secret(spec["refresh_token"]), cc_api_url=spec["api_url"],
                        cc_auth_url=spec["auth_url"], db_path=Path(spec["db"]))
    store = Store(settings.db_path)
    request_id = store.create_request(
        requester_id="U0BENCH", team_id="T0BENCH", origin_channel="C0BENCH", source="command", reason="bench",
        required_approvals=1, tags=[NewTag(t, f"tag {i}", n) for i, (t, n) in enumerate(spec["tags"])])
    store.create_batches(request_id, [[t for t, _ in spec["tags"]]])
    batch = store.batches(request_id)[0]
    client = cc_client_from_settings(settings, store)
    snapshots = Snapshots(store, lambda: client, settings, utc_now)

    # Where the time goes, without changing the path: waits on the client's limiter, SQLite writes.
    spent = {"limiter": 0.0, "store": 0.0}
    acquire, add = client._limiter.acquire, store.add_snapshot_taggings

    def timed_acquire(read: bool) -> None:
        began = time.perf_counter()
        try:
            acquire(read)
        finally:
            spent["limiter"] += time.perf_counter() - began

    def timed_add(*args: object) -> None:
        began = time.perf_counter()
        try:
            add(*args)  # type: ignore[arg-type]
        finally:
            spent["store"] += time.perf_counter() - began

    client._limiter.acquire = timed_acquire  # type: ignore[method-assign]
    store.add_snapshot_taggings = timed_add  # type: ignore[method-assign]

    reset = reset_peak_rss()
    before = proc_kb("VmRSS")
    started = time.monotonic()
    snapshot = snapshots.ensure(batch)
    ended = time.monotonic()
    peak = proc_kb("VmHWM")
    assert snapshot is not None
    out_path.write_text(json.dumps({
        "started": started, "ended": ended, "contacts": snapshot.contacts, "taggings": snapshot.taggings,
        "rss_before_kb": before, "peak_kb": peak, "peak_reset": reset, "limiter_s": spent["limiter"],
        "store_s": spent["store"], "db_bytes": os.path.getsize(settings.db_path)}))


def proc_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Make VmHWM start again from the current RSS (Linux: 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Recording:
    account: Account
    seconds: float
    contacts: int
    taggings: int
    api_calls: int
    pages: int
    throttled: int
    memory_mb: float
    peak_reset: bool
    limiter_s: float
    store_s: float
    db_mb: float
    setup_s: float


def run_recording(directory: Path, tags: int, taggings: int, latency: float = 0.0) -> Recording:
    directory.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    cc = ConstantContactSimulator(daily_quota=1_000_000, seed=8).start()
    try:
        account = populate(cc, tags, taggings, seed=8, prefix="snapshot")
        cc.faults.latency_seconds = latency
        counts = {t["tag_id"]: t["contacts_count"] for t in cc.tags()}
        spec = {"client_id": cc.client_id, "client_secret": cc.client_secret, "refresh_token": cc.issue_refresh_token(),
                "api_url": cc.base_url, "auth_url": cc.auth_url, "db": str(directory / "snapshot.db"),
                "tags": [[t, counts[t]] for t in account.tag_ids]}
        spec_path, out_path = directory / "record.spec.json", directory / "record.out.json"
        spec_path.write_text(json.dumps(spec))
        setup = time.monotonic() - began
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with open(directory / "record.log", "wb") as log:
            subprocess.run([sys.executable, "-m", "benchmarks.bench_snapshot", "record", str(spec_path),
                            str(out_path)], env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                           check=True, timeout=1200)
        out = json.loads(out_path.read_text())
        calls = [r for r in list(cc.request_log)
                 if r.path.startswith("/v3/") and out["started"] <= r.at <= out["ended"]]
    finally:
        cc.stop()
    return Recording(
        account, out["ended"] - out["started"], out["contacts"], out["taggings"], len(calls),
        sum(1 for r in calls if r.path == "/v3/contacts" and r.status == 200), sum(1 for r in calls if r.status == 429),
        (out["peak_kb"] - out["rss_before_kb"]) / 1024, out["peak_reset"], out["limiter_s"], out["store_s"],
        out["db_bytes"] / 1e6, setup)


def recording_rows(rec: Recording, scale: str) -> list[Row]:
    least = rec.account.least_pages()
    share = rec.api_calls / (LIMIT_PER_SECOND * rec.seconds)
    label = f"{len(rec.account.tag_ids)} tags, {rec.account.taggings:,} taggings{scale}"
    return [
        Row("snapshot", f"{label}: pages of GET /contacts", str(rec.pages), f"{least} (least)",
            times(ratio(rec.pages, least)), f"<= {PAGES_TARGET}x the least", rec.pages <= PAGES_TARGET * least),
        Row("snapshot", f"{label}: share of the 4/s budget while recording",
            f"{rec.api_calls} calls in {rec.seconds:.1f} s", f"{LIMIT_PER_SECOND}/s",
            f"{rec.api_calls / (LIMIT_PER_SECOND * rec.seconds):.0%}", f">= {SHARE_TARGET:.0%}", share >= SHARE_TARGET),
        Row("snapshot", f"{label}: peak memory of the recording (RSS above the child's start)",
            f"{rec.memory_mb:.1f} MB", target=f"< {MEMORY_TARGET_MB:g} MB", met=rec.memory_mb < MEMORY_TARGET_MB),
        Row("snapshot", f"{label}: contacts / taggings recorded",
            f"{rec.contacts:,} / {rec.taggings:,}", f"{rec.account.contacts:,} / {rec.account.taggings:,} (carried)",
            target="all", met=(rec.contacts, rec.taggings) == (rec.account.contacts, rec.account.taggings)),
        Row("snapshot", f"{label}: throttled answers (429)", str(rec.throttled), target="0", met=rec.throttled == 0),
        Row("snapshot", f"{label}: time waiting on the client's limiter / writing to SQLite",
            f"{rec.limiter_s:.1f} s / {rec.store_s:.1f} s of {rec.seconds:.1f} s"),
    ]


def slow_rows(rec: Recording, latency: float) -> list[Row]:
    label = (f"{len(rec.account.tag_ids)} tags, {rec.account.taggings:,} taggings, every answer {latency:g} s late "
             "(no target)")
    return [
        Row("snapshot", f"{label}: share of the 4/s budget while recording",
            f"{rec.api_calls} calls in {rec.seconds:.1f} s", f"{LIMIT_PER_SECOND}/s",
            f"{rec.api_calls / (LIMIT_PER_SECOND * rec.seconds):.0%}"),
        Row("snapshot", f"{label}: time waiting on the client's limiter / writing to SQLite",
            f"{rec.limiter_s:.1f} s / {rec.store_s:.1f} s of {rec.seconds:.1f} s"),
    ]


# --- 2. the delay before the first delete POST, end to end -------------------------------------------


@dataclass(frozen=True)
class Delay:
    seconds: float
    calls: Counter[str]  # API calls from the Approve click to the POST, by endpoint


def endpoint(record: RequestRecord) -> str:
    parts = record.path.split("/")
    if len(parts) == 4 and parts[2] == "contact_tags":
        return "GET /v3/contact_tags/{id}"
    return f"{record.method} {record.path}"


def run_delays(directory: Path, sizes: SnapshotSizes, snapshots: bool) -> list[Delay]:
    accounts: list[Account] = []

    def before_bot(cc: ConstantContactSimulator) -> None:
        for repeat in range(sizes.delay_repeats):
            accounts.append(populate(cc, sizes.delay_tags, sizes.delay_taggings, seed=100 + repeat,
                                     prefix=f"delay{repeat}"))

    directory.mkdir(parents=True, exist_ok=True)
    scene = flows.start_scene(directory, activity_seconds=1.0, before_bot=before_bot,
                              env={"SNAPSHOTS": "true" if snapshots else "false"})
    try:
        delays = []
        for account in accounts:
            flows.send_commands(scene.driver, [flows.request_text(account.tag_ids)], 1)
            shown = flows.wait_for_count(lambda: flows.previews(scene.slack), 1, "the preview", 60)
            (request_id, preview), = shown.items()
            scene.driver.click(PEOPLE.requester, preview, "Request approval")
            card = flows.wait_for_count(lambda: flows.cards(scene.slack), 1, "the card", 60)[request_id]
            clicked = time.monotonic()
            scene.driver.click(PEOPLE.approver, card, "Approve")
            post = wait_until(lambda: next((r for r in list(scene.cc.request_log)
                                            if r.at >= clicked and r.path == CREATE_PATH), None),
                              timeout=300, what="the tag-delete POST", interval=0.02)
            between = [r for r in list(scene.cc.request_log)
                       if clicked <= r.at < post.at and r.path.startswith("/v3/")]
            delays.append(Delay(post.at - clicked, Counter(endpoint(r) for r in between)))
            wait_until(lambda: flows.summaries_posted(scene.db_path) >= len(delays), timeout=120,
                       what="the summary", interval=0.2)
        return delays
    finally:
        scene.close()


def delay_rows(on: Sequence[Delay], off: Sequence[Delay], sizes: SnapshotSizes) -> list[Row]:
    label = f"{sizes.delay_tags} tags, {sizes.delay_taggings:,} taggings, one batch"
    with_, without = median([d.seconds for d in on]), median([d.seconds for d in off])
    calls_on = Counter[str]()
    for d in on:
        calls_on.update(d.calls)
    calls_off = Counter[str]()
    for d in off:
        calls_off.update(d.calls)

    def per(calls: Counter[str], runs: int) -> str:
        return ", ".join(f"{name} {count / runs:g}" for name, count in sorted(calls.items())) or "none"

    return [
        Row("snapshot", f"{label}: Approve click to the first tag-delete POST, median of {len(on)}",
            f"{secs(with_)} ({', '.join(secs(d.seconds) for d in on)})",
            f"{secs(without)} ({', '.join(secs(d.seconds) for d in off)}) without snapshots",
            times(ratio(with_, without))),
        Row("snapshot", f"{label}: API calls before the POST, per request (snapshots on)", per(calls_on, len(on))),
        Row("snapshot", f"{label}: API calls before the POST, per request (snapshots off)", per(calls_off, len(off))),
    ]


def run(directory: Path, sizes: SnapshotSizes) -> Outcome:
    outcome = Outcome("snapshots")
    scale = "" if sizes.taggings >= 200_000 else f" (1/{200_000 // sizes.taggings} scale)"
    rec = run_recording(directory / "recording", sizes.tags, sizes.taggings)
    outcome.rows += recording_rows(rec, scale)
    slow = run_recording(directory / "slow-answers", sizes.tags, sizes.slow_taggings, sizes.slow_latency)
    outcome.rows += slow_rows(slow, sizes.slow_latency)
    mean, most = rec.account.tags_per_contact()
    outcome.notes.append(
        f"Recording: account built in {rec.setup_s:.1f} s: {rec.account.contacts:,} distinct contacts carry the "
        f"{len(rec.account.tag_ids)} tags ({mean:.2f} of them on average, at most {most}); the largest tag has "
        f"{max(len(m) for m in rec.account.members.values()):,} contacts, the smallest "
        f"{min(len(m) for m in rec.account.members.values())}. The least number of pages is, per listing of 50 "
        f"tags in the bot's order, ceil(distinct contacts / {PAGE}); were every tag listed at once it would be "
        f"{math.ceil(rec.account.contacts / PAGE)} (not possible: a listing names at most 50 tags). "
        f"Budget share: /v3 calls while `ensure` ran "
        f"/ (4 x its seconds); the client's own limiter admits 4 per 1.05 s (95% over a long run, a little more "
        f"over a short one, the first 4 going at once). Memory: "
        f"VmHWM minus VmRSS of the child (peak {'reset' if rec.peak_reset else 'NOT reset'} just before "
        f"`ensure`); the SQLite file ended at {rec.db_mb:.0f} MB.")
    off = run_delays(directory / "snapshots-off", sizes, snapshots=False)
    on = run_delays(directory / "snapshots-on", sizes, snapshots=True)
    outcome.rows += delay_rows(on, off, sizes)
    return outcome


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "record":
        record(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit("usage: python -m benchmarks.bench_snapshot record SPEC OUT")
