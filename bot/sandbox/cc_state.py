"""In-memory state behind the Constant Contact simulator: clock, tags, activities, OAuth grants, limits.

Nothing here knows about HTTP. Callers hold the simulator's lock around every method that mutates.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import math
import random
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

RETENTION_SECONDS = 10 * 86_400
REFRESH_IDLE_SECONDS = 180 * 86_400
AUTH_CODE_SECONDS = 300
DEVICE_CODE_SECONDS = 600
DAY_SECONDS = 86_400
KNOWN_SCOPES = frozenset(
    {"account_read", "account_update", "contact_data", "campaign_data", "billing_data",
     "offline_access", "openid", "profile"}
)
OUTCOME_COMPLETE, OUTCOME_STUCK, OUTCOME_FAIL, OUTCOME_TIMEOUT = "complete", "stuck", "fail", "timeout"
TERMINAL_STATE = {OUTCOME_COMPLETE: "completed", OUTCOME_FAIL: "failed", OUTCOME_TIMEOUT: "timed_out"}
# Share of the processing phase after which a failing activity gives up, and where a stuck one freezes.
FAIL_POINT = 0.5
# Share of the known tags a timed-out activity manages to delete.
TIMEOUT_DONE_SHARE = 1 / 3
FAIL_ERROR = "Internal error: the activity failed before all tags were deleted."  # unless Faults say otherwise
TAGGING_FAIL_ERROR = "Internal error: the activity failed before all contacts were tagged."
TAGGINGS_ADD = "contacts_taggings_add"
MAX_TAGS_PER_CONTACT = 50
# A contact's status as GET /contacts filters it (its `status` query parameter, without `all`).
CONTACT_STATUSES = ("active", "deleted", "not_set", "pending_confirmation", "temp_hold", "unsubscribed")
# email_address.permission_to_send of a contact that is not deleted; `active` is explicit or implicit.
_PERMISSION_OF_STATUS = {"active": "implicit", "deleted": "implicit", "not_set": "not_set",
                         "pending_confirmation": "pending_confirmation", "temp_hold": "temp_hold",
                         "unsubscribed": "unsubscribed"}
CONTACT_INCLUDES = ("custom_fields", "list_memberships", "phone_numbers", "street_addresses", "taggings", "notes")


def iso_time(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds, the way the spec's examples write timestamps."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256_challenge(code_verifier: str) -> str:
    return b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())


class SimClock:
    """Simulated epoch seconds: wall time since construction, stretched by ``time_scale``."""

    def __init__(self, time_scale: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._scale = time_scale
        self._origin = wall()

    def now(self) -> float:
        return self._origin + (self._wall() - self._origin) * self._scale


class OAuthError(Exception):
    """An OAuth error answer: ``{"error": ..., "error_description": ...}`` with an HTTP status."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description


# ---------------------------------------------------------------- tags


@dataclass
class TagRecord:
    """A tag. Its contacts are real ones (``members``, deleted ones included) plus ``pending``
    anonymous active contacts that ``add_tag(name, N)`` promised and that become real contacts only
    when something looks at the tag's contacts (so that seeding thousands of tags stays cheap)."""

    tag_id: str
    name: str
    pending: int
    created_at: float
    updated_at: float
    seq: int
    tag_source: str | None = None
    members: dict[str, None] = field(default_factory=dict)  # contact ids, in tagging order
    live: int = 0  # members that are not deleted

    @property
    def contacts_count(self) -> int:
        """Contacts carrying the tag that are not deleted."""
        return self.pending + self.live

    def to_json(self, include_count: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"tag_id": self.tag_id, "name": self.name}
        if include_count:
            body["contacts_count"] = self.contacts_count
        body["created_at"] = iso_time(self.created_at)
        body["updated_at"] = iso_time(self.updated_at)
        if self.tag_source is not None:
            body["tag_source"] = self.tag_source
        return body


