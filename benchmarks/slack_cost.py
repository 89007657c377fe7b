"""What the bot cost Slack, read from the emulator's record of Web API calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.sandbox.slack import ApiCall

from benchmarks.harness import Row, percentile

CARD_EDIT_SECONDS = 3.0  # the outbox's spacing of edits of one card (bot/slack_outbox.py CARD_EDIT_SECONDS)
FAST_EDIT_SHARE = 0.10
SUBMITTED = "Submitted to Constant Contact"  # the Runner's one 'submitted' reply
FINISHED = "is finished"  # the summary  # "at most one card edit every few seconds", allowing a rare forced milestone edit


@dataclass(frozen=True)
class SlackCost:
    requests: int
    thread_replies: list[int]  # per request: chat.postMessage calls answered ok in its card's thread
    card_edits: list[int]  # per request: chat.update calls answered ok on its card
    edit_gaps: list[float]  # seconds between consecutive ok edits of the same card
    direct_messages: int
    throttled: Counter[str]  # method -> 429 answers
    throttled_what: Counter[str]  # "method: the start of its text" -> 429 answers
    calls: int
    missing_submitted: int  # requests whose thread never got the ':rocket: Submitted' reply
    missing_summary: int  # requests whose thread never got the summary


    @property
    def fast_edits(self) -> int:
        return sum(1 for gap in self.edit_gaps if gap < CARD_EDIT_SECONDS)


def analyse(calls: Sequence[ApiCall], card_ts: Mapping[int, str], channel: str) -> SlackCost:
    """`card_ts`: request id -> its card's ts; calls about other messages are not charged to requests."""
    request_of = {ts: request_id for request_id, ts in card_ts.items()}
    replies: Counter[int] = Counter()
    texts: dict[int, list[str]] = {request_id: [] for request_id in card_ts}
    edits: dict[int, list[float]] = {request_id: [] for request_id in card_ts}
    direct, throttled, throttled_what = 0, Counter(), Counter()
    for call in calls:
        if call.status == 429:
            throttled[call.method] += 1
            throttled_what[f"{call.method}: {_gist(call)}"] += 1
        if not call.ok:
            continue
        target = str(call.params.get("channel", ""))
        if call.method == "chat.postMessage" and target != channel:
            direct += 1
        elif call.method == "chat.postMessage" and str(call.params.get("thread_ts", "")) in request_of:
            replies[request_of[str(call.params["thread_ts"])]] += 1
            texts[request_of[str(call.params["thread_ts"])]].append(str(call.params.get("text", "")))
        elif call.method == "chat.update" and str(call.params.get("ts", "")) in request_of:
            edits[request_of[str(call.params["ts"])]].append(call.at)
    gaps = [later - earlier for times in edits.values() for earlier, later in zip(sorted(times), sorted(times)[1:])]
    missing_submitted = sum(1 for posted in texts.values() if not any(SUBMITTED in t for t in posted))
    missing_summary = sum(1 for posted in texts.values() if not any(FINISHED in t for t in posted))
    return SlackCost(len(card_ts), [replies[i] for i in card_ts], [len(edits[i]) for i in card_ts], gaps, direct,
                     throttled, throttled_what, len(calls), missing_submitted, missing_summary)


def _gist(call: ApiCall) -> str:
    """Which message a call was about: its first words, request numbers and ids left out."""
    words = str(call.params.get("text", "")).split()[:4]
    return " ".join("N" if any(ch.isdigit() for ch in word) else word for word in words)[:40]


def cost_rows(label: str, cost: SlackCost, reply_bound: int) -> list[Row]:
    throttled = sum(cost.throttled.values())
    by_method = "; ".join(f"{n}x {what}" for what, n in cost.throttled_what.most_common(4)) or "none"
    edits_mean = sum(cost.card_edits) / max(1, cost.requests)
    replies_mean = sum(cost.thread_replies) / max(1, cost.requests)
    shortest = min(cost.edit_gaps) if cost.edit_gaps else float("nan")
    return [
        Row("slack cost", f"{label}: thread replies per request (mean / max)",
            f"{replies_mean:.1f} / {max(cost.thread_replies, default=0)}", target=f"max <= {reply_bound}",
            met=max(cost.thread_replies, default=0) <= reply_bound),
        Row("slack cost", f"{label}: card edits per request (mean / max)",
            f"{edits_mean:.1f} / {max(cost.card_edits, default=0)}"),
        Row("slack cost", f"{label}: card edits < {CARD_EDIT_SECONDS:g} s after the previous one",
            f"{cost.fast_edits} of {len(cost.edit_gaps)} (shortest {shortest:.2f} s, "
            f"median {percentile(cost.edit_gaps, 50):.1f} s)", target=f"<= {FAST_EDIT_SHARE:.0%} of gaps",
            met=cost.fast_edits <= FAST_EDIT_SHARE * len(cost.edit_gaps)),
        Row("slack cost", f"{label}: threads missing the 'Submitted' reply / the summary",
            f"{cost.missing_submitted} / {cost.missing_summary} of {cost.requests}", target="0 / 0",
            met=cost.missing_submitted == 0 and cost.missing_summary == 0),
        Row("slack cost", f"{label}: DMs delivered (the approval DM to the requester)",
            f"{cost.direct_messages} of {cost.requests}", target="all", met=cost.direct_messages >= cost.requests),
        Row("slack cost", f"{label}: 429 answers from Slack", f"{throttled} ({by_method})", target="0",
            met=throttled == 0),
    ]
