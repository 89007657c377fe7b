"""SQLite, the single source of truth: schema migrations, compare-and-set transitions, audit.

One connection shared by Bolt's listener threads and the scheduler's threads, with one lock held
for each whole unit of work: sqlite-utils' `atomic()` decides between BEGIN and SAVEPOINT by
looking at the connection, so two threads interleaving on it would share a transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from bot.core.lifecycle import (
    RUNNING_BATCH_STATES,
    TERMINAL_REQUEST_STATES,
    BatchState,
    RequestState,
    sources_of,
)

Clock = Callable[[], datetime]
RESTORE = "restore"  # requests.kind of a restore


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def to_text(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds") if moment else None


def from_text(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


migrations = Migrations("deletetags")


@migrations(name="0001_initial")
def _initial(db: Database) -> None:
    db["requests"].create(
        {
            "id": int,
            "state": str,
            "requester_id": str,
            "team_id": str,
            "origin_channel": str,
            "source": str,
            "reason": str,
            "required_approvals": int,
            "approval_channel": str,
            "card_ts": str,
            "preview_response_url": str,
            "created_at": str,
            "updated_at": str,
            "expires_at": str,
            "decided_by": str,
            "decided_at": str,
            "rejection_reason": str,
            "started_at": str,
            "finished_at": str,
            "tag_count": int,
            "total_contacts": int,
            "unresolved": str,
        },
        pk="id",
        not_null={"state", "requester_id", "created_at", "updated_at"},
        strict=True,
    )
    db["requests"].create_index(["state"])
    db["requests"].create_index(["requester_id"])
    db["request_tags"].create(
        {
            "request_id": int,
            "position": int,
            "tag_id": str,
            "name": str,
            "contacts_count": int,
            "matched_by": str,
            "batch_no": int,
            "outcome": str,
            "outcome_detail": str,
        },
        pk=("request_id", "tag_id"),
        foreign_keys=[("request_id", "requests", "id")],
        not_null={"request_id", "tag_id", "position"},
        strict=True,
    )
    db["approvals"].create(
        {"request_id": int, "user_id": str, "at": str},
        pk=("request_id", "user_id"),
        foreign_keys=[("request_id", "requests", "id")],
        strict=True,
    )
    db["batches"].create(
        {
            "id": int,
            "request_id": int,
            "batch_no": int,
            "state": str,
            "activity_id": str,
            "tag_count": int,
            "percent_done": int,
            "items_total": int,
            "items_completed": int,
            "errors": str,
            "submitted_at": str,
            "finished_at": str,
            "next_poll_at": str,
            "poll_count": int,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("request_id", "requests", "id")],
        not_null={"request_id", "batch_no", "state"},
        defaults={"poll_count": 0, "percent_done": 0},
        strict=True,
    )
    db["batches"].create_index(["request_id", "batch_no"], unique=True)
    db["batches"].create_index(["activity_id"], unique=True)
    db["events"].create(
        {"id": int, "at": str, "request_id": int, "actor": str, "kind": str, "detail": str},
        pk="id",
        not_null={"at", "kind"},
        strict=True,
    )
    db["events"].create_index(["request_id"])
    db["events"].create_index(["at"])
    # The audit log is append-only: the database itself refuses edits and deletions.
    db.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db["credentials"].create(
        {"name": str, "refresh_token": str, "access_token": str, "access_expires_at": float, "updated_at": str},
        pk="name",
        strict=True,
    )
    db["seen_events"].create({"event_id": str, "at": str}, pk="event_id", strict=True)
    db["notices"].create(
        {"request_id": int, "key": str, "state": str, "ts": str, "at": str},
        pk=("request_id", "key"),
        foreign_keys=[("request_id", "requests", "id")],
        strict=True,
    )


@migrations(name="0002_changes_since_approval")
def _changes_since_approval(db: Database) -> None:
    # What changed about the approved tags before a batch went out (a JSON list of lines), shown
    # on the card while the request waits for approval again.
    db["requests"].add_column("changes_since_approval", str)


@migrations(name="0003_quota_ledger")
def _quota_ledger(db: Database) -> None:
    # Constant Contact calls per UTC day (its quota resets at 00:00 UTC); `exhausted` is set when
    # Constant Contact said quota_exceeded that day, whatever the count says (the key may be shared).
    db["quota_ledger"].create({"day": str, "calls": int, "exhausted": int}, pk="day",
                              not_null={"calls", "exhausted"}, defaults={"calls": 0, "exhausted": 0}, strict=True)
    # A request's estimated calls (JSON, bot.core.quota.Estimate) and, while held for the quota, until when.
    db["requests"].add_column("quota_estimate", str)
    db["requests"].add_column("quota_held_until", str)


@migrations(name="0004_request_rule")
def _request_rule(db: Database) -> None:
    # A request found by rule (bot.core.rules): the rule as read back, and how many tags the account had
    # when it was evaluated (the preview warns when a rule matched every one of them).
    db["requests"].add_column("rule", str)
    db["requests"].add_column("account_tag_count", int)


@migrations(name="0005_snapshots")
def _snapshots(db: Database) -> None:
    # Which contacts carried each tag of a batch, recorded just before that batch's delete POST.
    db["snapshots"].create(
        {"request_id": int, "batch_no": int, "state": str, "contacts": int, "taggings": int,
         "started_at": str, "completed_at": str},
        pk=("request_id", "batch_no"), foreign_keys=[("request_id", "requests", "id")],
        not_null={"request_id", "batch_no", "state"}, strict=True,
    )
    db["snapshot_taggings"].create(
        {"request_id": int, "batch_no": int, "tag_id": str, "contact_id": str, "contact_status": str},
        pk=("request_id", "tag_id", "contact_id"), foreign_keys=[("request_id", "requests", "id")], strict=True,
    )
    db["snapshot_taggings"].create_index(["request_id", "batch_no"])


@migrations(name="0006_restores")
def _restores(db: Database) -> None:
    # A request is a deletion (kind NULL) or a restore of an earlier request's snapshot.
    db["requests"].add_column("kind", str)
    db["requests"].add_column("restores_request", int)
    # A restored tag: the tag its contacts were tagged with again, whether that tag already existed
    # (its name was taken), and whether its creation was ever asked for (so a resume knows its own tag).
    db["request_tags"].add_column("restored_tag_id", str)
    db["request_tags"].add_column("restored_into", str)
    db["request_tags"].add_column("tag_create_sent", int)
    # A restore batch tags one tag's contacts `first_contact` .. +`contact_count` (by contact id).
    db["batches"].add_column("tag_id", str)
    db["batches"].add_column("first_contact", int)
    db["batches"].add_column("contact_count", int)


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    request_id: int | None
    actor: str | None
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class TagRow:
    tag_id: str
    name: str
    contacts_count: int | None
    matched_by: str
    batch_no: int | None
    outcome: str | None
    outcome_detail: str | None
    restored_tag_id: str | None = None
    restored_into: str | None = None  # "new" or "existing"
    tag_create_sent: int | None = None


@dataclass(frozen=True)
class Batch:
    id: int
    request_id: int
    batch_no: int
    state: str
    activity_id: str | None
    tag_count: int
    percent_done: int
    items_total: int | None
    items_completed: int | None
    errors: tuple[str, ...]
    submitted_at: datetime | None
    finished_at: datetime | None
    next_poll_at: datetime | None
    poll_count: int
    tag_id: str | None = None  # restore batches: the old tag whose contacts it tags again
    first_contact: int | None = None
    contact_count: int | None = None

    @property
    def is_restore(self) -> bool:
        return self.tag_id is not None


@dataclass(frozen=True)
class Request:
    id: int
    state: str
    requester_id: str
    team_id: str | None
    origin_channel: str | None
    source: str | None
    reason: str | None
    required_approvals: int
    approval_channel: str | None
    card_ts: str | None
    preview_response_url: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    rejection_reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    tag_count: int
    total_contacts: int
    unresolved: dict[str, Any]
    changes_since_approval: tuple[str, ...] = ()
    rule: str | None = None
    account_tag_count: int | None = None
    quota_estimate: dict[str, int] | None = None
    quota_held_until: datetime | None = None
    kind: str | None = None  # None: a deletion; "restore": a restore of `restores_request`'s snapshot
    restores_request: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_REQUEST_STATES

    @property
    def is_restore(self) -> bool:
        return self.kind == RESTORE


@dataclass(frozen=True)
class Snapshot:
    request_id: int
    batch_no: int
    state: str  # recording | complete | purged
    contacts: int | None
    taggings: int | None
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class SnapshotTagging:
    tag_name: str
    tag_id: str
    contact_id: str
    contact_status: str


@dataclass(frozen=True)
class NewTag:
    tag_id: str
    name: str
    contacts_count: int | None
    matched_by: str = "id"


@dataclass(frozen=True)
class Credentials:
    refresh_token: str
    access_token: str | None
    access_expires_at: float | None


_DATETIME_FIELDS = {
    "created_at", "updated_at", "expires_at", "decided_at", "started_at", "finished_at",
    "submitted_at", "next_poll_at", "quota_held_until",
}


def _row_to(cls: type, row: dict[str, Any]) -> Any:
    values = {}
    for name in cls.__dataclass_fields__:
        value = row.get(name)
        if name in _DATETIME_FIELDS:
            value = from_text(value)
        values[name] = value
    return cls(**values)


def _request_from(row: dict[str, Any]) -> Request:
    row = dict(row)
    row["unresolved"] = json.loads(row["unresolved"] or "{}")
    row["tag_count"] = row["tag_count"] or 0
    row["total_contacts"] = row["total_contacts"] or 0
    row["changes_since_approval"] = tuple(json.loads(row.get("changes_since_approval") or "[]"))
    row["quota_estimate"] = json.loads(row.get("quota_estimate") or "null")
    return _row_to(Request, row)


def _batch_from(row: dict[str, Any]) -> Batch:
    row = dict(row)
    row["errors"] = tuple(json.loads(row["errors"] or "[]"))
    return _row_to(Batch, row)


def _create_private_file(path: Path) -> None:
    """The database holds OAuth tokens: only its owner may read it."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_text(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


