"""How a snapshot is shown: the preview's undo line, the thread milestone, the CSV and the CLI table. Pure.

A snapshot records, just before a batch's delete POST, which contacts carried each of its tags (contact
id and status; never e-mail addresses). Deleted tags cannot be brought back by Constant Contact, so
this record is what a restore rebuilds from.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

CSV_HEADER = ("tag_name", "old_tag_id", "contact_id", "contact_status")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class TaggingRow(Protocol):
    tag_name: str
    tag_id: str
    contact_id: str
    contact_status: str


@dataclass(frozen=True)
class SnapshotPlan:
    """Whether a request will be snapshotted, and why not when it will not."""

    enabled: bool
    contacts: int
    limit: int
    retention_days: int

    @property
    def will_snapshot(self) -> bool:
        return self.enabled and self.contacts <= self.limit

    def line(self) -> str:
        """One mrkdwn line for the preview and the card."""
        if not self.enabled:
            return ":warning: *No snapshot*: snapshots are turned off (`SNAPSHOTS=false`). Deleted tags cannot be restored."
        if self.contacts > self.limit:
            return (f":warning: *No snapshot*: these tags carry {_people(self.contacts)}, more than "
                    f"`SNAPSHOT_MAX_CONTACTS` ({self.limit:,}). Deleted tags cannot be restored.")
        return (f":camera_with_flash: *Snapshot first*: which contacts carry each tag is recorded before it is "
                f"deleted and kept {self.retention_days} days, so the tags can be rebuilt.")


def _people(contacts: int) -> str:
    if contacts >= 1_000_000:
        return f"{contacts / 1_000_000:.1f} million contacts"
    return f"{contacts:,} contacts"


def milestone_text(batch_no: int, batch_count: int, tags: int, contacts: int, taggings: int) -> str:
    which = f"Batch {batch_no + 1} of {batch_count}: " if batch_count > 1 else ""
    shared = f" ({taggings:,} taggings)" if taggings != contacts else ""
    return (f":camera_with_flash: {which}snapshot recorded before deleting: {tags:,} tag{'s' if tags != 1 else ''}, "
            f"{contacts:,} contact{'s' if contacts != 1 else ''}{shared}.")


def csv_safe(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def snapshot_csv(rows: Iterable[TaggingRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow([csv_safe(row.tag_name), row.tag_id, row.contact_id, row.contact_status])
    return out.getvalue()


def snapshot_table(rows: Sequence[TaggingRow]) -> str:
    """Per tag: its name, old id and how many contacts it carried, by status (for the terminal)."""
    by_tag: dict[tuple[str, str], Counter[str]] = {}
    for row in rows:
        by_tag.setdefault((row.tag_name, row.tag_id), Counter())[row.contact_status] += 1
    lines = [f"{'tag':40} {'old tag id':36} {'contacts':>8}  by status"]
    for (name, tag_id), statuses in sorted(by_tag.items()):
        shown = ", ".join(f"{status} {n:,}" for status, n in sorted(statuses.items()))
        lines.append(f"{_printable(name)[:40]:40} {tag_id:36} {sum(statuses.values()):>8,}  {shown}")
    return "\n".join(lines)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)