class DuplicateTagName(ValueError):
    """A tag with this name (case-insensitive) already exists."""


# ---------------------------------------------------------------- contacts


@dataclass
class ContactRecord:
    """One contact. Its status is not a field of the spec's ContactResource: a deleted contact has
    ``deleted_at`` (and an opt-out on its email address); any other shows it in
    ``email_address.permission_to_send`` (explicit or implicit meaning ``active``)."""

    contact_id: str
    seq: int
    email: str
    permission: str
    created_at: float
    updated_at: float
    taggings: list[str] = field(default_factory=list)
    deleted_at: float | None = None

    @property
    def status(self) -> str:
        if self.deleted_at is not None:
            return "deleted"
        return "active" if self.permission in ("explicit", "implicit") else self.permission

    def to_json(self, include: frozenset[str]) -> dict[str, Any]:
        email: dict[str, Any] = {"address": self.email, "permission_to_send": self.permission,
                                 "created_at": iso_time(self.created_at),
                                 "updated_at": iso_time(self.updated_at),
                                 "opt_in_source": "Account", "confirm_status": "off"}
        if self.deleted_at is not None:
            email["permission_to_send"] = "unsubscribed"
            email["opt_out_source"] = "Account"
            email["opt_out_date"] = iso_time(self.deleted_at)
        body: dict[str, Any] = {"contact_id": self.contact_id, "email_address": email,
                                "first_name": "Sandbox", "last_name": f"Contact {self.seq}",
                                "create_source": "Account", "created_at": iso_time(self.created_at),
                                "updated_at": iso_time(self.updated_at)}
        if self.deleted_at is not None:
            body["deleted_at"] = datetime.fromtimestamp(self.deleted_at, tz=timezone.utc).strftime("%Y-%m-%d")
        for name in CONTACT_INCLUDES:
            if name in include:
                body[name] = list(self.taggings) if name == "taggings" else []
        return body

    def snapshot(self) -> dict[str, Any]:
        return {"contact_id": self.contact_id, "status": self.status, "email": self.email,
                "taggings": list(self.taggings), "seq": self.seq}


# ---------------------------------------------------------------- activities


@dataclass
class ActivityView:
    """What ``GET /activities/{id}`` shows at one moment."""

    state: str
    percent_done: int
    items_total: int
    items_completed: int
    created_at: float
    updated_at: float
    started_at: float | None
    completed_at: float | None
    errors: list[str]


