"""1. Ack latency: signed requests over loopback to `deletetags-bot run` and to an ack-only Bolt app.

The bot is measured under its own load: the commands' previews, the cards and the deletions that
approvals start all run after the acks, in the same process, while the next requests arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.slack import SlackDriver, SlackEmulator
from bot.sandbox.world import OPS_CHANNEL, PEOPLE, SIGNING_SECRET

from benchmarks import flows
from benchmarks.loadgen import Answer
from benchmarks.harness import Outcome, Row, baseline_process, log_rows, ms, percentile, ratio, times, wait_until

ACK_DEADLINE = 3.0
TARGET_RATIO = 1.5


@dataclass(frozen=True)
class AckSizes:
    commands: int = 200
    ids_per_command: int = 500
    approvals: int = 200
    concurrency: int = 16
    tag_pool: int = 5000
    sequential: int = 30  # commands sent one at a time first: the cost of an ack without contention


QUICK = AckSizes(commands=40, ids_per_command=500, approvals=40, concurrency=16, tag_pool=2000, sequential=10)


@dataclass
class Timings:
    sequential: list[Answer]
    commands: list[Answer]
    confirms: list[Answer]
    approvals: list[Answer]


@dataclass
class Recorded:
    """The exact requests sent to the bot, replayed byte for byte (re-signed) to the baseline."""

    sequential: list[flows.Captured]
    commands: list[flows.Captured]
    confirms: list[flows.Captured]
    approvals: list[flows.Captured]


def command_texts(tag_ids: Sequence[str], sizes: AckSizes, count: int) -> list[str]:
    """Command i names a window of `ids_per_command` ids, sliding through the account's tags."""
    texts = []
    for index in range(count):
        start = (index * 97) % max(1, len(tag_ids) - sizes.ids_per_command)
        texts.append(flows.request_text(tag_ids[start:start + sizes.ids_per_command]))
    return texts


def measure_bot(directory: Path, sizes: AckSizes) -> tuple[Timings, Recorded, int]:
    scene = flows.start_scene(directory, tags=sizes.tag_pool, activity_seconds=2.0)
    url = f"{scene.bot.url}/slack/events"
    try:
        tag_ids = [t["tag_id"] for t in scene.cc.tags()]
        warm_up(scene.driver, scene.slack, tag_ids[0])
        capture = flows.CapturingDriver(scene.slack)
        for text in command_texts(tag_ids, sizes, sizes.sequential + sizes.commands):
            capture.slash_command(PEOPLE.requester, OPS_CHANNEL, text)
        sent_all = capture.take()
        sent_sequential, sent_commands = sent_all[:sizes.sequential], sent_all[sizes.sequential:]
        sequential = flows.replay(url, sent_sequential, 1, directory, "bot-sequential")
        flows.wait_for_count(lambda: flows.previews(scene.slack), sizes.sequential + 1, "the first previews", 120)
        commands = flows.replay(url, sent_commands, sizes.concurrency, directory, "bot-commands")
        shown = flows.wait_for_count(lambda: flows.previews(scene.slack), sizes.sequential + sizes.commands + 1,
                                     "the previews", 300)
        measured = sorted(shown)[-sizes.commands:]
        for request_id in measured:
            capture.click(PEOPLE.requester, shown[request_id], "Request approval")
        sent_confirms = capture.take()
        confirms = flows.replay(url, sent_confirms, sizes.concurrency, directory, "bot-confirms")
        posted = flows.wait_for_count(lambda: flows.cards(scene.slack), sizes.commands, "the cards", 300)
        decided = [i for i in sorted(posted) if i in set(measured)][:sizes.approvals]
        for request_id in decided:
            capture.click(PEOPLE.approver, posted[request_id], "Approve")
        sent_approvals = capture.take()
        approvals = flows.replay(url, sent_approvals, sizes.concurrency, directory, "bot-approvals")
        approved = wait_until(
            lambda: (n if (n := flows.count_in_states(scene.db_path, ("approved", "running", *flows.TERMINAL),
                                                      decided)) >= len(decided) else None),
            timeout=120, what="every clicked request to be approved")
        return (Timings(sequential, commands, confirms, approvals),
                Recorded(sent_sequential, sent_commands, sent_confirms, sent_approvals), approved)
    finally:
        scene.close()


