"""Who may approve: APPROVER_IDS plus the members of APPROVER_GROUP, looked up and cached.

The rules about *what* an approver may do live in `bot.core.lifecycle`; this module only answers
"who are the approvers right now", so every click is checked against a fresh-enough list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

GroupLookup = Callable[[str], Sequence[str]]


class GroupsUnavailable(Exception):
    """The workspace's plan has no user groups (Slack answers `plan_upgrade_required`)."""


@dataclass(frozen=True)
class ApproverList:
    user_ids: frozenset[str]
    warning: str | None = None

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.user_ids


class ApproverDirectory:
    def __init__(
        self,
        approver_ids: Sequence[str],
        group: str | None,
        lookup_group: GroupLookup,
        cache_seconds: float = 180.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.approver_ids = frozenset(approver_ids)
        self.group = group
        self._lookup_group = lookup_group
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, ApproverList] | None = None

    def current(self) -> ApproverList:
        if not self.group:
            return ApproverList(self.approver_ids)
        with self._lock:
            if self._cached and self._clock() - self._cached[0] < self._cache_seconds:
                return self._cached[1]
            approvers = self._fetch()
            self._cached = (self._clock(), approvers)
            return approvers

    def fresh(self) -> ApproverList:
        """Looked up now, not from the cache (which it then replaces): for a decision that is about to
        take effect, so that someone just removed from the group can no longer approve."""
        if not self.group:
            return ApproverList(self.approver_ids)
        with self._lock:
            approvers = self._fetch()
            self._cached = (self._clock(), approvers)
            return approvers

    def forget(self) -> None:
        with self._lock:
            self._cached = None

    def _fetch(self) -> ApproverList:
        try:
            members = frozenset(self._lookup_group(self.group or ""))
        except GroupsUnavailable:
            warning = (
                f"This Slack plan has no user groups, so only APPROVER_IDS can approve "
                f"(APPROVER_GROUP={self.group} is ignored)."
            )
            log.warning(warning)
            return ApproverList(self.approver_ids, warning)
        except Exception as error:  # noqa: BLE001 - fail closed: fewer approvers, never a broken click
            warning = f"Could not read APPROVER_GROUP={self.group} ({error}); only APPROVER_IDS can approve for now."
            log.warning(warning)
            return ApproverList(self.approver_ids, warning)
        return ApproverList(self.approver_ids | members)

    def mention_text(self) -> str:
        """How the request card addresses the approvers."""
        parts = [f"<@{u}>" for u in sorted(self.approver_ids)]
        if self.group and self.group.startswith("S"):
            parts.insert(0, f"<!subteam^{self.group}>")
        elif self.group:
            parts.insert(0, f"@{self.group}")
        return " ".join(parts) or "approvers"