@dataclass
class ActivityRecord:
    activity_id: str
    seq: int
    kind: str
    tag_ids: tuple[str, ...]
    known_ids: tuple[str, ...]
    created_at: float
    duration: float
    outcome: str
    settled: bool = False
    deleted_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    forgotten: bool = False
    fail_error: str = FAIL_ERROR
    # contacts_taggings_add: the contacts to tag (the activity's items) and those it tagged
    contact_ids: tuple[str, ...] = ()
    known_contacts: tuple[str, ...] = ()
    tagged_ids: list[str] = field(default_factory=list)

    @property
    def items(self) -> tuple[str, ...]:
        return self.contact_ids if self.kind == TAGGINGS_ADD else self.tag_ids

    @property
    def known_items(self) -> tuple[str, ...]:
        return self.known_contacts if self.kind == TAGGINGS_ADD else self.known_ids

    @property
    def done_items(self) -> list[str]:
        return self.tagged_ids if self.kind == TAGGINGS_ADD else self.deleted_ids

    @property
    def started_at(self) -> float:
        return self.created_at + 0.1 * self.duration

    @property
    def processing_seconds(self) -> float:
        return 0.9 * self.duration

    @property
    def settle_at(self) -> float:
        if self.outcome == OUTCOME_STUCK:
            return math.inf
        if self.outcome == OUTCOME_FAIL:
            return self.started_at + FAIL_POINT * self.processing_seconds
        return self.created_at + self.duration

    def progress(self, now: float) -> float:
        """Share of the processing phase done at ``now`` (0..1), frozen for stuck activities."""
        if self.processing_seconds <= 0:
            share = 1.0
        else:
            share = (now - self.started_at) / self.processing_seconds
        limit = FAIL_POINT if self.outcome in (OUTCOME_STUCK, OUTCOME_FAIL) else 1.0
        return max(0.0, min(share, limit))

    def view(self, now: float) -> ActivityView:
        total = len(self.items)
        if self.settled:
            return self._final_view(total)
        if now < self.started_at:
            return ActivityView("initialized", 1, total, 0, self.created_at, self.created_at,
                                None, None, [])
        share = self.progress(now)
        percent = max(1, min(99, int(share * 100)))
        known = len(self.known_items)
        done = min(int(share * known), max(known - 1, 0))
        updated = min(now, self.started_at + share * self.processing_seconds)
        return ActivityView("processing", percent, total, done, self.created_at, updated,
                            self.started_at, None, [])

    def _final_view(self, total: int) -> ActivityView:
        done = len(self.done_items)
        if self.outcome == OUTCOME_COMPLETE:
            percent = 100
        else:
            percent = max(1, int(100 * done / total)) if total else 1
        return ActivityView(TERMINAL_STATE[self.outcome], percent, total, done, self.created_at,
                            self.settle_at, self.started_at, self.settle_at, list(self.errors))

    def share_to_delete(self) -> float:
        return {OUTCOME_COMPLETE: 1.0, OUTCOME_FAIL: FAIL_POINT,
                OUTCOME_TIMEOUT: TIMEOUT_DONE_SHARE}.get(self.outcome, 0.0)

    def final_errors(self) -> list[str]:
        known = set(self.known_ids)
        return [f"Tag {tag_id} not found" for tag_id in self.tag_ids if tag_id not in known] + self.outcome_errors()

    def outcome_errors(self) -> list[str]:
        errors: list[str] = []
        if self.outcome == OUTCOME_FAIL:
            errors.append(self.fail_error)
        if self.outcome == OUTCOME_TIMEOUT:
            what = "contacts were tagged" if self.kind == TAGGINGS_ADD else "tags were deleted"
            errors.append(f"The activity timed out before all {what}.")
        return errors

    def snapshot(self, now: float) -> dict[str, Any]:
        view = self.view(now)
        return {
            "id": self.activity_id, "activity_id": self.activity_id, "kind": self.kind,
            "tag_ids": list(self.tag_ids),
            "known_tag_ids": list(self.known_ids), "state": view.state,
            "percent_done": view.percent_done, "items_completed_count": view.items_completed,
            "activity_errors": view.errors, "outcome": self.outcome, "created_at": self.created_at,
            "duration": self.duration, "deleted_tag_ids": list(self.deleted_ids),
            "forgotten": self.forgotten, "contact_ids": list(self.contact_ids),
            "tagged_contact_ids": list(self.tagged_ids),
        }


