"""`deletetags-bot audit`: the audit log as an aligned table or as CSV safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TextIO

from bot.store import Event, Store

COLUMNS = ("id", "at", "request", "actor", "kind", "reason", "detail")
# People's own words (a rejection reason) get their own column; the rest of the detail stays JSON.
REASON_KEY = "reason"
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class AuditFilter:
    """Which events to show; dates are whole UTC days, both ends included."""

    request_id: int | None = None
    actors: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def audit_events(store: Store, wanted: AuditFilter) -> list[Event]:
    events = store.events(
        request_id=wanted.request_id,
        actor=wanted.actors[0] if len(wanted.actors) == 1 else None,
        since=_start_of(wanted.since) if wanted.since else None,
        until=_start_of(wanted.until + timedelta(days=1)) if wanted.until else None,
    )
    if len(wanted.actors) > 1:
        events = [e for e in events if e.actor in wanted.actors]
    return events


def _detail_text(detail: dict) -> str:
    return json.dumps(detail, sort_keys=True, ensure_ascii=False, separators=(",", ":")) if detail else ""


def row_of(event: Event) -> list[str]:
    at = event.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if event.at else ""
    rest = {k: v for k, v in event.detail.items() if k != REASON_KEY}
    reason = event.detail.get(REASON_KEY)
    return [str(event.id), at, "" if event.request_id is None else str(event.request_id),
            event.actor or "", event.kind, "" if reason is None else str(reason), _detail_text(rest)]


def csv_safe(cell: str) -> str:
    """Prefix a quote to any cell a spreadsheet would read as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def write_csv(events: Iterable[Event], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for event in events:
        writer.writerow([csv_safe(cell) for cell in row_of(event)])


def _printable(cell: str) -> str:
    """Terminal-safe: control characters (escape sequences, newlines) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", cell)


def format_table(events: Sequence[Event]) -> str:
    rows = [list(COLUMNS)] + [[_printable(cell) for cell in row_of(e)] for e in events]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join(padded + [row[-1]]).rstrip())
    return "\n".join(lines)


def report(events: Sequence[Event], as_csv: bool) -> str:
    if as_csv:
        buffer = io.StringIO()
        write_csv(events, buffer)
        return buffer.getvalue()
    return format_table(events) + "\n" if events else "No audit events match.\n"