def warm_up(driver: SlackDriver, slack: SlackEmulator, tag_id: str) -> None:
    """One real request first, so the account's tag list is cached and Bolt has initialised."""
    before = len(flows.previews(slack))
    driver.slash_command(PEOPLE.requester, OPS_CHANNEL, flows.request_text([tag_id], "warm-up"))
    flows.wait_for_count(lambda: flows.previews(slack), before + 1, "the warm-up preview", 60)


def measure_baseline(directory: Path, sizes: AckSizes, recorded: Recorded) -> Timings:
    """The same bytes to the ack-only app (its one auth.test goes to an emulator)."""
    slack = SlackEmulator().start()
    env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url}
    server = baseline_process(env, directory / "baseline.log").start()
    url = f"{server.url}/slack/events"
    try:
        flows.replay(url, recorded.commands[:1], 1, directory, "baseline-warm-up")
        return Timings(
            flows.replay(url, recorded.sequential, 1, directory, "baseline-sequential"),
            flows.replay(url, recorded.commands, sizes.concurrency, directory, "baseline-commands"),
            flows.replay(url, recorded.confirms, sizes.concurrency, directory, "baseline-confirms"),
            flows.replay(url, recorded.approvals, sizes.concurrency, directory, "baseline-approvals"),
        )
    finally:
        server.stop()
        slack.stop()


def latency_rows(label: str, bot: list[Answer], baseline: list[Answer], targeted: bool) -> list[Row]:
    rows = []
    for q in (50, 99):
        mine = percentile([r.elapsed for r in bot], q)
        base = percentile([r.elapsed for r in baseline], q)
        target = f"p99 <= {TARGET_RATIO}x baseline" if targeted and q == 99 else ""
        met = ratio(mine, base) <= TARGET_RATIO if targeted and q == 99 else None
        rows.append(Row("ack latency", f"{label} p{q}", ms(mine), ms(base), times(ratio(mine, base)), target, met))
    late = sum(1 for r in bot if r.status != 200 or r.elapsed > ACK_DEADLINE)
    rows.append(Row("ack latency", f"{label}: not 200 or over 3 s", f"{late} of {len(bot)}", "", "", "0", late == 0))
    return rows


def run(directory: Path, sizes: AckSizes) -> Outcome:
    outcome = Outcome("ack latency")
    (directory / "bot").mkdir(parents=True, exist_ok=True)
    bot, recorded, approved = measure_bot(directory / "bot", sizes)
    baseline = measure_baseline(directory, sizes, recorded)
    outcome.rows += latency_rows(f"/deletetags with {sizes.ids_per_command} ids, one at a time", bot.sequential,
                                 baseline.sequential, False)
    outcome.rows += latency_rows(f"/deletetags with {sizes.ids_per_command} ids", bot.commands, baseline.commands, True)
    outcome.rows += latency_rows("Approve click", bot.approvals, baseline.approvals, True)
    outcome.rows += latency_rows("Request approval click", bot.confirms, baseline.confirms, False)
    outcome.rows.append(Row("ack latency", "Approve clicks that really approved", f"{approved} of {len(bot.approvals)}",
                            target="all", met=approved == len(bot.approvals)))
    outcome.rows += log_rows("ack latency", "while measuring", (directory / "bot" / "bot.log").read_text())
    outcome.notes.append(
        f"{sizes.commands} commands of {sizes.ids_per_command} ids and {sizes.approvals} Approve clicks on distinct "
        f"cards, {sizes.concurrency} at a time (after {sizes.sequential} commands one at a time); {sizes.tag_pool} "
        "tags in the simulator. Requests are built in this process and sent by benchmarks/loadgen.py, a separate "
        "process, on a fresh connection each; the baseline gets the same bytes, re-signed.")
    return outcome