class Account:
    """One Constant Contact account: its tags, contacts and bulk activities."""

    def __init__(self, clock: SimClock, rng: random.Random, contact_rng: random.Random | None = None) -> None:
        self.clock = clock
        self.rng = rng
        # Contacts draw their ids from a generator of their own, so that tag and activity ids stay
        # what they were for a given seed whether or not a test makes contacts.
        self.contact_rng = contact_rng or random.Random("contacts")
        self.tags: dict[str, TagRecord] = {}
        self.activities: dict[str, ActivityRecord] = {}
        self.contacts: dict[str, ContactRecord] = {}  # in creation (seq) order
        self._seq = 0
        self._contact_seq = 0
        self._version = 0  # changes whenever a contact or a tagging does
        self._listing_cache: tuple[Any, list[ContactRecord], list[int]] | None = None

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # tags
    def add_tag(self, name: str, contacts_count: int = 0, tag_source: str | None = None,
                created_at: float | None = None) -> TagRecord:
        if self.find_by_name(name) is not None:
            raise DuplicateTagName(name)
        stamp = self.clock.now() if created_at is None else created_at
        tag = TagRecord(seeded_uuid(self.rng), name, max(contacts_count, 0), stamp, stamp,
                        self._next_seq(), tag_source)
        self.tags[tag.tag_id] = tag
        return tag

    def find_by_name(self, name: str) -> TagRecord | None:
        wanted = name.casefold()
        return next((tag for tag in self.tags.values() if tag.name.casefold() == wanted), None)

    def rename_tag(self, tag: TagRecord, name: str) -> None:
        other = self.find_by_name(name)
        if other is not None and other.tag_id != tag.tag_id:
            raise DuplicateTagName(name)
        tag.name = name
        tag.updated_at = self.clock.now()

    def tags_from(self, first_seq: int) -> list[TagRecord]:
        return [tag for tag in self.tags.values() if tag.seq >= first_seq]

    def set_contacts_count(self, tag: TagRecord, count: int) -> None:
        """Make ``count`` contacts (not deleted) carry the tag: anonymous ones are added, or the
        most recently tagged ones lose it."""
        count = max(count, 0)
        if count >= tag.live:
            tag.pending = count - tag.live
            return
        tag.pending = 0
        for contact_id in reversed(list(tag.members)):
            if tag.live <= count:
                break
            contact = self.contacts[contact_id]
            if contact.deleted_at is None:
                self._untag(contact, tag)

    def drop_tag(self, tag_id: str) -> None:
        """The tag is gone, and with it every contact's tagging."""
        tag = self.tags.pop(tag_id, None)
        if tag is None:
            return
        for contact_id in tag.members:
            self.contacts[contact_id].taggings.remove(tag_id)
        self._version += 1

    # contacts
    def add_contact(self, status: str = "active", created_at: float | None = None) -> ContactRecord:
        if status not in CONTACT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(CONTACT_STATUSES)}")
        self._contact_seq += 1
        stamp = self.clock.now() if created_at is None else created_at
        contact = ContactRecord(seeded_uuid(self.contact_rng), self._contact_seq,
                                f"contact{self._contact_seq}@example.com", _PERMISSION_OF_STATUS[status],
                                stamp, stamp)
        if status == "deleted":
            contact.deleted_at = stamp
        self.contacts[contact.contact_id] = contact
        self._version += 1
        return contact

    def materialise(self, tag: TagRecord) -> None:
        """Turn the tag's anonymous contacts into real, active contacts carrying it."""
        while tag.pending > 0:
            tag.pending -= 1
            self._tag(self.add_contact("active", created_at=tag.created_at), tag)

    def tag(self, contact: ContactRecord, tag: TagRecord) -> None:
        """Tag a contact (deleted or not), as the UI or an import would; at most 50 tags a contact."""
        if tag.tag_id in contact.taggings:
            return
        if len(contact.taggings) >= MAX_TAGS_PER_CONTACT:
            raise ValueError(f"contact {contact.contact_id} already carries {MAX_TAGS_PER_CONTACT} tags")
        self._tag(contact, tag)

    def _tag(self, contact: ContactRecord, tag: TagRecord) -> None:
        contact.taggings.append(tag.tag_id)
        tag.members[contact.contact_id] = None
        if contact.deleted_at is None:
            tag.live += 1
        contact.updated_at = self.clock.now()
        self._version += 1

    def _untag(self, contact: ContactRecord, tag: TagRecord) -> None:
        contact.taggings.remove(tag.tag_id)
        del tag.members[contact.contact_id]
        if contact.deleted_at is None:
            tag.live -= 1
        self._version += 1

    def delete_contact(self, contact: ContactRecord) -> None:
        """Deleted, not gone: the contact keeps its taggings but counts for no tag any more."""
        if contact.deleted_at is not None:
            return
        contact.deleted_at = contact.updated_at = self.clock.now()
        for tag_id in contact.taggings:
            self.tags[tag_id].live -= 1
        self._version += 1

    def contacts_page(self, tag_ids: tuple[str, ...] | None, statuses: frozenset[str],
                      first_seq: int, limit: int) -> tuple[list[ContactRecord], int | None]:
        """Up to ``limit`` contacts from sequence number ``first_seq`` on, carrying any of ``tag_ids``
        (every contact when None) with one of ``statuses``; and where the next page starts."""
        candidates, seqs = self.candidates(tag_ids)
        page: list[ContactRecord] = []
        for contact in candidates[bisect.bisect_left(seqs, first_seq):]:
            if contact.status not in statuses:
                continue
            if len(page) == limit:
                return page, contact.seq
            page.append(contact)
        return page, None

    def candidates(self, tag_ids: tuple[str, ...] | None) -> tuple[list[ContactRecord], list[int]]:
        tags = list(self.tags.values()) if tag_ids is None else [self.tags[t] for t in tag_ids if t in self.tags]
        for tag in tags:
            self.materialise(tag)
        key = (tag_ids, self._version)
        if self._listing_cache is not None and self._listing_cache[0] == key:
            return self._listing_cache[1], self._listing_cache[2]
        if tag_ids is None:
            found = list(self.contacts.values())
        else:
            ids: set[str] = set()
            for tag in tags:
                ids.update(tag.members)
            found = sorted((self.contacts[i] for i in ids), key=lambda c: c.seq)
        seqs = [contact.seq for contact in found]
        self._listing_cache = (key, found, seqs)
        return found, seqs

    # activities
    def create_activity(self, kind: str, tag_ids: list[str], duration: float,
                        outcome: str, fail_error: str = "", contact_ids: list[str] | None = None) -> ActivityRecord:
        unique = tuple(dict.fromkeys(tag_ids))
        known = tuple(tag_id for tag_id in unique if tag_id in self.tags)
        contacts = tuple(dict.fromkeys(contact_ids or ()))
        known_contacts = tuple(c for c in contacts if c in self.contacts and self.contacts[c].deleted_at is None)
        default_error = TAGGING_FAIL_ERROR if kind == TAGGINGS_ADD else FAIL_ERROR
        record = ActivityRecord(seeded_uuid(self.rng), self._next_seq(), kind, unique, known,
                                self.clock.now(), max(duration, 0.0), outcome,
                                fail_error=fail_error or default_error, contact_ids=contacts,
                                known_contacts=known_contacts)
        self.activities[record.activity_id] = record
        return record

    def settle(self) -> None:
        """Apply the end of every activity whose time has come, in the order they end."""
        now = self.clock.now()
        due = [a for a in self.activities.values() if not a.settled and a.settle_at <= now]
        for record in sorted(due, key=lambda a: a.settle_at):
            self._finish(record)

    def _finish(self, record: ActivityRecord) -> None:
        if record.kind == TAGGINGS_ADD:
            self._finish_taggings(record)
            return
        count = int(len(record.known_ids) * record.share_to_delete())
        record.deleted_ids = list(record.known_ids[:count])
        for tag_id in record.deleted_ids:
            self.drop_tag(tag_id)
        record.errors = record.final_errors()
        record.settled = True

    def _finish_taggings(self, record: ActivityRecord) -> None:
        """Tag the share of the contacts the outcome allows. Deleted or unknown contacts, and contacts
        that would pass 50 tags, are skipped and named in activity_errors; the rest are tagged."""
        errors = [f"Tag {tag_id} not found" for tag_id in record.tag_ids if tag_id not in self.tags]
        tags = [self.tags[tag_id] for tag_id in record.tag_ids if tag_id in self.tags]
        count = int(len(record.contact_ids) * record.share_to_delete())
        for contact_id in record.contact_ids[:count]:
            contact = self.contacts.get(contact_id)
            if contact is None:
                errors.append(f"Contact {contact_id} not found")
                continue
            if contact.deleted_at is not None:
                errors.append(f"Contact {contact_id} is deleted and cannot be tagged")
                continue
            complete = True
            for tag in tags:
                if tag.tag_id in contact.taggings:
                    continue
                if len(contact.taggings) >= MAX_TAGS_PER_CONTACT:
                    errors.append(f"Contact {contact_id} already has {MAX_TAGS_PER_CONTACT} tags; "
                                  f"tag {tag.tag_id} was not added")
                    complete = False
                    continue
                self._tag(contact, tag)
            if complete and tags:
                record.tagged_ids.append(contact_id)
        record.errors = errors + record.outcome_errors()
        record.settled = True

    def unfinished_count(self) -> int:
        return sum(1 for a in self.activities.values() if not a.settled)

    def is_visible(self, record: ActivityRecord) -> bool:
        return not record.forgotten and self.clock.now() - record.created_at < RETENTION_SECONDS

    def visible_activity(self, activity_id: str) -> ActivityRecord | None:
        record = self.activities.get(activity_id)
        return record if record is not None and self.is_visible(record) else None

    def visible_activities(self) -> list[ActivityRecord]:
        """Newest first, like the activity list of the real service."""
        found = [a for a in self.activities.values() if self.is_visible(a)]
        return sorted(found, key=lambda a: a.seq, reverse=True)