class Store:
    """Every read and write the bot makes, each one a whole unit of work under one lock."""

    def __init__(self, path: Path | str, clock: Clock = utc_now) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.RLock()
        _create_private_file(self.path)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=15)
        self.db = Database(conn)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        self.db.execute("PRAGMA synchronous = NORMAL")
        migrations.apply(self.db)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextmanager
    def _unit(self) -> Iterator[Database]:
        with self._lock, self.db.atomic():
            yield self.db

    def _now(self) -> str:
        return to_text(self.clock()) or ""

    # --- health and migrations ---------------------------------------------------------

    def applied_migrations(self) -> list[str]:
        with self._lock:
            return [m.name for m in migrations.applied(self.db)]

    def pending_migrations(self) -> list[str]:
        with self._lock:
            return [m.name for m in migrations.pending(self.db)]

    def ping(self) -> bool:
        with self._lock:
            return self.db.execute("SELECT 1").fetchone()[0] == 1

    # --- audit -------------------------------------------------------------------------

    def _add_event(self, db: Database, request_id: int | None, actor: str | None, kind: str, detail: dict | None) -> None:
        db["events"].insert(
            {"at": self._now(), "request_id": request_id, "actor": actor, "kind": kind,
             "detail": json.dumps(detail or {}, sort_keys=True)}
        )

    def add_event(self, request_id: int | None, actor: str | None, kind: str, detail: dict | None = None) -> None:
        with self._unit() as db:
            self._add_event(db, request_id, actor, kind, detail)

    def events(
        self,
        request_id: int | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        kind_prefix: str | None = None,
    ) -> list[Event]:
        clauses, params = [], []
        for clause, value in (
            ("request_id = ?", request_id),
            ("actor = ?", actor),
            ("at >= ?", to_text(since)),
            ("at < ?", to_text(until)),
            ("kind LIKE ?", f"{kind_prefix}%" if kind_prefix else None),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = " AND ".join(clauses) or None
        with self._lock:
            rows = list(self.db["events"].rows_where(where, params, order_by="id"))
        return [
            Event(r["id"], from_text(r["at"]), r["request_id"], r["actor"], r["kind"], json.loads(r["detail"] or "{}"))
            for r in rows
        ]

    # --- requests ----------------------------------------------------------------------

    def create_request(
        self,
        *,
        requester_id: str,
        team_id: str | None,
        origin_channel: str | None,
        source: str,
        reason: str | None,
        required_approvals: int,
        tags: Sequence[NewTag],
        unresolved: dict[str, Any] | None = None,
        expires_at: datetime | None = None,
        rule: str | None = None,
        account_tag_count: int | None = None,
        restores_request: int | None = None,
        quota_estimate: dict[str, int] | None = None,
    ) -> int:
        """A draft request with its resolved tags, recorded as they were at preview."""
        now = self._now()
        with self._unit() as db:
            table = db["requests"]
            table.insert(
                {
                    "state": RequestState.DRAFT.value, "requester_id": requester_id, "team_id": team_id,
                    "origin_channel": origin_channel, "source": source, "reason": reason,
                    "required_approvals": required_approvals, "created_at": now, "updated_at": now,
                    "expires_at": to_text(expires_at), "tag_count": len(tags),
                    "total_contacts": sum(t.contacts_count or 0 for t in tags),
                    "unresolved": json.dumps(unresolved or {}, sort_keys=True),
                    "rule": rule, "account_tag_count": account_tag_count,
                    "kind": RESTORE if restores_request is not None else None, "restores_request": restores_request,
                    "quota_estimate": _encode(quota_estimate) if quota_estimate is not None else None,
                }
            )
            request_id = int(table.last_pk)
            # executemany: up to 5,000 rows, and sqlite-utils' per-row work would run while other
            # threads wait to acknowledge Slack within 3 s.
            db.conn.executemany(
                "INSERT INTO request_tags (request_id, position, tag_id, name, contacts_count, matched_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(request_id, i, t.tag_id, t.name, t.contacts_count, t.matched_by) for i, t in enumerate(tags)],
            )
            self._add_event(
                db, request_id, requester_id, "request.created",
                {"source": source, "tags": len(tags), "unresolved": unresolved or {},
                 **({"rule": rule} if rule else {}),
                 **({"restores_request": restores_request} if restores_request is not None else {})},
            )
        return request_id

    def get_request(self, request_id: int) -> Request | None:
        with self._lock:
            rows = list(self.db["requests"].rows_where("id = ?", [request_id]))
        return _request_from(rows[0]) if rows else None

    def request_by_card(self, channel: str, ts: str) -> Request | None:
        with self._lock:
            rows = list(self.db["requests"].rows_where("approval_channel = ? AND card_ts = ?", [channel, ts]))
        return _request_from(rows[0]) if rows else None

    def requests(
        self, states: Iterable[str] | None = None, requester_id: str | None = None, limit: int = 50
    ) -> list[Request]:
        clauses, params = [], []
        if states is not None:
            states = list(states)
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(states)
        if requester_id is not None:
            clauses.append("requester_id = ?")
            params.append(requester_id)
        with self._lock:
            rows = self.db["requests"].rows_where(
                " AND ".join(clauses) or None, params, order_by="id DESC", limit=limit
            )
            return [_request_from(r) for r in rows]

    def count_requests(self, states: Iterable[str]) -> int:
        states = list(states)
        with self._lock:
            return int(self.db.execute(
                f"SELECT COUNT(*) FROM requests WHERE state IN ({', '.join('?' for _ in states)})", states
            ).fetchone()[0])

    def oldest_in_flight_since(self) -> datetime | None:
        """When the oldest approved or running request (not held for the quota) started or was approved."""
        with self._lock:
            row = self.db.execute(
                "SELECT MIN(COALESCE(started_at, decided_at, updated_at)) FROM requests "
                "WHERE state IN ('approved', 'running') AND quota_held_until IS NULL").fetchone()
        return from_text(row[0]) if row and row[0] else None

    def count_requests_by_state(self) -> dict[str, int]:
        with self._lock:
            rows = self.db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

    def request_tags(self, request_id: int) -> list[TagRow]:
        with self._lock:
            rows = self.db["request_tags"].rows_where("request_id = ?", [request_id], order_by="position")
            return [_row_to(TagRow, r) for r in rows]

    def update_request(self, request_id: int, **fields: Any) -> None:
        """Fields that are not the state (card ts, reason, …); states go through transition()."""
        if "state" in fields:
            raise ValueError("use transition() to change a request's state")
        fields = {k: _encode(v) for k, v in fields.items()}
        fields["updated_at"] = self._now()
        with self._unit() as db:
            db["requests"].update(request_id, fields)

    def transition(
        self,
        request_id: int,
        target: RequestState,
        *,
        actor: str | None,
        kind: str,
        detail: dict[str, Any] | None = None,
        expect: Iterable[str] | None = None,
        **fields: Any,
    ) -> bool:
        """Compare-and-set: move to `target` only from an allowed (or `expect`ed) state.

        Returns whether this caller won; the winner's audit event is written in the same
        transaction, and a loser changes nothing.
        """
        allowed = tuple(expect) if expect is not None else sources_of(target)
        values = {k: _encode(v) for k, v in fields.items()}
        values.update(state=target.value, updated_at=self._now())
        assignments = ", ".join(f"{k} = ?" for k in values)
        placeholders = ", ".join("?" for _ in allowed)
        sql = f"UPDATE requests SET {assignments} WHERE id = ? AND state IN ({placeholders})"
        with self._unit() as db:
            cursor = db.execute(sql, [*values.values(), request_id, *allowed])
            won = cursor.rowcount == 1
            if won:
                self._add_event(db, request_id, actor, kind, {"to": target.value, **(detail or {})})
        return won

    # --- approvals ---------------------------------------------------------------------

    def add_approval(self, request_id: int, user_id: str) -> tuple[bool, tuple[str, ...]]:
        """Record one approver's approval once; returns (newly added, every approver so far)."""
        with self._unit() as db:
            # Only while the request still awaits approval: a late click after a rejection
            # or an expiry must leave no approval behind.
            cursor = db.execute(
                "INSERT OR IGNORE INTO approvals (request_id, user_id, at) "
                "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM requests WHERE id = ? AND state = ?)",
                [request_id, user_id, self._now(), request_id, RequestState.AWAITING_APPROVAL.value],
            )
            added = cursor.rowcount == 1
            if added:
                self._add_event(db, request_id, user_id, "approval.recorded", {})
            users = tuple(r[0] for r in db.execute(
                "SELECT user_id FROM approvals WHERE request_id = ? ORDER BY at, user_id", [request_id]
            ).fetchall())
        return added, users

    def withdraw_approvals(self, request_id: int, user_ids: Sequence[str], why: str) -> tuple[str, ...]:
        """Drop approvals that no longer count (their author is no longer an approver), while the
        request still awaits approval; returns the approvals left."""
        with self._unit() as db:
            for user_id in user_ids:
                cursor = db.execute(
                    "DELETE FROM approvals WHERE request_id = ? AND user_id = ? AND EXISTS "
                    "(SELECT 1 FROM requests WHERE id = ? AND state = ?)",
                    [request_id, user_id, request_id, RequestState.AWAITING_APPROVAL.value],
                )
                if cursor.rowcount:
                    self._add_event(db, request_id, "system", "approval.withdrawn", {"user": user_id, "why": why})
            return tuple(r[0] for r in db.execute(
                "SELECT user_id FROM approvals WHERE request_id = ? ORDER BY at, user_id", [request_id]
            ).fetchall())

    def reopen_for_approval(self, request_id: int, changes: Sequence[dict[str, Any]], lines: Sequence[str],
                            expires_at: datetime) -> bool:
        """A tag changed materially after the approval: the request waits for approval again.

        One transaction: the state (compare-and-set from approved or running), the approvals given
        for the old facts removed, the tags' names and counts brought up to date so that the card
        shows what will now be deleted, and the audit event with every change.
        """
        allowed = (RequestState.APPROVED.value, RequestState.RUNNING.value)
        with self._unit() as db:
            won = db.execute(
                "UPDATE requests SET state = ?, expires_at = ?, decided_by = NULL, decided_at = NULL, "
                "changes_since_approval = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
                [RequestState.AWAITING_APPROVAL.value, to_text(expires_at), json.dumps(list(lines)), self._now(),
                 request_id, *allowed],
            ).rowcount == 1
            if not won:
                return False
            previous = [r[0] for r in db.execute("SELECT user_id FROM approvals WHERE request_id = ?", [request_id])]
            db.execute("DELETE FROM approvals WHERE request_id = ?", [request_id])
            db.conn.executemany(
                "UPDATE request_tags SET name = ?, contacts_count = ? WHERE request_id = ? AND tag_id = ?",
                [(c["name_now"], c["contacts_now"], request_id, c["tag_id"]) for c in changes],
            )
            db.execute(
                "UPDATE requests SET total_contacts = (SELECT COALESCE(SUM(contacts_count), 0) FROM request_tags "
                "WHERE request_id = ?) WHERE id = ?", [request_id, request_id],
            )
            self._add_event(db, request_id, "runner", "request.changed_since_approval",
                            {"to": RequestState.AWAITING_APPROVAL.value, "changes": list(changes),
                             "approvals_withdrawn": previous})
        return True

    def approvals(self, request_id: int) -> tuple[str, ...]:
        with self._lock:
            rows = self.db.execute(
                "SELECT user_id FROM approvals WHERE request_id = ? ORDER BY at, user_id", [request_id]
            ).fetchall()
        return tuple(r[0] for r in rows)

    # --- batches -----------------------------------------------------------------------

    def create_batches(self, request_id: int, tag_batches: Sequence[Sequence[str]]) -> None:
        """Lay out the batches once; a second call (after a restart) changes nothing."""
        with self._unit() as db:
            existing = db.execute("SELECT COUNT(*) FROM batches WHERE request_id = ?", [request_id]).fetchone()[0]
            if existing:
                return
            now = self._now()
            for batch_no, ids in enumerate(tag_batches):
                db["batches"].insert(
                    {"request_id": request_id, "batch_no": batch_no, "state": BatchState.PENDING.value,
                     "tag_count": len(ids), "updated_at": now}
                )
                db.execute(
                    f"UPDATE request_tags SET batch_no = ? WHERE request_id = ? AND tag_id IN ({', '.join('?' for _ in ids)})",
                    [batch_no, request_id, *ids],
                )

    def batches(self, request_id: int) -> list[Batch]:
        with self._lock:
            rows = self.db["batches"].rows_where("request_id = ?", [request_id], order_by="batch_no")
            return [_batch_from(r) for r in rows]

    def batch(self, batch_id: int) -> Batch | None:
        with self._lock:
            rows = list(self.db["batches"].rows_where("id = ?", [batch_id]))
        return _batch_from(rows[0]) if rows else None

    def batches_in_states(self, states: Iterable[str]) -> list[Batch]:
        states = list(states)
        with self._lock:
            rows = self.db["batches"].rows_where(
                f"state IN ({', '.join('?' for _ in states)})", states, order_by="id"
            )
            return [_batch_from(r) for r in rows]

    def batch_tag_ids(self, request_id: int, batch_no: int) -> list[str]:
        with self._lock:
            rows = self.db.execute(
                "SELECT tag_id FROM request_tags WHERE request_id = ? AND batch_no = ? ORDER BY position",
                [request_id, batch_no],
            ).fetchall()
        return [r[0] for r in rows]

    def transition_batch(
        self,
        batch_id: int,
        expect: Iterable[str],
        target: str,
        *,
        actor: str | None = "runner",
        kind: str | None = None,
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Compare-and-set on a batch; an audit event is written when the state changes."""
        expect = tuple(expect)
        values = {k: _encode(v) for k, v in fields.items()}
        values.update(state=target, updated_at=self._now())
        assignments = ", ".join(f"{k} = ?" for k in values)
        sql = f"UPDATE batches SET {assignments} WHERE id = ? AND state IN ({', '.join('?' for _ in expect)})"
        with self._unit() as db:
            won = db.execute(sql, [*values.values(), batch_id, *expect]).rowcount == 1
            if won and kind:
                request_id = db.execute("SELECT request_id FROM batches WHERE id = ?", [batch_id]).fetchone()[0]
                self._add_event(db, request_id, actor, kind, {"batch": batch_id, "to": target, **(detail or {})})
        return won

    def running_batches(self) -> list[Batch]:
        return self.batches_in_states(s.value for s in RUNNING_BATCH_STATES)

    def set_tag_outcomes(self, request_id: int, outcomes: dict[str, tuple[str, str | None]]) -> None:
        with self._unit() as db:
            for tag_id, (outcome, detail) in outcomes.items():
                db.execute(
                    "UPDATE request_tags SET outcome = ?, outcome_detail = ? WHERE request_id = ? AND tag_id = ?",
                    [outcome, detail, request_id, tag_id],
                )

    # --- snapshots (undo) --------------------------------------------------------------

    def start_snapshot(self, request_id: int, batch_no: int) -> None:
        """Begin (or begin again, after a crash) recording a batch's snapshot: rows of a recording
        that did not complete are dropped first."""
        with self._unit() as db:
            db.execute("DELETE FROM snapshot_taggings WHERE request_id = ? AND batch_no = ?", [request_id, batch_no])
            db.execute(
                "INSERT OR REPLACE INTO snapshots (request_id, batch_no, state, started_at) VALUES (?, ?, 'recording', ?)",
                [request_id, batch_no, self._now()],
            )

    def add_snapshot_taggings(self, request_id: int, batch_no: int,
                              rows: Sequence[tuple[str, str, str]]) -> None:
        """(tag_id, contact_id, contact_status) rows of a recording snapshot."""
        with self._unit() as db:
            db.conn.executemany(
                "INSERT OR REPLACE INTO snapshot_taggings (request_id, batch_no, tag_id, contact_id, contact_status) "
                "VALUES (?, ?, ?, ?, ?)", [(request_id, batch_no, *row) for row in rows],
            )

    def complete_snapshot(self, request_id: int, batch_no: int) -> Snapshot:
        """Mark the batch's snapshot complete, with its counts and an audit event, in one transaction."""
        with self._unit() as db:
            contacts, taggings = db.execute(
                "SELECT COUNT(DISTINCT contact_id), COUNT(*) FROM snapshot_taggings WHERE request_id = ? AND batch_no = ?",
                [request_id, batch_no],
            ).fetchone()
            db.execute(
                "UPDATE snapshots SET state = 'complete', contacts = ?, taggings = ?, completed_at = ? "
                "WHERE request_id = ? AND batch_no = ?", [contacts, taggings, self._now(), request_id, batch_no],
            )
            self._add_event(db, request_id, "runner", "snapshot.recorded",
                            {"batch": batch_no, "contacts": contacts, "taggings": taggings})
        snapshot = self.snapshot(request_id, batch_no)
        assert snapshot is not None
        return snapshot

    def snapshot(self, request_id: int, batch_no: int) -> Snapshot | None:
        with self._lock:
            rows = list(self.db["snapshots"].rows_where("request_id = ? AND batch_no = ?", [request_id, batch_no]))
        return _row_to(Snapshot, rows[0]) if rows else None

    def snapshots(self, request_id: int) -> list[Snapshot]:
        with self._lock:
            rows = self.db["snapshots"].rows_where("request_id = ?", [request_id], order_by="batch_no")
            return [_row_to(Snapshot, r) for r in rows]

    def recording_snapshot(self, request_id: int) -> tuple[int, int, int] | None:
        """A snapshot being recorded: (batch number, taggings recorded so far, contacts its tags carried
        at approval); None when none is."""
        with self._lock:
            row = self.db.execute(
                "SELECT p.batch_no, (SELECT COUNT(*) FROM snapshot_taggings s WHERE s.request_id = p.request_id "
                "AND s.batch_no = p.batch_no), (SELECT COALESCE(SUM(contacts_count), 0) FROM request_tags t "
                "WHERE t.request_id = p.request_id AND t.batch_no = p.batch_no) FROM snapshots p "
                "WHERE p.request_id = ? AND p.state = 'recording' ORDER BY p.batch_no LIMIT 1", [request_id],
            ).fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else None

    def discard_snapshots(self, request_id: int, batch_nos: Iterable[int]) -> None:
        """Snapshots of batches not sent yet, after their tags changed: recorded again before their POST."""
        with self._unit() as db:
            for batch_no in batch_nos:
                db.execute("DELETE FROM snapshot_taggings WHERE request_id = ? AND batch_no = ?", [request_id, batch_no])
                db.execute("DELETE FROM snapshots WHERE request_id = ? AND batch_no = ?", [request_id, batch_no])

    def snapshot_taggings(self, request_id: int) -> Iterator[SnapshotTagging]:
        """Every recorded tagging of a request with the tag's name, by tag name then contact id."""
        with self._lock:
            rows = self.db.execute(
                "SELECT t.name, s.tag_id, s.contact_id, s.contact_status FROM snapshot_taggings s "
                "JOIN request_tags t ON t.request_id = s.request_id AND t.tag_id = s.tag_id "
                "WHERE s.request_id = ? ORDER BY t.name, s.tag_id, s.contact_id", [request_id],
            ).fetchall()
        return (SnapshotTagging(*row) for row in rows)

    def purge_snapshots(self, completed_before: datetime) -> list[int]:
        """Drop the taggings of snapshots completed before the cutoff; each purge is audited."""
        with self._unit() as db:
            # A snapshot that a restore under way still reads is kept until that restore ends.
            old = db.execute(
                "SELECT DISTINCT request_id FROM snapshots WHERE state = 'complete' AND completed_at < ? "
                "AND request_id NOT IN (SELECT restores_request FROM requests WHERE kind = ? AND state IN "
                "('draft', 'awaiting_approval', 'approved', 'running'))",
                [to_text(completed_before), RESTORE],
            ).fetchall()
            purged = [row[0] for row in old]
            for request_id in purged:
                db.execute("DELETE FROM snapshot_taggings WHERE request_id = ?", [request_id])
                db.execute("UPDATE snapshots SET state = 'purged' WHERE request_id = ?", [request_id])
                self._add_event(db, request_id, "system", "snapshot.purged", {"completed_before": to_text(completed_before)})
        return purged

    # --- restores (undo) ---------------------------------------------------------------

    def snapshot_counts(self, request_id: int) -> dict[str, tuple[int, int]]:
        """Per tag of a request's complete snapshots: (contacts recorded, of them deleted at the time)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT s.tag_id, COUNT(*), SUM(s.contact_status = 'deleted') FROM snapshot_taggings s "
                "JOIN snapshots p ON p.request_id = s.request_id AND p.batch_no = s.batch_no "
                "WHERE s.request_id = ? AND p.state = 'complete' GROUP BY s.tag_id", [request_id],
            ).fetchall()
        return {tag_id: (int(n), int(deleted or 0)) for tag_id, n, deleted in rows}

    def snapshot_contacts(self, request_id: int, tag_id: str, first: int, count: int) -> list[str]:
        """Contact ids recorded for one tag, by contact id, from position `first`."""
        with self._lock:
            rows = self.db.execute(
                "SELECT contact_id FROM snapshot_taggings WHERE request_id = ? AND tag_id = ? "
                "ORDER BY contact_id LIMIT ? OFFSET ?", [request_id, tag_id, count, first],
            ).fetchall()
        return [r[0] for r in rows]

    def create_restore_batches(self, request_id: int, chunks: Sequence[tuple[str, int, int]]) -> None:
        """Lay out a restore's batches once: (old tag id, first contact, contact count) each."""
        with self._unit() as db:
            if db.execute("SELECT COUNT(*) FROM batches WHERE request_id = ?", [request_id]).fetchone()[0]:
                return
            now = self._now()
            db.conn.executemany(
                "INSERT INTO batches (request_id, batch_no, state, tag_count, tag_id, first_contact, contact_count, "
                "poll_count, percent_done, updated_at) VALUES (?, ?, 'pending', 1, ?, ?, ?, 0, 0, ?)",
                [(request_id, n, tag_id, first, count, now) for n, (tag_id, first, count) in enumerate(chunks)],
            )
            db.execute(
                "UPDATE request_tags SET batch_no = (SELECT MIN(b.batch_no) FROM batches b WHERE b.request_id = "
                "request_tags.request_id AND b.tag_id = request_tags.tag_id) WHERE request_id = ?", [request_id],
            )

    def restores_of(self, request_id: int, states: Iterable[str]) -> list[Request]:
        """The restores of a request's snapshot in these states, newest first."""
        states = list(states)
        with self._lock:
            rows = self.db["requests"].rows_where(
                f"kind = ? AND restores_request = ? AND state IN ({', '.join('?' for _ in states)})",
                [RESTORE, request_id, *states], order_by="id DESC")
            return [_request_from(r) for r in rows]

    def request_tag(self, request_id: int, tag_id: str) -> TagRow | None:
        with self._lock:
            rows = list(self.db["request_tags"].rows_where("request_id = ? AND tag_id = ?", [request_id, tag_id]))
        return _row_to(TagRow, rows[0]) if rows else None

    def mark_tag_create_sent(self, request_id: int, tag_id: str) -> None:
        """Recorded before a restore asks Constant Contact to create a tag: after a crash, a 409 for
        that name is then known to be (most likely) the tag it made."""
        with self._unit() as db:
            db.execute("UPDATE request_tags SET tag_create_sent = 1 WHERE request_id = ? AND tag_id = ?",
                       [request_id, tag_id])

    def set_restored_tag(self, request_id: int, old_tag_id: str, new_tag_id: str, into: str) -> None:
        """Which tag an old tag's contacts are tagged with again ("new" or "existing"); audited."""
        with self._unit() as db:
            db.execute(
                "UPDATE request_tags SET restored_tag_id = ?, restored_into = ? WHERE request_id = ? AND tag_id = ?",
                [new_tag_id, into, request_id, old_tag_id],
            )
            self._add_event(db, request_id, "runner", "restore.tag_ready",
                            {"old_tag_id": old_tag_id, "tag_id": new_tag_id, "into": into})

    # --- Slack event de-duplication and posted notices ------------------------------

    # Slack retries an event for about an hour; ids older than this can no longer come back.
    SEEN_EVENTS_KEPT = timedelta(hours=24)
    SEEN_EVENTS_PRUNED_EVERY = 500  # sightings: the first one prunes, then every 500th
    _sightings = 0

    def first_sighting(self, event_id: str) -> bool:
        """True the first time an event id is seen: Slack retries deliveries."""
        with self._unit() as db:
            if self._sightings % self.SEEN_EVENTS_PRUNED_EVERY == 0:
                self._prune_seen_events(db)
            self._sightings += 1
            cursor = db.execute(
                "INSERT OR IGNORE INTO seen_events (event_id, at) VALUES (?, ?)", [event_id, self._now()]
            )
            return cursor.rowcount == 1

    def prune_seen_events(self) -> int:
        """Forget event ids older than SEEN_EVENTS_KEPT; returns how many."""
        with self._unit() as db:
            return self._prune_seen_events(db)

    def _prune_seen_events(self, db: Database) -> int:
        cutoff = to_text(self.clock() - self.SEEN_EVENTS_KEPT)
        return int(db.execute("DELETE FROM seen_events WHERE at < ?", [cutoff]).rowcount)

    def claim_notice(self, request_id: int, key: str) -> bool:
        """Reserve a milestone message before posting it; only one caller ever wins."""
        with self._unit() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO notices (request_id, key, state, at) VALUES (?, ?, 'claimed', ?)",
                [request_id, key, self._now()],
            )
            return cursor.rowcount == 1

    def notice_posted(self, request_id: int, key: str, ts: str | None) -> None:
        with self._unit() as db:
            db.execute(
                "UPDATE notices SET state = 'posted', ts = ?, at = ? WHERE request_id = ? AND key = ?",
                [ts, self._now(), request_id, key],
            )

    def release_notice(self, request_id: int, key: str) -> None:
        """A post that failed before reaching Slack may be tried again later."""
        with self._unit() as db:
            db.execute("DELETE FROM notices WHERE request_id = ? AND key = ? AND state = 'claimed'", [request_id, key])

    def notices(self, request_id: int) -> dict[str, str | None]:
        with self._lock:
            rows = self.db.execute("SELECT key, state FROM notices WHERE request_id = ?", [request_id]).fetchall()
        return {k: s for k, s in rows}

    # --- Constant Contact credentials --------------------------------------------------

    def load_credentials(self, name: str = "constant_contact") -> Credentials | None:
        with self._lock:
            rows = list(self.db["credentials"].rows_where("name = ?", [name]))
        if not rows:
            return None
        row = rows[0]
        return Credentials(row["refresh_token"], row["access_token"], row["access_expires_at"])

    def save_credentials(self, credentials: Credentials, name: str = "constant_contact") -> None:
        with self._unit() as db:
            db["credentials"].upsert(
                {"name": name, "refresh_token": credentials.refresh_token,
                 "access_token": credentials.access_token,
                 "access_expires_at": credentials.access_expires_at, "updated_at": self._now()},
                pk="name",
            )
            self._add_event(db, None, "system", "credentials.saved", {"name": name})

    # --- Constant Contact's daily quota --------------------------------------------------

    def count_cc_call(self, day: str) -> None:
        with self._unit() as db:
            db.execute("INSERT INTO quota_ledger (day, calls) VALUES (?, 1) "
                       "ON CONFLICT(day) DO UPDATE SET calls = calls + 1", [day])

    def mark_quota_exhausted(self, day: str) -> None:
        with self._unit() as db:
            db.execute("INSERT INTO quota_ledger (day, exhausted) VALUES (?, 1) "
                       "ON CONFLICT(day) DO UPDATE SET exhausted = 1", [day])

    def cc_calls(self, day: str) -> tuple[int, bool]:
        """(calls counted, whether Constant Contact said quota_exceeded) on one UTC day."""
        with self._lock:
            row = self.db.execute("SELECT calls, exhausted FROM quota_ledger WHERE day = ?", [day]).fetchone()
        return (int(row[0]), bool(row[1])) if row else (0, False)

    def set_quota_hold(self, request_id: int, until: datetime | None) -> bool:
        """Hold a request for the quota (or release it with None); True when this call changed it."""
        with self._unit() as db:
            cursor = db.execute(
                "UPDATE requests SET quota_held_until = ?, updated_at = ? WHERE id = ? AND "
                "quota_held_until IS NOT ?", [to_text(until), self._now(), request_id, to_text(until)])
            changed = cursor.rowcount > 0
            if changed:
                kind = "request.held_for_quota" if until else "request.quota_hold_released"
                self._add_event(db, request_id, "runner", kind, {"until": to_text(until)} if until else {})
            return changed