# ---------------------------------------------------------------- OAuth


@dataclass
class AccessGrant:
    scope: str
    expires_at: float


@dataclass
class RefreshChain:
    """One consent's line of rotating refresh tokens; only ``current`` is valid."""

    current: str
    scope: str
    confidential: bool
    last_used: float
    revoked: bool = False


@dataclass
class DeviceGrant:
    device_code: str
    user_code: str
    scope: str
    expires_at: float
    interval: int
    approved: bool = False
    denied: bool = False
    redeemed: bool = False
    pending_polls: int = 0
    last_poll: float | None = None


@dataclass
class AuthCode:
    redirect_uri: str
    scope: str
    challenge: str | None
    expires_at: float
    used: bool = False


def _user_code() -> str:
    letters = "BCDFGHJKLMNPQRSTVWXZ"
    return "".join(secrets.choice(letters) for _ in range(8))


def normalise_user_code(user_code: str) -> str:
    return user_code.replace("-", "").replace(" ", "").upper()


def parse_scope(scope: str | None) -> str:
    words = (scope or "").split()
    if not words or any(word not in KNOWN_SCOPES for word in words):
        raise OAuthError(400, "invalid_scope", "The requested scope is invalid, unknown, or malformed.")
    return " ".join(dict.fromkeys(words))


class AuthServer:
    """Grants of the simulated authorization server: tokens, device codes, authorization codes."""

    def __init__(self, clock: SimClock, client_id: str, access_seconds: float) -> None:
        self.clock = clock
        self.client_id = client_id
        self.access_seconds = access_seconds
        self.issuer = "http://127.0.0.1/oauth2/default"
        self.access: dict[str, AccessGrant] = {}
        self.chains: list[RefreshChain] = []
        self.refresh_index: dict[str, RefreshChain] = {}
        self.devices: dict[str, DeviceGrant] = {}
        self.codes: dict[str, AuthCode] = {}

    # tokens
    def new_chain(self, scope: str, confidential: bool) -> str:
        token = secrets.token_urlsafe(32)
        chain = RefreshChain(token, scope, confidential, self.clock.now())
        self.chains.append(chain)
        self.refresh_index[token] = chain
        return token

    def token_response(self, scope: str, refresh_token: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": max(0, round(self.access_seconds)),
            "access_token": self._access_token(scope),
            "scope": scope,
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return body

    def _access_token(self, scope: str) -> str:
        now = self.clock.now()
        claims = {
            "ver": 1, "jti": "AT." + secrets.token_urlsafe(24), "iss": self.issuer,
            "aud": "https://api.cc.email/v3", "iat": int(now), "exp": int(now + self.access_seconds),
            "cid": self.client_id, "uid": "00u1sandboxuser", "scp": scope.split(),
            "auth_time": int(now), "sub": "sandbox.user@example.com",
            "platform_user_id": "6f1d1c2e-0000-4000-8000-00000000cafe",
        }
        header = {"kid": "sandbox-signing-key", "alg": "RS256"}
        # Random bytes stand in for the RS256 signature: nobody verifies sandbox tokens.
        token = ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()),
                          b64url(secrets.token_bytes(256))])
        self.access[token] = AccessGrant(scope, now + self.access_seconds)
        return token

    def check_access(self, token: str) -> AccessGrant | None:
        grant = self.access.get(token)
        if grant is None or grant.expires_at <= self.clock.now():
            return None
        return grant

    def expire_access_tokens(self) -> None:
        now = self.clock.now()
        for grant in self.access.values():
            grant.expires_at = min(grant.expires_at, now)

    def revoke_refresh_tokens(self) -> None:
        for chain in self.chains:
            chain.revoked = True

    def refresh(self, token: str, confidential: bool) -> dict[str, Any]:
        chain = self.refresh_index.get(token)
        now = self.clock.now()
        if (chain is None or chain.revoked or chain.current != token
                or now - chain.last_used > REFRESH_IDLE_SECONDS):
            raise OAuthError(400, "invalid_grant", "The refresh token is invalid or expired.")
        if chain.confidential and not confidential:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        chain.current = secrets.token_urlsafe(32)
        chain.last_used = now
        self.refresh_index[chain.current] = chain
        return self.token_response(chain.scope, chain.current)

    def _grant_tokens(self, scope: str, confidential: bool) -> dict[str, Any]:
        refresh = self.new_chain(scope, confidential) if "offline_access" in scope.split() else None
        return self.token_response(scope, refresh)

    # device flow
    def start_device(self, scope: str, interval: int) -> DeviceGrant:
        grant = DeviceGrant(secrets.token_urlsafe(32), _user_code(), scope,
                            self.clock.now() + DEVICE_CODE_SECONDS, interval)
        self.devices[grant.device_code] = grant
        return grant

    def device_by_user_code(self, user_code: str) -> DeviceGrant:
        wanted = normalise_user_code(user_code)
        for grant in self.devices.values():
            if grant.user_code == wanted and not grant.redeemed:
                return grant
        raise KeyError(f"no pending device authorization with user code {user_code!r}")

    def poll_device(self, device_code: str, confidential: bool,
                    auto_approve_after: int | None) -> dict[str, Any]:
        grant = self.devices.get(device_code)
        now = self.clock.now()
        if grant is None or grant.redeemed:
            raise OAuthError(400, "invalid_grant", "The device code is invalid or expired.")
        if now >= grant.expires_at:
            raise OAuthError(400, "expired_token", "The device code has expired.")
        if grant.denied:
            raise OAuthError(400, "access_denied", "The resource owner denied the request.")
        too_soon = grant.last_poll is not None and now - grant.last_poll < grant.interval
        grant.last_poll = now
        if too_soon:
            raise OAuthError(400, "slow_down", "The client is polling too quickly.")
        if auto_approve_after is not None and grant.pending_polls >= auto_approve_after:
            grant.approved = True
        if not grant.approved:
            grant.pending_polls += 1
            raise OAuthError(400, "authorization_pending",
                             "The device authorization is pending. Please try again later.")
        grant.redeemed = True
        return self._grant_tokens(grant.scope, confidential)

    # authorization code + PKCE
    def new_code(self, redirect_uri: str, scope: str, challenge: str | None) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = AuthCode(redirect_uri, scope, challenge,
                                    self.clock.now() + AUTH_CODE_SECONDS)
        return code

    def redeem_code(self, code: str, redirect_uri: str | None, verifier: str | None,
                    confidential: bool) -> dict[str, Any]:
        grant = self.codes.get(code)
        if grant is None or grant.used or self.clock.now() >= grant.expires_at:
            raise OAuthError(400, "invalid_grant", "The authorization code is invalid or has expired.")
        if redirect_uri != grant.redirect_uri:
            raise OAuthError(400, "invalid_grant",
                             "The 'redirect_uri' does not match the redirection URI used in the authorization request.")
        if grant.challenge is None and not confidential:
            raise OAuthError(401, "invalid_client", "Client authentication failed.")
        if grant.challenge is not None:
            if not verifier:
                raise OAuthError(400, "invalid_request", "PKCE verification failed: code_verifier is required.")
            if s256_challenge(verifier) != grant.challenge:
                raise OAuthError(400, "invalid_grant", "PKCE verification failed.")
        grant.used = True
        return self._grant_tokens(grant.scope, confidential)


# ---------------------------------------------------------------- limits


class SlidingWindow:
    """Admits at most ``limit`` requests in any one second of real (monotonic) time.

    Every admitted request counts, whatever its outcome; refused ones do not, so a client that
    backs off briefly always gets through again.
    """

    def __init__(self, window_seconds: float = 1.0) -> None:
        self.window = window_seconds
        self._hits: deque[float] = deque()

    def hit(self, limit: int, at: float) -> bool:
        """True (and counted) when a request arriving at monotonic time ``at`` is admitted."""
        while self._hits and at - self._hits[0] >= self.window:
            self._hits.popleft()
        if len(self._hits) >= limit:
            return False
        self._hits.append(at)
        return True


class DailyQuota:
    """Requests per UTC day of the simulated clock."""

    def __init__(self, limit: int, clock: SimClock) -> None:
        self.limit = limit
        self.clock = clock
        self._day = -1
        self._used = 0

    def _roll(self) -> None:
        day = int(self.clock.now() // DAY_SECONDS)
        if day != self._day:
            self._day, self._used = day, 0

    def consume(self) -> bool:
        self._roll()
        if self._used >= self.limit:
            return False
        self._used += 1
        return True

    def exhaust(self) -> None:
        self._roll()
        self._used = max(self._used, self.limit)

    def spend(self, calls: int) -> None:
        self._roll()
        self._used = min(self.limit, self._used + calls)

    def used_today(self) -> int:
        self._roll()
        return self._used


# ---------------------------------------------------------------- example data

_THEMES = (
    "Spring Promo", "Summer Sale", "Black Friday", "Cyber Monday", "Holiday Gift Guide",
    "Webinar Attendees", "VIP Customers", "Newsletter Subscribers", "Trade Show Leads",
    "Loyalty Program", "Abandoned Cart", "Product Launch", "Customer Survey", "Beta Testers",
    "Event RSVP", "Referral Program", "Back to School", "Year End Appeal", "Volunteer Signup",
    "Open House", "Free Trial", "Donor Gala", "Workshop Waitlist", "Partner Referrals",
)
_REGIONS = ("", " - East", " - West", " (EU)", " - Online")


def example_tags(count: int, rng: random.Random) -> list[tuple[str, int]]:
    """``count`` unique, realistic (name, contacts_count) pairs."""
    seen: set[str] = set()
    pairs: list[tuple[str, int]] = []
    while len(pairs) < count:
        name = f"{rng.choice(_THEMES)} {rng.randint(2019, 2025)}{rng.choice(_REGIONS)}"
        if name.casefold() in seen:
            name = f"{name} #{len(pairs) + 1}"
        if name.casefold() in seen:
            continue
        seen.add(name.casefold())
        pairs.append((name, min(int(rng.lognormvariate(4.5, 1.4)), 250_000)))
    return pairs
